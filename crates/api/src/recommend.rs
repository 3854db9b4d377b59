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
use marquee_engine::{Answer, Basis, Engine, Filters, HomeRow, Recommendation};
use marquee_store::{Impression, RecommendationId, ShownItems};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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

/// The caller's placement, checked, or `default`.
fn placement(raw: Option<&str>, default: &str) -> Result<String, ApiError> {
    match raw {
        Some(raw) => {
            crate::experiments::routes::check_name("placement", "invalid_placement", raw)?;
            Ok(raw.to_owned())
        }
        None => Ok(default.to_owned()),
    }
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::new(raw).map_err(|e| ApiError::bad_request("invalid_session_id", e.to_string()))
}

/// Who an answer is for, and the experiment variant that serves them (if any).
#[derive(Debug, Default)]
struct Audience {
    user: Option<UserId>,
    session: Option<SessionId>,
    /// Experiment and variant.
    assigned: Option<(String, String)>,
}

impl Audience {
    fn new(user: Option<UserId>, session: Option<SessionId>) -> Self {
        Self {
            user,
            session,
            assigned: None,
        }
    }

    /// The engine that answers at `placement`: the variant's when an experiment runs there
    /// and this is a user or session (noted in `assigned`), else the active one.
    fn engine(&mut self, state: &AppState, placement: &str) -> Arc<Engine> {
        let running = state.experiments.load();
        if !running.by_placement.is_empty() {
            let who = match (&self.user, &self.session) {
                (Some(u), _) => Some(u.as_str()),
                (None, Some(s)) => Some(s.as_str()),
                (None, None) => None,
            };
            if let Some((live, arm)) = who.and_then(|w| running.assign(placement, w)) {
                self.assigned = Some((live.name.clone(), arm.name.clone()));
                return arm.engine.clone();
            }
        }
        state.engine.clone()
    }
}

/// An answer as the storefront receives it.
#[derive(Serialize)]
struct Served<'a> {
    recommendation_id: &'a str,
    placement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    experiment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    model_version: &'a str,
    basis: Basis,
    items: &'a [Recommendation],
}

/// A home row as the storefront receives it.
#[derive(Serialize)]
struct ServedRow<'a> {
    recommendation_id: String,
    placement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    experiment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    id: &'static str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    about: Option<&'a str>,
    items: &'a [Recommendation],
}

/// Queues the impression of what answer `id` showed at `placement` (when it shows items and
/// impressions are recorded). Takes the answer's parts by value: recording an answer then
/// allocates only the string of its item ids (and the box the queue holds).
fn record(
    state: &AppState,
    id: RecommendationId,
    placement: String,
    audience: Audience,
    model_version: String,
    items: &[Recommendation],
) {
    if !state.record_impressions || items.is_empty() {
        return;
    }
    let (experiment, variant) = match audience.assigned {
        Some((e, v)) => (Some(e), Some(v)),
        None => (None, None),
    };
    state.impressions().record(Impression {
        id,
        at: chrono::Utc::now(),
        placement,
        user: audience.user,
        session: audience.session,
        model_version,
        experiment,
        variant,
        items: ShownItems::new(items.iter().map(|r| r.item.as_str())),
    });
}

/// Gives a row of the storefront demo a recommendation id and queues its impression.
pub(crate) fn record_shown(
    state: &AppState,
    placement: &str,
    user: Option<UserId>,
    session: Option<SessionId>,
    model_version: &str,
    items: &[Recommendation],
) -> String {
    let id = state.impressions().next_id();
    record(
        state,
        id,
        placement.to_owned(),
        Audience::new(user, session),
        model_version.to_owned(),
        items,
    );
    id.to_string()
}

/// An engine answer as JSON with its recommendation id and placement (its impression
/// queued), written into a buffer sized for it up front (axum's `Json` starts at 128 bytes
/// and grows, copying, three times for a ten-item answer).
fn answer_response(
    state: &AppState,
    answer: Answer,
    placement: String,
    audience: Audience,
) -> Result<Response, ApiError> {
    let id = state.impressions().next_id();
    let mut text = [0u8; 32];
    let served = Served {
        recommendation_id: id.write_hex(&mut text),
        placement: &placement,
        experiment: audience.assigned.as_ref().map(|(e, _)| e.as_str()),
        variant: audience.assigned.as_ref().map(|(_, v)| v.as_str()),
        model_version: &answer.model_version,
        basis: answer.basis,
        items: &answer.items,
    };
    // Sized for short ids and kept under 1 KiB for ten items: glibc serves larger requests
    // from its large bins after consolidating every freed small chunk (`malloc_consolidate`
    // was 1 % of the server's time under load).
    let mut body = Vec::with_capacity(128 + 64 * answer.items.len());
    serde_json::to_writer(&mut body, &served).map_err(ApiError::internal)?;
    record(
        state,
        id,
        placement,
        audience,
        answer.model_version,
        &answer.items,
    );
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
    let mut audience = Audience::new(user, None);
    let engine = audience.engine(&state, &placement);
    let answer = engine.recommend(audience.user.as_ref(), &recent, q.k, &filters)?;
    answer_response(&state, answer, placement, audience)
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
    let mut audience = Audience::new(user, None);
    let engine = audience.engine(&state, &prefix);
    let rows = engine.home(audience.user.as_ref(), &recent, q.k)?;
    let version = engine.version();
    let served: Vec<ServedRow<'_>> = rows
        .iter()
        .map(|row: &HomeRow| {
            let placement = format!("{prefix}:{}", row.id);
            let id = state.impressions().next_id();
            let shown_to = Audience {
                user: audience.user.clone(),
                session: None,
                assigned: audience.assigned.clone(),
            };
            record(
                &state,
                id,
                placement.clone(),
                shown_to,
                version.clone(),
                &row.items,
            );
            ServedRow {
                recommendation_id: id.to_string(),
                placement,
                experiment: audience.assigned.as_ref().map(|(e, _)| e.as_str()),
                variant: audience.assigned.as_ref().map(|(_, v)| v.as_str()),
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
    let mut audience = Audience::new(
        q.user_id.as_deref().map(user_id).transpose()?,
        q.session_id.as_deref().map(session_id).transpose()?,
    );
    let engine = audience.engine(&state, &placement);
    let answer = engine.similar(&item, q.k, &Filters::default())?;
    answer_response(&state, answer, placement, audience)
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
    let mut audience = Audience::new(None, b.session_id.as_deref().map(session_id).transpose()?);
    let items = b
        .items
        .iter()
        .enumerate()
        .map(|(n, i)| item_id(&format!("items[{n}]"), i))
        .collect::<Result<Vec<_>, _>>()?;
    let engine = audience.engine(&state, &placement);
    let answer = engine.session(&items, b.k, &Filters::default())?;
    answer_response(&state, answer, placement, audience)
}
