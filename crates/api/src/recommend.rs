//! The recommendation routes of the storefront: personal top-k, home rows, similar items and
//! the anonymous session answer. Each extracts its query, reads the user's fresh events
//! (module `fresh`), makes one engine call and writes the answer.
//!
//! Every answer (every home row) carries a `recommendation_id` and its `placement` (the
//! caller's `placement`, else the route's name: `recommendations`, `home:<row id>`,
//! `similar`, `session`), and an answer that shows items is recorded as an impression off
//! the request path (module `impressions`).

use crate::auth::{BrowserOrStorefront, StorefrontKey};
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
    /// Default 10 (a placement's own k for a placement).
    k: Option<usize>,
    /// For placements: the item of an item page, a cart's or session's items
    /// (comma-separated), the anonymous session.
    item_id: Option<String>,
    items: Option<String>,
    session_id: Option<String>,
    /// `item`: each item with its catalog details.
    include: Option<String>,
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
    /// A publishable key (browser pages; read by the key extractor).
    #[allow(dead_code)]
    key: Option<String>,
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
    items: ItemsOut<'a>,
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
    id: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    about: Option<&'a str>,
    items: ItemsOut<'a>,
}

/// A row's items: as the engine answered them, or with their catalog details.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemsOut<'a> {
    Plain(&'a [Recommendation]),
    Detailed(Vec<serde_json::Value>),
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
    answer_response_with(state, answer, placement, audience, None)
}

/// [`answer_response`], with each item's catalog details from `details` when given.
fn answer_response_with(
    state: &AppState,
    answer: Answer,
    placement: String,
    audience: Audience,
    details: Option<&Engine>,
) -> Result<Response, ApiError> {
    let id = state.impressions().next_id();
    let mut text = [0u8; 32];
    let items = match details {
        Some(engine) => ItemsOut::Detailed(with_details(engine, &answer.items)?),
        None => ItemsOut::Plain(&answer.items),
    };
    let served = Served {
        recommendation_id: id.write_hex(&mut text),
        placement: &placement,
        experiment: audience.assigned.as_ref().map(|(e, _)| e.as_str()),
        variant: audience.assigned.as_ref().map(|(_, v)| v.as_str()),
        model_version: &answer.model_version,
        basis: answer.basis,
        items,
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

/// The answer's items as JSON, each `item` an object: `{id, title, category, genres, price,
/// currency, in_stock, attributes}` (only `id` for an item the catalog lacks).
fn with_details(
    engine: &Engine,
    items: &[Recommendation],
) -> Result<Vec<serde_json::Value>, ApiError> {
    items
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
            let details = match engine.catalog_item(&r.item) {
                Some(i) => serde_json::json!({
                    "id": r.item.as_str(),
                    "title": i.title,
                    "category": i.category,
                    "genres": i.genres,
                    "price": i.price.map(|p| p.minor as f64 / p.currency.minor_per_major() as f64),
                    "currency": i.price.map(|p| p.currency.as_str().to_owned()),
                    "in_stock": i.in_stock,
                    "attributes": i.attributes,
                }),
                None => serde_json::json!({ "id": r.item.as_str() }),
            };
            if let Some(map) = v.as_object_mut() {
                map.insert("item".into(), details);
            }
            Ok(v)
        })
        .collect()
}

/// Whether `include` asks for item details (`item`; anything else is a 400).
fn include_items(include: Option<&str>) -> Result<bool, ApiError> {
    let mut item = false;
    for part in include.unwrap_or_default().split(',').map(str::trim) {
        match part {
            "" => {}
            "item" => item = true,
            other => {
                return Err(ApiError::bad_request(
                    "invalid_include",
                    format!("include {other:?} is not known; the only one is `item`"),
                ));
            }
        }
    }
    Ok(item)
}

/// Decodes `%XX` escapes and `+` of a query string part.
fn percent_decode(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", format!("bad escape in {raw:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("invalid_query", format!("{raw:?} is not UTF-8")))
}

/// A request's `context.<key>` values.
type Context = Vec<(String, String)>;

