//! The recommendation routes of the storefront: personal top-k, home rows, similar items and
//! the anonymous session answer. Each extracts its query, reads the user's fresh events
//! (module `fresh`), makes one engine call and writes the answer.

use crate::auth::StorefrontKey;
use crate::catalog::{item_id, user_id};
use crate::error::ApiError;
use crate::fresh::recent_events;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use marquee_engine::{Answer, Filters};
use serde::Deserialize;

fn default_k() -> usize {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecommendationQuery {
    user_id: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
    category: Option<String>,
    /// Comma-separated item ids.
    exclude: Option<String>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    #[serde(default)]
    include_seen: bool,
    #[serde(default)]
    include_out_of_stock: bool,
}

/// An engine answer as JSON, written into a buffer sized for it up front (axum's `Json`
/// starts at 128 bytes and grows, copying, three times for a ten-item answer).
fn answer_response(answer: &Answer) -> Result<Response, ApiError> {
    // Sized for short ids and kept under 1 KiB for ten items: glibc serves larger requests
    // from its large bins after consolidating every freed small chunk (`malloc_consolidate`
    // was 1 % of the server's time under load).
    let mut body = Vec::with_capacity(64 + 64 * answer.items.len());
    serde_json::to_writer(&mut body, answer).map_err(ApiError::internal)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

pub(crate) async fn recommendations(
    _key: StorefrontKey,
    State(state): State<AppState>,
    query: Result<Query<RecommendationQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    if let (Some(lo), Some(hi)) = (q.min_price, q.max_price)
        && lo > hi
    {
        return Err(ApiError::bad_request(
            "invalid_price_range",
            format!("min_price {lo} is above max_price {hi}"),
        ));
    }
    let user = q.user_id.as_deref().map(user_id).transpose()?;
    let exclude = q
        .exclude
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| item_id("exclude", s))
        .collect::<Result<Vec<_>, _>>()?;
    let recent = recent_events(&state, user.as_ref()).await?;
    let filters = Filters {
        category: q.category,
        min_price: q.min_price,
        max_price: q.max_price,
        exclude,
        include_seen: q.include_seen,
        include_out_of_stock: q.include_out_of_stock,
    };
    let answer = state
        .engine
        .recommend(user.as_ref(), &recent, q.k, &filters)?;
    answer_response(&answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HomeQuery {
    user_id: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
}

pub(crate) async fn home(
    _key: StorefrontKey,
    State(state): State<AppState>,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let user = q.user_id.as_deref().map(user_id).transpose()?;
    let recent = recent_events(&state, user.as_ref()).await?;
    let rows = state.engine.home(user.as_ref(), &recent, q.k)?;
    Ok(
        Json(serde_json::json!({"model_version": state.engine.version(), "rows": rows}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KQuery {
    #[serde(default = "default_k")]
    k: usize,
}

pub(crate) async fn similar(
    _key: StorefrontKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<KQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let item = item_id("id", &id)?;
    let answer = state.engine.similar(&item, q.k, &Filters::default())?;
    answer_response(&answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    items: Vec<String>,
    #[serde(default = "default_k")]
    k: usize,
}

pub(crate) async fn session(
    _key: StorefrontKey,
    State(state): State<AppState>,
    body: Result<Json<SessionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let items = b
        .items
        .iter()
        .enumerate()
        .map(|(n, i)| item_id(&format!("items[{n}]"), i))
        .collect::<Result<Vec<_>, _>>()?;
    let answer = state.engine.session(&items, b.k, &Filters::default())?;
    answer_response(&answer)
}
