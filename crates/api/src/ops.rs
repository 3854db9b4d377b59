//! What every listener answers whoever asks: health and readiness, Prometheus metrics, the
//! OpenAPI document, the JSON 404; and the layer that times, sheds and times out requests.

use crate::REQUEST_TIMEOUT;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Times every request, answers `503 timeout` after [`REQUEST_TIMEOUT`], and counts it under
/// its route pattern (unmatched: "other").
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let exempt = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let _permit = match state.in_flight.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if exempt => None,
        Err(_) => {
            let response = ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the server is answering as many requests as it can; retry in a second",
                )
            }
            .into_response();
            state.metrics.observe(
                &route,
                response.status().as_u16(),
                start.elapsed().as_secs_f64(),
            );
            return response;
        }
    };
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s; try again",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    };
    state.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state
            .metrics
            .render(&state.engine.version(), &state.engine.kind()),
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The OpenAPI 3.1 document of both routers (no key needed).
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(crate) async fn readyz(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.counts().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    })?;
    Ok(Json(serde_json::json!({
        "status": "ready",
        "model_version": state.engine.version(),
        "model_kind": state.engine.kind(),
    })))
}

/// The browser tracker, served as is.
pub(crate) const TRACKER_JS: &str = include_str!("sdk/marquee.js");

/// `GET /sdk/marquee.js`: the browser tracker (no key needed; pages give it theirs).
pub(crate) async fn tracker_script() -> Response {
    let mut response = TRACKER_JS.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