/// The query without its `context.<key>=value` pairs, and those pairs (decoded).
fn split_context(
    uri: &axum::http::Uri,
) -> Result<(std::borrow::Cow<'_, axum::http::Uri>, Context), ApiError> {
    let raw = uri.query().unwrap_or_default();
    if !raw.contains("context.") {
        return Ok((std::borrow::Cow::Borrowed(uri), Vec::new()));
    }
    let mut rest = Vec::new();
    let mut context = Vec::new();
    for part in raw.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match percent_decode(k)?.strip_prefix("context.") {
            Some(key) if !key.is_empty() => context.push((key.to_owned(), percent_decode(v)?)),
            _ => rest.push(part),
        }
    }
    let rebuilt: axum::http::Uri = format!("{}?{}", uri.path(), rest.join("&"))
        .parse()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("{e}")))?;
    Ok((std::borrow::Cow::Owned(rebuilt), context))
}

fn item_list(field: &str, raw: Option<&str>) -> Result<Vec<marquee_domain::ItemId>, ApiError> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(n, s)| item_id(&format!("{field}[{n}]"), s))
        .collect()
}

/// Events of an anonymous session read for its answer.
const SESSION_EVENTS: u32 = 50;

pub(crate) async fn recommendations(
    caller: BrowserOrStorefront,
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let (uri, context) = split_context(&uri)?;
    let Query(q) = Query::<RecommendationQuery>::try_from_uri(&uri)
        .map_err(|e: QueryRejection| ApiError::from(e))?;
    if caller == BrowserOrStorefront::Publishable && (q.user_id.is_some() || q.session_id.is_none())
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "wrong_key",
            "a publishable key may only read an anonymous session's answer: give session_id \
             and no user_id (ask your back end, with a storefront key, for a user's)",
        ));
    }
    let details = include_items(q.include.as_deref())?;
    if let Some(name) = q.placement.as_deref()
        && state.engine.has_placement(name)
    {
        return serve_placement(&state, name, &q, &context, details).await;
    }
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
    let exclude = item_list("exclude", q.exclude.as_deref())?;
    let recent = recent_events(&state, user.as_ref()).await?;
    let filters = Filters {
        category: q.category,
        min_price: q.min_price,
        max_price: q.max_price,
        exclude,
        include_seen: q.include_seen,
        include_out_of_stock: q.include_out_of_stock,
    };
    let session = match (&user, q.session_id.as_deref()) {
        (None, Some(s)) => Some(session_id(s)?),
        _ => None,
    };
    // An anonymous session: the items of its stored events, newest first.
    let session_items = match &session {
        Some(s) => {
            let mut items: Vec<marquee_domain::ItemId> = Vec::new();
            for e in state.store.events_of_session(s, SESSION_EVENTS).await? {
                if let Some(i) = e.item
                    && !items.contains(&i)
                {
                    items.push(i);
                }
            }
            items
        }
        None => Vec::new(),
    };
    let mut audience = Audience::new(user, session);
    let engine = audience.engine(&state, &placement);
    let k = q.k.unwrap_or(10);
    let answer = if session_items.is_empty() {
        engine.recommend(audience.user.as_ref(), &recent, k, &filters)?
    } else {
        engine.session(&session_items, k, &filters)?
    };
    answer_response_with(
        &state,
        answer,
        placement,
        audience,
        details.then_some(&*engine),
    )
}

/// `GET /v1/recommendations?placement=NAME`: the answer of a saved placement.
async fn serve_placement(
    state: &AppState,
    name: &str,
    q: &RecommendationQuery,
    context: &[(String, String)],
    details: bool,
) -> Result<Response, ApiError> {
    let user = q.user_id.as_deref().map(user_id).transpose()?;
    let session = q.session_id.as_deref().map(session_id).transpose()?;
    let item = q
        .item_id
        .as_deref()
        .map(|i| item_id("item_id", i))
        .transpose()?;
    let items = item_list("items", q.items.as_deref())?;
    let recent = recent_events(state, user.as_ref()).await?;
    let mut audience = Audience::new(user, session);
    let engine = audience.engine(state, name);
    let answer = place_with(
        state,
        &engine,
        name,
        &audience,
        &recent,
        item.as_ref(),
        &items,
        q.k,
        context,
    )?;
    answer_response_with(
        state,
        answer,
        name.to_owned(),
        audience,
        details.then_some(&*engine),
    )
}

