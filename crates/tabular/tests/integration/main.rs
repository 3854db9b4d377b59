//! The readers' suite, plain (`marquee-datasets`) and Polars-backed (this crate), in one test
//! binary: the real files in ../shared/data, malformed and hostile files per format, the store
//! folder round trip and the generator. It lives here because several cases read the same
//! source through both kinds of reader.

mod hostile;
mod readers;
