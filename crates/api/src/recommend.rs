//! The recommendation routes of the storefront: personal top-k, home rows, similar items and
//! the anonymous session answer. Each extracts its query, reads the user's fresh events
//! (module `fresh`), makes one engine call and writes the answer.
//!
//! Every answer (every home row) carries a `recommendation_id` and its `placement` (the
//! caller's `placement`, else the route's name: `recommendations`, `home:<row id>`,
//! `similar`, `session`), and an answer that shows items is recorded as an impression off
//! the request path (module `impressions`).

use crate::auth::StorefrontKey;
use crate::catalog::{item_id, user_id};
use crate::error::ApiError;
use crate::fresh::recent_events;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use marquee_domain::{SessionId, UserId};
use marquee_engine::{Answer, Basis, Filters, HomeRow, Recommendation};
use marquee_store::Impression;
use serde::{Deserialize, Serialize};

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
    placement: Option<String>,
}

/// The longest placement name.
const MAX_PLACEMENT: usize = 64;

/// The caller's placement, checked, or `default`.
fn placement(raw: Option<&str>, default: &str) -> Result<String, ApiError> {
    let Some(raw) = raw else {
        return Ok(default.to_owned());
    };
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if raw.is_empty() || raw.len() > MAX_PLACEMENT || !raw.chars().all(fits) {
        return Err(ApiError::bad_request(
            "invalid_placement",
            format!("placement {raw:?} must be 1 to {MAX_PLACEMENT} letters, digits or `_-.:`"),
        ));
    }
    Ok(raw.to_owned())
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::new(raw).map_err(|e| ApiError::bad_request("invalid_session_id", e.to_string()))
}

/// Who an answer was shown to.
#[derive(Debug, Default)]
struct Audience {
    user: Option<UserId>,
    session: Option<SessionId>,
}

/// An answer as the storefront receives it.
#[derive(Serialize)]
struct Served<'a> {
    recommendation_id: &'a str,
    placement: &'a str,
    model_version: &'a str,
    basis: Basis,
    items: &'a [Recommendation],
}

/// A home row as the storefront receives it.
#[derive(Serialize)]
struct ServedRow<'a> {
    recommendation_id: String,
    placement: String,
    id: &'static str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    about: Option<&'a str>,
    items: &'a [Recommendation],
}

/// Gives what is shown at `placement` a recommendation id and queues its impression (when
/// it shows items). Returns the id.
fn record(
    state: &AppState,
    placement: &str,
    audience: &Audience,
    model_version: &str,
    items: &[Recommendation],
) -> String {
    let id = state.ids.next();
    if !items.is_empty() {
        state.record_impression(Impression {
            id: id.clone(),
            at: chrono::Utc::now(),
            placement: placement.to_owned(),
            user: audience.user.clone(),
            session: audience.session.clone(),
            model_version: model_version.to_owned(),
            experiment: None,
            variant: None,
            items: items
                .iter()
                .filter_map(|r| marquee_domain::ItemId::new(r.item.as_str()).ok())
                .collect(),
        });
    }
    id
}

/// An engine answer as JSON with its recommendation id and placement (its impression
/// queued), written into a buffer sized for it up front (axum's `Json` starts at 128 bytes
/// and grows, copying, three times for a ten-item answer).
fn answer_response(
    state: &AppState,
    answer: &Answer,
    placement: &str,
    audience: &Audience,
) -> Result<Response, ApiError> {
    let id = record(
        state,
        placement,
        audience,
        &answer.model_version,
        &answer.items,
    );
    let served = Served {
        recommendation_id: &id,
        placement,
        model_version: &answer.model_version,
        basis: answer.basis,
        items: &answer.items,
    };
    // Sized for short ids and kept under 1 KiB for ten items: glibc serves larger requests
    // from its large bins after consolidating every freed small chunk (`malloc_consolidate`
    // was 1 % of the server's time under load).
    let mut body = Vec::with_capacity(128 + 64 * answer.items.len());
    serde_json::to_writer(&mut body, &served).map_err(ApiError::internal)?;
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
    let placement = placement(q.placement.as_deref(), "recommendations")?;
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
    let audience = Audience {
        user,
        session: None,
    };
    answer_response(&state, &answer, &placement, &audience)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HomeQuery {
    user_id: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
    /// Each row's placement is `<placement>:<row id>` (default `home:<row id>`).
    placement: Option<String>,
}

pub(crate) async fn home(
    _key: StorefrontKey,
    State(state): State<AppState>,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let prefix = placement(q.placement.as_deref(), "home")?;
    let user = q.user_id.as_deref().map(user_id).transpose()?;
    let recent = recent_events(&state, user.as_ref()).await?;
    let rows = state.engine.home(user.as_ref(), &recent, q.k)?;
    let version = state.engine.version();
    let audience = Audience {
        user,
        session: None,
    };
    let served: Vec<ServedRow<'_>> = rows
        .iter()
        .map(|row: &HomeRow| {
            let placement = format!("{prefix}:{}", row.id);
            ServedRow {
                recommendation_id: record(&state, &placement, &audience, &version, &row.items),
                placement,
                id: row.id,
                title: &row.title,
                about: row.about.as_deref(),
                items: &row.items,
            }
        })
        .collect();
    Ok(Json(serde_json::json!({"model_version": version, "rows": served})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimilarQuery {
    #[serde(default = "default_k")]
    k: usize,
    placement: Option<String>,
    /// Who is looking, for the impression (at most one of the two).
    user_id: Option<String>,
    session_id: Option<String>,
}

pub(crate) async fn similar(
    _key: StorefrontKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<SimilarQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let placement = placement(q.placement.as_deref(), "similar")?;
    let item = item_id("id", &id)?;
    let audience = Audience {
        user: q.user_id.as_deref().map(user_id).transpose()?,
        session: q.session_id.as_deref().map(session_id).transpose()?,
    };
    let answer = state.engine.similar(&item, q.k, &Filters::default())?;
    answer_response(&state, &answer, &placement, &audience)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    items: Vec<String>,
    #[serde(default = "default_k")]
    k: usize,
    placement: Option<String>,
    /// The anonymous session, for the impression.
    session_id: Option<String>,
}

pub(crate) async fn session(
    _key: StorefrontKey,
    State(state): State<AppState>,
    body: Result<Json<SessionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let placement = placement(b.placement.as_deref(), "session")?;
    let audience = Audience {
        user: None,
        session: b.session_id.as_deref().map(session_id).transpose()?,
    };
    let items = b
        .items
        .iter()
        .enumerate()
        .map(|(n, i)| item_id(&format!("items[{n}]"), i))
        .collect::<Result<Vec<_>, _>>()?;
    let answer = state.engine.session(&items, b.k, &Filters::default())?;
    answer_response(&state, &answer, &placement, &audience)
}
