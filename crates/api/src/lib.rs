//! The HTTP API over the engine and the store (axum). The engine knows no HTTP; this crate
//! only translates requests and answers.
//!
//! Storefront router (`Authorization: Bearer <storefront key>`):
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness, no key needed |
//! | `GET /readyz` | a model is loaded and the store answers, no key needed |
//! | `GET /v1/recommendations?user_id&k&category&exclude&min_price&max_price&include_seen&include_out_of_stock` | personal top-k (cold start for unknown users) |
//! | `GET /v1/home?user_id&k` | Netflix-style rows |
//! | `GET /v1/items/{id}/similar?k` | similar items |
//! | `POST /v1/recommendations/session` `{items, k}` | for an anonymous session |
//! | `POST /v1/events` `{events: [...]}` | behaviour events, durable before `202` (also with a publishable key) |
//! | `GET /sdk/marquee.js` | the browser tracker (no key; it carries a publishable key) |
//! | `GET /metrics` | Prometheus text: requests and latency by route, events ingested, model version (no key) |
//!
//! The storefront also serves the catalog (`GET /v1/items`, `/v1/items/{id}`,
//! `/v1/categories`) and orders (`POST /v1/orders`, `GET /v1/orders/{id}`,
//! `GET /v1/users/{id}/orders`) (module `catalog`).
//!
//! Admin router (`Authorization: Bearer <admin key>`, its own listener): model versions and
//! activation, segments (members, export, recompute), background jobs (retrain), analytics
//! (module `admin`), items, orders, users, API keys and the audit log.
//!
//! Modules by concern: `state` (what handlers share), `auth` (the key extractors
//! [`StorefrontKey`] and [`AdminKey`], rate limits), `error` ([`ApiError`] and the `From`
//! conversions of the engine's and the store's errors), `fresh` (events newer than the
//! model), `recommend` and `events` (the storefront's recommendation and event routes),
//! `catalog` and `orders`, `admin` (one module per admin area), `ops` (health, metrics,
//! OpenAPI, the request budget and timeout), `pages` (server-rendered HTML).
//!
//! `GET /openapi.json` on both listeners describes every route ([`OPENAPI`]); a test keeps it
//! and the routers in step. With [`AppState::with_rate_limit`] every key gets a number of
//! requests per second (429 with `Retry-After` beyond it).
//!
//! Every error is `{"error": {"code", "message"}}` with a 4xx status naming what is wrong;
//! every recommendation answer carries `model_version`.
//!
//! Unless [`AppState::with_pages`] turns them off, the storefront router also serves the
//! storefront demo pages and the admin router the admin dashboard (module `pages`).

mod admin;
mod auth;
mod catalog;
mod error;
mod events;
pub mod experiments;
pub mod first_start;
mod fresh;
mod impressions;
pub mod jobs;
pub mod metrics;
mod ops;
mod orders;
mod pages;
mod placements;
mod recommend;
mod state;
mod writer;

pub use admin::router as admin_router;
pub use auth::{AdminKey, BrowserOrStorefront, KEY_CACHE_SECONDS, StorefrontKey};
pub use error::ApiError;
pub use events::MAX_EVENTS_PER_BATCH;
pub use ops::OPENAPI;
pub use state::{AppState, DEFAULT_MAX_IN_FLIGHT, Shared};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::time::Duration;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long a request may take before it is answered with `503 timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The storefront router.
pub fn storefront_router(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/v1/recommendations", get(recommend::recommendations))
        .route("/v1/recommendations/session", post(recommend::session))
        .route("/v1/home", get(recommend::home))
        .route("/v1/items/{id}/similar", get(recommend::similar))
        .route("/v1/items", get(catalog::items))
        .route("/v1/items/{id}", get(catalog::item))
        .route("/v1/categories", get(catalog::categories))
        .route("/v1/orders", post(orders::place_order))
        .route("/v1/orders/{id}", get(orders::get_order))
        .route("/v1/users/{id}/orders", get(orders::user_orders))
        .route("/v1/events", post(events::events))
        .route("/metrics", get(ops::metrics_text))
        .route("/openapi.json", get(ops::openapi))
        .route("/sdk/marquee.js", get(ops::tracker_script));
    let router = if state.pages {
        router.merge(pages::shop::routes())
    } else {
        router
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::cors,
    ));
    with_common_layers(router, state)
}

/// What both routers share: the JSON 404, metrics and timeout, and the body limit.
pub(crate) fn with_common_layers(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
