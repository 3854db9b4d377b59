//! Readers of tabular files that need Polars: generic interaction files
//! (`user,item[,rating][,timestamp]`, CSV or Parquet) and UCI Online Retail (Parquet or CSV).
//!
//! They produce the same [`Bundle`] and report errors the same way as the plain readers of
//! `marquee-datasets` (file, line or Parquet row, field). This crate is used by the command-line
//! tools only: nothing the server links depends on it, so cargo never compiles Polars into
//! `serve`. Threading: synchronous and single-threaded (Polars may use its own pool for a
//! Parquet read); run it on a blocking thread from async code.

pub mod interactions;
pub mod online_retail;

pub use marquee_datasets::{Bundle, Error, Location, Result};

use std::path::Path;

/// A Polars failure on `path`, reported as a file the reader cannot use.
pub(crate) fn polars_error(path: &Path, err: &polars::error::PolarsError) -> Error {
    Error::unsupported(path, err.to_string())
}
