//! The admin API, on its own listener with its own keys ([`AdminKey`]): models, segments,
//! background jobs, analytics, the catalog, orders, users, API keys and the audit log.
//! Analytics are SQL in the store; jobs and exports run the `train` and `segments` tools (see
//! [`crate::jobs`]), so the server links neither Polars nor linfa. Every changing request,
//! refused ones too, is written to the audit log ([`keys::audit`]).
//!
//! [`AdminKey`]: crate::auth::AdminKey

pub(crate) mod analytics;
pub(crate) mod behaviour;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod models;
pub(crate) mod segments;
pub(crate) mod users;

use crate::experiments::routes as experiments;
use crate::state::AppState;
use crate::{catalog, ops, orders, pages};
use axum::Router;
use axum::routing::{delete, get, post};
use std::sync::Arc;

/// The admin router (`Authorization: Bearer <admin key>`), with the admin dashboard unless
/// the pages are turned off.
pub fn router(mut state: AppState) -> Router {
    // Its own request budget, so an overloaded storefront never locks operators out.
    let permits = state.in_flight.available_permits().max(1);
    state.parts().in_flight = Arc::new(tokio::sync::Semaphore::new(permits));
    let router = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/admin/models", get(models::list_models))
        .route(
            "/v1/admin/models/{version}/activate",
            post(models::activate_model),
        )
        .route("/v1/admin/segments", get(segments::list_segments))
        .route(
            "/v1/admin/segments/{name}/members",
            get(segments::segment_members),
        )
        .route("/v1/admin/segments/export", get(segments::export_segment))
        .route(
            "/v1/admin/segments/recompute",
            post(jobs::recompute_segments),
        )
        .route("/v1/admin/jobs", get(jobs::list_jobs))
        .route("/v1/admin/jobs/retrain", post(jobs::retrain))
        .route("/v1/admin/jobs/{id}", get(jobs::get_job))
        .route("/v1/admin/analytics/revenue", get(analytics::revenue))
        .route(
            "/v1/admin/analytics/top-products",
            get(analytics::top_products),
        )
        .route(
            "/v1/admin/analytics/funnel",
            get(analytics::funnel).post(behaviour::custom_funnel),
        )
        .route("/v1/admin/analytics/retention", get(behaviour::retention))
        .route(
            "/v1/admin/analytics/next-purchase",
            get(behaviour::next_purchase),
        )
        .route("/v1/admin/analytics/events", get(behaviour::events))
        .route(
            "/v1/admin/analytics/recommendations",
            get(analytics::recommendations),
        )
        .route(
            "/v1/admin/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/v1/admin/experiments/{name}", get(experiments::get))
        .route("/v1/admin/placements", get(crate::placements::list))
        .route(
            "/v1/admin/placements/{name}",
            get(crate::placements::get)
                .put(crate::placements::put)
                .delete(crate::placements::delete),
        )
        .route("/v1/admin/experiments/{name}/stop", post(experiments::stop))
        .route("/v1/admin/analytics/customers", get(analytics::customers))
        .route(
            "/v1/admin/items",
            get(catalog::admin_items).post(catalog::import_items),
        )
        .route(
            "/v1/admin/items/{id}",
            get(catalog::admin_item)
                .put(catalog::put_item)
                .delete(catalog::hide_item),
        )
        .route("/v1/admin/orders", get(orders::admin_orders))
        .route(
            "/v1/admin/orders/{id}",
            get(orders::admin_order).patch(orders::set_order_status),
        )
        .route("/v1/admin/users", get(users::admin_users))
        .route(
            "/v1/admin/users/{id}",
            get(users::admin_user).put(users::put_user),
        )
        .route(
            "/v1/admin/keys",
            get(keys::list_keys).post(keys::create_key),
        )
        .route("/v1/admin/keys/{prefix}", delete(keys::revoke_key))
        .route("/v1/admin/audit", get(keys::audit_log));
    let router = if state.pages {
        router.merge(pages::dashboard::routes())
    } else {
        router
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        keys::audit,
    ));
    crate::with_common_layers(router, state)
}