/// The engine's answer of placement `name` for the audience, with the visitor's rotation
/// counts when the placement rotates.
#[allow(clippy::too_many_arguments)]
fn place_with(
    state: &AppState,
    engine: &Engine,
    name: &str,
    audience: &Audience,
    recent: &[marquee_domain::Event],
    item: Option<&marquee_domain::ItemId>,
    items: &[marquee_domain::ItemId],
    k: Option<usize>,
    context: &[(String, String)],
) -> Result<Answer, ApiError> {
    let visitor = match (&audience.user, &audience.session) {
        (Some(u), _) => Some(format!("u:{}", u.as_str())),
        (None, Some(s)) => Some(format!("s:{}", s.as_str())),
        _ => None,
    };
    let shown = match (engine.placement_rotation(name), visitor) {
        (Some(r), Some(v)) if state.record_impressions => {
            crate::placements::shown_unclicked(state, &v, r.within_hours, recent)
        }
        _ => Vec::new(),
    };
    let req = marquee_engine::PlaceRequest {
        user: audience.user.as_ref(),
        recent,
        item,
        items,
        k,
        context,
        shown_unclicked: &shown,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    Ok(engine.place(name, &req)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HomeQuery {
    user_id: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
    /// Placements to answer as the rows, in order (comma-separated), instead of the
    /// default rows.
    rows: Option<String>,
    /// `item`: each item with its catalog details.
    include: Option<String>,
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
    let details = include_items(q.include.as_deref())?;
    let user = q.user_id.as_deref().map(user_id).transpose()?;
    let recent = recent_events(&state, user.as_ref()).await?;
    if let Some(rows) = q.rows.as_deref() {
        return placement_rows(&state, rows, user, &recent, q.k, details);
    }
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
                items: if details {
                    ItemsOut::Detailed(with_details(&engine, &row.items).unwrap_or_default())
                } else {
                    ItemsOut::Plain(&row.items)
                },
            }
        })
        .collect();
    Ok(Json(serde_json::json!({"model_version": version, "rows": served})).into_response())
}

/// `/v1/home?rows=a,b`: one row per placement, in order; each is an answer of its own (its
/// own recommendation id, impression and experiment assignment).
fn placement_rows(
    state: &AppState,
    rows: &str,
    user: Option<UserId>,
    recent: &[marquee_domain::Event],
    k: usize,
    details: bool,
) -> Result<Response, ApiError> {
    let names: Vec<&str> = rows
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() || names.len() > 20 {
        return Err(ApiError::bad_request(
            "invalid_rows",
            "rows names 1 to 20 placements, comma-separated",
        ));
    }
    let mut answers = Vec::new();
    for name in &names {
        if !state.engine.has_placement(name) {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown_placement",
                format!("rows: no placement is named {name:?}"),
            ));
        }
        let mut audience = Audience::new(user.clone(), None);
        let engine = audience.engine(state, name);
        let answer = place_with(
            state,
            &engine,
            name,
            &audience,
            recent,
            None,
            &[],
            Some(k),
            &[],
        )?;
        answers.push((name, audience, engine, answer));
    }
    let version = state.engine.version();
    let mut served = Vec::new();
    for (name, audience, engine, answer) in &answers {
        let id = state.impressions().next_id();
        record(
            state,
            id,
            (**name).to_owned(),
            Audience {
                user: audience.user.clone(),
                session: None,
                assigned: audience.assigned.clone(),
            },
            answer.model_version.clone(),
            &answer.items,
        );
        served.push(ServedRow {
            recommendation_id: id.to_string(),
            placement: (**name).to_owned(),
            experiment: audience.assigned.as_ref().map(|(e, _)| e.as_str()),
            variant: audience.assigned.as_ref().map(|(_, v)| v.as_str()),
            id: name,
            title: name,
            about: None,
            items: if details {
                ItemsOut::Detailed(with_details(engine, &answer.items)?)
            } else {
                ItemsOut::Plain(&answer.items)
            },
        });
    }
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
