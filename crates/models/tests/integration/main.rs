//! The integration tests of marquee-models in one test binary: every model fitted on fixed
//! data with a seed and judged on held-out interactions, and the artifact format (round
//! trips, damaged and foreign artifacts refused).

mod artifact;
mod models;
