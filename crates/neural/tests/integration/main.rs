//! The integration tests of marquee-neural, one module per area, built into one test binary.

mod artifact;
mod cold_start;
