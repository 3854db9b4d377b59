//! Shared helpers for text sources: encodings, timestamps, CSV headers. Public for the
//! Polars-backed readers of `marquee-tabular`, which report errors the same way.

use crate::{Error, Location, Result};
use chrono::{DateTime, Utc};
use marquee_domain::Timestamp;
use std::path::Path;

/// Reads a whole file as text: UTF-8 when it is valid UTF-8, otherwise Latin-1 (the older
/// MovieLens releases are Latin-1).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    })
}

/// Unix seconds to a timestamp; values above 10^11 are taken as milliseconds (no data set
/// has seconds that far in the future, and OTTO writes milliseconds).
pub fn unix_to_ts(value: i64) -> Option<Timestamp> {
    if value.unsigned_abs() >= 100_000_000_000 {
        DateTime::<Utc>::from_timestamp_millis(value)
    } else {
        DateTime::<Utc>::from_timestamp(value, 0)
    }
}

/// Parses a timestamp written as unix seconds (or milliseconds), RFC 3339, `YYYY-MM-DD
/// HH:MM[:SS]`, or the Online Retail spreadsheet form `M/D/YYYY H:MM`. Times without a zone
/// are UTC.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    use chrono::{NaiveDateTime, TimeZone};
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return unix_to_ts(n);
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return unix_to_ts(f as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
    }
    None
}

/// Finds the index of the first header that matches one of `names` (case-insensitive).
pub fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

/// Like [`column`] but a missing column is an error naming what was expected.
pub fn required_column(path: &Path, headers: &csv::StringRecord, names: &[&str]) -> Result<usize> {
    column(headers, names).ok_or_else(|| {
        Error::malformed(
            path,
            Location::Line(1),
            names[0],
            format!(
                "no column named {} in the header ({})",
                names.join(" or "),
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )
    })
}

/// The 1-based line a CSV record starts on.
pub fn line_of(record: &csv::StringRecord) -> Location {
    record
        .position()
        .map_or(Location::File, |p| Location::Line(p.line()))
}

/// A CSV reader with headers that keeps going on records of unequal length only to report
/// them with their line.
pub fn csv_reader(path: &Path, delimiter: u8) -> Result<csv::Reader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(file))
}

/// The file name's extension in lower case ("" when there is none).
pub fn extension(path: &std::path::Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_the_forms_data_sets_use() {
        let a = parse_timestamp("964982703").unwrap();
        assert_eq!(a.to_rfc3339(), "2000-07-30T18:45:03+00:00");
        assert_eq!(
            parse_timestamp("1659304800000").unwrap().timestamp(),
            1_659_304_800
        );
        assert_eq!(
            parse_timestamp("12/1/2010 8:26").unwrap().to_rfc3339(),
            "2010-12-01T08:26:00+00:00"
        );
        assert_eq!(
            parse_timestamp("2010-12-01 08:26:00").unwrap().to_rfc3339(),
            "2010-12-01T08:26:00+00:00"
        );
        assert!(parse_timestamp("2024-03-01T10:00:00+02:00").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }
}
