//! The integration tests of marquee-api, one module per area, built into one test binary
//! (one link instead of five): the storefront and admin routers through `oneshot`, the web
//! pages, hostile input, the real `serve` binary, and the pages in headless Chromium.

mod browser;
mod common;
mod hostile;
mod outcomes;
mod pages;
mod placements;
mod serve;
mod storefront;
mod tracking;
