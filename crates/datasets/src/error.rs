//! The one error type of the readers: where in which file, which field, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of a text file (the header is line 1 of a CSV).
    Line(u64),
    /// A 0-based row of a Parquet file.
    Row(u64),
    /// The file as a whole.
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Row(n) => write!(f, "row {n}"),
            Self::File => f.write_str("file"),
        }
    }
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {location}: {field}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        location: Location,
        field: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub fn malformed(
        path: &Path,
        location: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Malformed {
            path: path.to_owned(),
            location,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn unsupported(path: &Path, message: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// A CSV-level error (bad quoting, wrong number of fields, invalid UTF-8) with its line.
    pub fn csv(path: &Path, err: &csv::Error) -> Self {
        let line = err
            .position()
            .map_or(Location::File, |p| Location::Line(p.line()));
        let message = match err.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                format!("expected {expected_len} fields, found {len}")
            }
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
            csv::ErrorKind::Io(e) => e.to_string(),
            _ => err.to_string(),
        };
        Self::malformed(path, line, "record", message)
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
