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
//! | `POST /v1/events` `{events: [...]}` | behaviour events, durable before `202` |
//! | `GET /metrics` | Prometheus text: requests and latency by route, events ingested, model version (no key) |
//!
//! The storefront also serves the catalog (`GET /v1/items`, `/v1/items/{id}`,
//! `/v1/categories`) and orders (`POST /v1/orders`, `GET /v1/orders/{id}`,
//! `GET /v1/users/{id}/orders`) (module `catalog`).
//!
//! Admin router (`Authorization: Bearer <admin key>`, its own listener): model versions and
//! activation, segments (members, export, recompute), background jobs (retrain), analytics
//! (module `admin`), items, orders, users, API keys and the audit log (module `catalog`).
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
mod catalog;
pub mod first_start;
pub mod jobs;
pub mod metrics;
mod pages;
mod writer;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, SessionId, UserId};
use marquee_engine::{Answer, Engine, Filters};
use marquee_store::{ApiKeyRole, Store};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long a request may take before it is answered with `503 timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most events one `POST /v1/events` may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1_000;
/// Events of a user read to fold into their recommendations: the newest 50 since training
/// (reading more costs each such request a row per event; the soak measured 550 answers/s
/// at 200 and 1,320 at 50 when every user had hundreds of fresh events).
const RECENT_EVENTS: u32 = 50;

/// How long a verified key is trusted without asking the store again (a revoked key stops
/// working within this time).
pub const KEY_CACHE_SECONDS: u64 = 30;

/// What the handlers share: one reference-counted [`Shared`], so the per-request copies axum
/// makes of the state cost one counter update, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub engine: Arc<Engine>,
    pub store: Store,
    /// Keys verified recently: key → (role, when verified).
    keys: Arc<std::sync::RwLock<HashMap<String, (ApiKeyRole, Instant)>>>,
    /// Users known to have events newer than the active model, and the model version and
    /// event sequence number that set is up to date with. Users outside it skip the store.
    fresh: Arc<std::sync::RwLock<Fresh>>,
    pub metrics: Arc<metrics::Metrics>,
    /// Background jobs (retrain, segments) and the tools they run.
    pub jobs: Arc<jobs::Jobs>,
    /// Requests per key and second (0: no limit).
    limiter: Arc<RateLimiter>,
    pub tools: jobs::Tools,
    /// The store's catalog version the engine's catalog facts were last loaded at (-1: not yet).
    catalog_seen: Arc<std::sync::atomic::AtomicI64>,
    /// Requests being answered, at most [`AppState::with_max_in_flight`]; more are shed.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Whether the routers serve the web pages (storefront demo, admin dashboard).
    pages: bool,
    /// The group-commit writer of event batches, started by the first batch.
    writer: Arc<std::sync::OnceLock<writer::EventWriter>>,
}

/// Requests answered at once (per listener pair) before new ones are shed with 503.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

#[derive(Debug, Default)]
struct Fresh {
    version: String,
    seq: i64,
    users: std::collections::HashSet<String>,
    /// Per user with fresh events: what was last read of them from the store, and a
    /// generation that every new event of the user bumps (so a read that raced with a new
    /// event is not kept). Bounded by [`MAX_CACHED_USERS`]; `era` moves when it is emptied.
    cached: HashMap<String, Cached>,
    era: u64,
}

#[derive(Debug, Default)]
struct Cached {
    generation: u64,
    /// The sequence number of the user's newest event the poll has reported.
    polled: i64,
    events: Option<Arc<Vec<Event>>>,
}

/// Users whose fresh events are kept in memory at most (then the cache starts over).
const MAX_CACHED_USERS: usize = 100_000;

impl Fresh {
    /// A user has new events: what was read of them is out of date.
    fn invalidate(&mut self, user: &str) {
        self.entry(user).generation += 1;
        self.entry(user).events = None;
    }

    /// The poll reports the user's newest event number: out of date only if it moved (a
    /// backend that looks back reports users again with numbers already seen).
    fn polled(&mut self, user: &str, newest: i64) {
        let entry = self.entry(user);
        if newest > entry.polled {
            entry.polled = newest;
            entry.generation += 1;
            entry.events = None;
        }
    }

    fn entry(&mut self, user: &str) -> &mut Cached {
        if !self.cached.contains_key(user) && self.cached.len() >= MAX_CACHED_USERS {
            self.cached.clear();
            self.era += 1;
        }
        self.cached.entry(user.to_owned()).or_default()
    }
}

/// Where a read of a user's fresh events started: kept only if nothing moved meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadMark {
    version: String,
    era: u64,
    generation: u64,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, store: Store) -> Self {
        Self(Arc::new(Shared {
            engine,
            store,
            keys: Arc::default(),
            fresh: Arc::default(),
            metrics: Arc::default(),
            jobs: Arc::default(),
            tools: jobs::Tools::beside_current_exe(marquee_store::DEFAULT_DATABASE_URL),
            limiter: Arc::default(),
            catalog_seen: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            pages: true,
            writer: Arc::default(),
        }))
    }

    /// The parts, to change while building (copied first if already shared).
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Answers at most `n` requests at once on each listener; beyond that a request is shed at once with
    /// `503 overloaded` and `Retry-After: 1` (health and metrics routes are never shed), so
    /// an overload costs clients a quick retry instead of a queue that grows without bound.
    /// Whether the routers serve the web pages (default: yes): the storefront demo at the
    /// storefront listener's `/`, the admin dashboard at the admin listener's `/`.
    pub fn with_pages(mut self, on: bool) -> Self {
        self.parts().pages = on;
        self
    }

    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.parts().in_flight = Arc::new(tokio::sync::Semaphore::new(
            n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        ));
        self
    }

    /// Catches up with what other replicas (or tools) changed in the shared store and model
    /// folder: reloads the catalog facts when the store's catalog version moved, and swaps in
    /// the model version the folder's `active` file names when another replica activated one.
    /// `serve` calls it every second. Errors are for logging; the server keeps what it has.
    pub async fn follow_shared_changes(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let version = self
            .store
            .catalog_version()
            .await
            .map_err(|e| format!("reading the catalog version: {e}"))?;
        if self.catalog_seen.load(Ordering::Acquire) != version {
            let catalog = self
                .store
                .all_items()
                .await
                .map_err(|e| format!("reloading the catalog: {e}"))?;
            self.engine.set_catalog(catalog);
            self.catalog_seen.store(version, Ordering::Release);
        }
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || engine.follow_active()).await {
            Ok(Ok(Some(v))) => {
                tracing::info!(version = %v, "followed a model activation of another replica");
                Ok(())
            }
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => Err(format!("following the active model version: {e}")),
            Err(e) => Err(format!("following the active model version: {e}")),
        }
    }

    /// Limits every key to `per_second` requests per second (0: no limit); requests over it
    /// get `429 rate_limited` with `Retry-After`.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.parts().limiter = Arc::new(RateLimiter {
            limit: per_second,
            windows: Default::default(),
        });
        self
    }

    /// Where the `train` and `segments` tools are and which store they read.
    pub fn with_tools(mut self, tools: jobs::Tools) -> Self {
        self.parts().tools = tools;
        self
    }

    /// Brings the set of users with events newer than the model up to date: everything after
    /// the last sequence number seen (all of it when the model changed). Call it regularly
    /// (`serve` does, every 250 ms) so events stored through another replica count too.
    pub async fn refresh_fresh_users(&self) -> Result<(), marquee_store::Error> {
        let version = self.engine.version();
        let after_seq = match self.fresh.read() {
            Ok(f) if f.version == version => f.seq,
            _ => 0,
        };
        let (users, seq) = self
            .store
            .users_with_events_after(after_seq, self.engine.trained_until())
            .await?;
        if let Ok(mut f) = self.fresh.write() {
            if f.version != version {
                *f = Fresh {
                    version,
                    ..Fresh::default()
                };
            }
            for (user, newest) in users {
                f.polled(&user, newest);
                f.users.insert(user);
            }
            f.seq = f.seq.max(seq);
        }
        Ok(())
    }

    /// The user's fresh events as last read, if nothing changed since; else where a new read
    /// starts from.
    fn cached_recent(&self, user: &str) -> Result<Arc<Vec<Event>>, Option<ReadMark>> {
        let Ok(f) = self.fresh.read() else {
            return Err(None);
        };
        let version = self.engine.version();
        if f.version != version {
            return Err(None);
        }
        let generation = match f.cached.get(user) {
            Some(Cached {
                events: Some(events),
                ..
            }) => return Ok(events.clone()),
            Some(c) => c.generation,
            None => 0,
        };
        Err(Some(ReadMark {
            version,
            era: f.era,
            generation,
        }))
    }

    /// Keeps what a read found, unless the model or the user's events moved since `mark`.
    fn keep_recent(&self, user: &str, mark: ReadMark, events: Arc<Vec<Event>>) {
        let Ok(mut f) = self.fresh.write() else {
            return;
        };
        if f.version != mark.version || f.era != mark.era {
            return;
        }
        let generation = f.cached.get(user).map_or(0, |c| c.generation);
        if generation != mark.generation {
            return;
        }
        if f.cached.len() >= MAX_CACHED_USERS && !f.cached.contains_key(user) {
            return;
        }
        f.cached.entry(user.to_owned()).or_default().events = Some(events);
    }

    /// Whether the user may have events newer than the model (true when unsure).
    fn may_have_fresh_events(&self, user: &str) -> bool {
        match self.fresh.read() {
            Ok(f) if f.version == self.engine.version() && f.seq > 0 => f.users.contains(user),
            _ => true,
        }
    }

    pub(crate) fn note_fresh_user(&self, user: &str) {
        if let Ok(mut f) = self.fresh.write() {
            f.invalidate(user);
            f.users.insert(user.to_owned());
        }
    }

    /// The event writer (started on first use, on the runtime of the request using it).
    fn event_writer(&self) -> &writer::EventWriter {
        self.writer
            .get_or_init(|| writer::EventWriter::spawn(self.store.clone()))
    }

    /// Stores events (durable when this returns; committed together with the batches posted
    /// meanwhile), marks their users as having fresh events and counts them.
    pub(crate) async fn record_events(
        &self,
        events: Vec<Event>,
    ) -> Result<marquee_store::EventsInserted, ApiError> {
        let users: Vec<UserId> = events
            .iter()
            .filter_map(|e| match &e.actor {
                Actor::User(u) => Some(u.clone()),
                Actor::Session(_) => None,
            })
            .collect();
        let stored = self
            .event_writer()
            .write(events)
            .await
            .map_err(ApiError::internal)?;
        for u in &users {
            self.note_fresh_user(u.as_str());
        }
        self.metrics.add_events(stored.inserted);
        Ok(stored)
    }

    /// Drops every cached key verification (after a key is revoked).
    pub(crate) fn forget_keys(&self) {
        if let Ok(mut keys) = self.keys.write() {
            keys.clear();
        }
    }

    /// The role of a key: from the cache if verified within [`KEY_CACHE_SECONDS`], else from
    /// the store (unknown keys are not cached, so a new key works at once).
    async fn role_of(&self, key: &str) -> Result<Option<ApiKeyRole>, marquee_store::Error> {
        let fresh = Duration::from_secs(KEY_CACHE_SECONDS);
        if let Ok(keys) = self.keys.read()
            && let Some((role, at)) = keys.get(key)
            && at.elapsed() < fresh
        {
            return Ok(Some(*role));
        }
        let role = self.store.verify_api_key(key).await?;
        if let (Some(r), Ok(mut keys)) = (role, self.keys.write()) {
            if keys.len() > 10_000 {
                keys.retain(|_, (_, at)| at.elapsed() < fresh);
            }
            keys.insert(key.to_owned(), (r, Instant::now()));
        }
        Ok(role)
    }
}

/// Fixed one-second windows of requests per key.
#[derive(Debug, Default)]
struct RateLimiter {
    limit: u32,
    windows: std::sync::RwLock<HashMap<String, Arc<Window>>>,
}

#[derive(Debug, Default)]
struct Window {
    second: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU32,
}

impl RateLimiter {
    /// Counts a request of `key`; `Err(seconds to wait)` when over the limit.
    fn check(&self, key: &str) -> Result<(), u64> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.limit == 0 {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let known = self.windows.read().ok().and_then(|w| w.get(key).cloned());
        let window = match known {
            Some(w) => w,
            None => {
                let Ok(mut all) = self.windows.write() else {
                    return Ok(());
                };
                if all.len() > 10_000 {
                    all.retain(|_, w| w.second.load(Relaxed) + 1 >= now);
                }
                all.entry(key.to_owned()).or_default().clone()
            }
        };
        let second = window.second.load(Relaxed);
        if second != now
            && window
                .second
                .compare_exchange(second, now, Relaxed, Relaxed)
                .is_ok()
        {
            window.count.store(0, Relaxed);
        }
        if window.count.fetch_add(1, Relaxed) < self.limit {
            Ok(())
        } else {
            Err(1)
        }
    }
}

/// An error answer: a status, a stable code and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An error that is not the client's: a 500 with the details in the log, or a 503 with
    /// `Retry-After` when the store is only busy (locked by another writer, or out of
    /// connections), which a retry gets past.
    pub(crate) fn internal<E: std::fmt::Display + 'static>(e: E) -> Self {
        let any: &dyn std::any::Any = &e;
        if let Some(store) = any.downcast_ref::<marquee_store::Error>()
            && store.is_busy()
        {
            tracing::warn!("store busy: {e}");
            return Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_busy",
                    "the database is busy (locked by another writer); retry in a second",
                )
            };
        }
        tracing::error!("internal error: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not answer; the error is logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "invalid_body", r.body_text())
    }
}

impl From<marquee_engine::Error> for ApiError {
    fn from(e: marquee_engine::Error) -> Self {
        match e {
            marquee_engine::Error::BadK(_) => Self::bad_request("invalid_k", e.to_string()),
            marquee_engine::Error::UnknownItem(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_item", e.to_string())
            }
            other => Self::internal(other),
        }
    }
}

/// Checks the bearer key against the store for `role`.
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    role: ApiKeyRole,
) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_key",
            "send the API key as `Authorization: Bearer <key>`",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "the Authorization header must be `Bearer <key>`",
            )
        })?;
    let key = key.trim();
    match state.role_of(key).await {
        Ok(Some(r)) if r == role => state.limiter.check(key).map_err(|wait| ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this key sent more than {} requests in a second; retry after {wait} s",
                    state.limiter.limit
                ),
            )
        }),
        Ok(Some(r)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_key",
            format!("a {} key cannot call {} routes", r.as_str(), role.as_str()),
        )),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "the API key is unknown or revoked",
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The storefront router.
pub fn storefront_router(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/recommendations", get(recommendations))
        .route("/v1/recommendations/session", post(session))
        .route("/v1/home", get(home))
        .route("/v1/items/{id}/similar", get(similar))
        .route("/v1/items", get(catalog::items))
        .route("/v1/items/{id}", get(catalog::item))
        .route("/v1/categories", get(catalog::categories))
        .route("/v1/orders", post(catalog::place_order))
        .route("/v1/orders/{id}", get(catalog::get_order))
        .route("/v1/users/{id}/orders", get(catalog::user_orders))
        .route("/v1/events", post(events))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi));
    let router = if state.pages {
        router.merge(pages::shop::routes())
    } else {
        router
    };
    with_common_layers(router, state)
}

/// The admin router (`Authorization: Bearer <admin key>`): the model versions on disk and
/// activating one (a hot swap: requests in flight finish on the old model; a damaged
/// artifact is refused and the active one stays), and the latest customer segments.
pub fn admin_router(mut state: AppState) -> Router {
    // Its own request budget, so an overloaded storefront never locks operators out.
    let permits = state.in_flight.available_permits().max(1);
    state.parts().in_flight = Arc::new(tokio::sync::Semaphore::new(permits));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/v1/admin/models", get(list_models))
        .route("/v1/admin/models/{version}/activate", post(activate_model))
        .route("/v1/admin/segments", get(list_segments))
        .route("/v1/admin/segments/{name}/members", get(segment_members))
        .route("/v1/admin/segments/export", get(admin::export_segment))
        .route(
            "/v1/admin/segments/recompute",
            post(admin::recompute_segments),
        )
        .route("/v1/admin/jobs", get(admin::list_jobs))
        .route("/v1/admin/jobs/retrain", post(admin::retrain))
        .route("/v1/admin/jobs/{id}", get(admin::get_job))
        .route("/v1/admin/analytics/revenue", get(admin::revenue))
        .route("/v1/admin/analytics/top-products", get(admin::top_products))
        .route("/v1/admin/analytics/funnel", get(admin::funnel))
        .route("/v1/admin/analytics/customers", get(admin::customers))
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
        .route("/v1/admin/orders", get(catalog::admin_orders))
        .route(
            "/v1/admin/orders/{id}",
            get(catalog::admin_order).patch(catalog::set_order_status),
        )
        .route("/v1/admin/users", get(catalog::admin_users))
        .route(
            "/v1/admin/users/{id}",
            get(catalog::admin_user).put(catalog::put_user),
        )
        .route(
            "/v1/admin/keys",
            get(catalog::list_keys).post(catalog::create_key),
        )
        .route("/v1/admin/keys/{prefix}", delete(catalog::revoke_key))
        .route("/v1/admin/audit", get(catalog::audit_log));
    let router = if state.pages {
        router.merge(pages::dashboard::routes())
    } else {
        router
    };
    let router = router.layer(axum::middleware::from_fn_with_state(state.clone(), audit));
    with_common_layers(router, state)
}

/// What both routers share: the JSON 404, metrics and timeout, and the body limit.
fn with_common_layers(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The folder holding the active model's versions (the parent of its version folder).
pub(crate) fn model_root(state: &AppState) -> std::path::PathBuf {
    let dir = state.engine.model_dir();
    dir.parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(dir)
}

async fn list_models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let active = state.engine.version();
    let versions: Vec<serde_json::Value> = model_versions(&state)?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "version": m.version,
                "kind": m.kind,
                "created_at": m.created_at,
                "active": m.version == active,
                "metrics": m.metrics.get("test").cloned().unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"active": active, "versions": versions})).into_response())
}

/// The manifests of the model versions on disk, newest version name first (folders without
/// a readable manifest are skipped).
pub(crate) fn model_versions(state: &AppState) -> Result<Vec<marquee_engine::Manifest>, ApiError> {
    let root = model_root(state);
    let mut versions = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(ApiError::internal)?;
    for entry in entries.flatten() {
        let manifest = entry.path().join("manifest.json");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Ok(m) = serde_json::from_str::<marquee_engine::Manifest>(&text) {
            versions.push(m);
        }
    }
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(versions)
}

async fn activate_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let v = activate(&state, &version).await?;
    Ok(Json(serde_json::json!({"model_version": v})).into_response())
}

/// Activates model version `version` (swap, and the model folder's `active` file).
pub(crate) async fn activate(state: &AppState, version: &str) -> Result<String, ApiError> {
    if version.is_empty() || version.starts_with('.') || version.contains(['/', '\\']) {
        return Err(ApiError::bad_request(
            "invalid_version",
            format!("{version:?} is not a version name"),
        ));
    }
    let dir = model_root(state).join(version);
    if !dir.join("manifest.json").is_file() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_version",
            format!("there is no model version {version:?}"),
        ));
    }
    let engine = state.engine.clone();
    let swapped = tokio::task::spawn_blocking(move || engine.activate(&dir))
        .await
        .map_err(ApiError::internal)?;
    match swapped {
        Ok(v) => Ok(v),
        Err(e @ marquee_engine::Error::Pointer { .. }) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "activation_not_recorded",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_model",
            format!(
                "{e}; the active model ({}) keeps serving",
                state.engine.version()
            ),
        )),
    }
}

/// The latest segmentation run and each segment's size and revenue share.
async fn list_segments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let run = latest_run(&state).await?;
    let sizes = state
        .store
        .segment_sizes(&run.version)
        .await
        .map_err(ApiError::internal)?;
    let total: i64 = sizes.iter().map(|s| s.2).sum();
    let segments: Vec<serde_json::Value> = sizes
        .into_iter()
        .map(|(segment, customers, revenue)| {
            serde_json::json!({
                "segment": segment,
                "customers": customers,
                "revenue_minor": revenue,
                "revenue_share": if total != 0 { revenue as f64 / total as f64 } else { 0.0 },
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"run": run, "segments": segments})).into_response())
}

/// The segment sizes of `run`, or a 404 naming the segments when `name` has no members.
pub(crate) async fn segment_sizes_with(
    state: &AppState,
    run: &marquee_store::SegmentRun,
    name: &str,
) -> Result<Vec<(String, u64, i64)>, ApiError> {
    let sizes = state
        .store
        .segment_sizes(&run.version)
        .await
        .map_err(ApiError::internal)?;
    if !sizes.iter().any(|s| s.0 == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_segment",
            format!(
                "segment {name:?} has no members in run {}; segments: {}",
                run.version,
                sizes
                    .iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(sizes)
}

pub(crate) async fn latest_run(state: &AppState) -> Result<marquee_store::SegmentRun, ApiError> {
    state
        .store
        .latest_segment_run()
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_segments",
                "no segments computed yet; run `segments compute`",
            )
        })
}

fn default_per_page() -> usize {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    page: usize,
    #[serde(default = "default_per_page")]
    per_page: usize,
}

/// One page of a segment's members (by user id), from the latest run.
async fn segment_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Admin).await?;
    let Query(q) = query?;
    if q.per_page == 0 || q.per_page > 1_000 {
        return Err(ApiError::bad_request(
            "invalid_per_page",
            format!("per_page must be between 1 and 1000, not {}", q.per_page),
        ));
    }
    let run = latest_run(&state).await?;
    let sizes = segment_sizes_with(&state, &run, &name).await?;
    let total = sizes.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
    let page = state
        .store
        .segment_members_page(
            &run.version,
            Some(&name),
            (q.page as u64).saturating_mul(q.per_page as u64),
            q.per_page as u64,
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({
        "run": run.version,
        "segment": name,
        "total": total,
        "page": q.page,
        "per_page": q.per_page,
        "members": page,
    }))
    .into_response())
}

/// Writes every changing admin request (not GET or HEAD), refused ones included, to the
/// audit log: the key's prefix, the method and path, the answer's status.
async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let key_prefix = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or_else(|| "-".to_owned(), |k| k.trim().chars().take(14).collect());
    let response = next.run(request).await;
    // Dashboard forms carry no key; their handler names the session's key.
    let key_prefix = match response.extensions().get::<pages::dashboard::AuditActor>() {
        Some(actor) if key_prefix == "-" => actor.0.clone(),
        _ => key_prefix,
    };
    let entry = marquee_store::AuditEntry {
        at: chrono::Utc::now(),
        key_prefix,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    };
    tracing::info!(key = %entry.key_prefix, method = %entry.method, path = %entry.path, status = entry.status, "admin action");
    if let Err(e) = state.store.record_audit(&entry).await {
        tracing::warn!("writing the audit log failed: {e}");
    }
    response
}

/// Times every request, answers `503 timeout` after [`REQUEST_TIMEOUT`], and counts it under
/// its route pattern (unmatched: "other").
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
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

async fn metrics_text(State(state): State<AppState>) -> Response {
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

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The OpenAPI 3.1 document of both routers (no key needed).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
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

fn default_k() -> usize {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendationQuery {
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

async fn recent_events(state: &AppState, user: Option<&str>) -> Result<Vec<Event>, ApiError> {
    let Some(user) = user else {
        return Ok(Vec::new());
    };
    let id =
        UserId::new(user).map_err(|e| ApiError::bad_request("invalid_user_id", e.to_string()))?;
    if !state.may_have_fresh_events(user) {
        return Ok(Vec::new());
    }
    // Read once per change of the user's events, not once per request.
    let mark = match state.cached_recent(user) {
        Ok(events) => return Ok(events.as_ref().clone()),
        Err(mark) => mark,
    };
    let since = state.engine.trained_until();
    let mut events = state
        .store
        .events_of_user_after(&id, since, RECENT_EVENTS)
        .await
        .map_err(ApiError::internal)?;
    // Orders placed since training count as purchases of their items.
    let orders = state
        .store
        .orders_of_user_after(&id, since, 20)
        .await
        .map_err(ApiError::internal)?;
    for o in orders.iter().filter(|o| !o.status.is_reversal()) {
        for (n, line) in o.lines.iter().enumerate() {
            let Ok(event_id) = EventId::new(format!("order:{}:{n}", o.id.as_str())) else {
                continue;
            };
            events.push(Event {
                id: event_id,
                actor: Actor::User(id.clone()),
                item: Some(line.item.clone()),
                kind: EventKind::Purchase,
                value: None,
                timestamp: o.created_at,
                context: None,
            });
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    if let Some(mark) = mark {
        state.keep_recent(user, mark, Arc::new(events.clone()));
    }
    Ok(events)
}

async fn recommendations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RecommendationQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Query(q) = query?;
    if let (Some(lo), Some(hi)) = (q.min_price, q.max_price)
        && lo > hi
    {
        return Err(ApiError::bad_request(
            "invalid_price_range",
            format!("min_price {lo} is above max_price {hi}"),
        ));
    }
    let recent = recent_events(&state, q.user_id.as_deref()).await?;
    let filters = Filters {
        category: q.category,
        min_price: q.min_price,
        max_price: q.max_price,
        exclude: q
            .exclude
            .map(|e| {
                e.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        include_seen: q.include_seen,
        include_out_of_stock: q.include_out_of_stock,
    };
    let answer = state
        .engine
        .recommend(q.user_id.as_deref(), &recent, q.k, &filters)?;
    answer_response(&answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HomeQuery {
    user_id: Option<String>,
    #[serde(default = "default_k")]
    k: usize,
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Query(q) = query?;
    let recent = recent_events(&state, q.user_id.as_deref()).await?;
    let rows = state.engine.home(q.user_id.as_deref(), &recent, q.k)?;
    Ok(
        Json(serde_json::json!({"model_version": state.engine.version(), "rows": rows}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KQuery {
    #[serde(default = "default_k")]
    k: usize,
}

async fn similar(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<KQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Query(q) = query?;
    let answer = state.engine.similar(&id, q.k, &Filters::default())?;
    answer_response(&answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    items: Vec<String>,
    #[serde(default = "default_k")]
    k: usize,
}

async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SessionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Json(b) = body?;
    let answer = state.engine.session(&b.items, b.k, &Filters::default())?;
    answer_response(&answer)
}

/// One event as a storefront sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    event_id: String,
    user_id: Option<String>,
    session_id: Option<String>,
    item_id: Option<String>,
    kind: String,
    value: Option<f32>,
    /// RFC 3339; the server's clock when absent.
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
    context: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    events: Vec<EventIn>,
}

fn to_event(n: usize, e: EventIn, now: chrono::DateTime<chrono::Utc>) -> Result<Event, ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::bad_request("invalid_event", format!("events[{n}].{field}: {message}"))
    };
    let actor = match (e.user_id, e.session_id) {
        (Some(u), None) => Actor::User(UserId::new(u).map_err(|x| bad("user_id", x.to_string()))?),
        (None, Some(s)) => {
            Actor::Session(SessionId::new(s).map_err(|x| bad("session_id", x.to_string()))?)
        }
        _ => {
            return Err(bad(
                "user_id",
                "give exactly one of user_id and session_id".into(),
            ));
        }
    };
    let event = Event {
        id: EventId::new(e.event_id).map_err(|x| bad("event_id", x.to_string()))?,
        actor,
        item: e
            .item_id
            .map(ItemId::new)
            .transpose()
            .map_err(|x| bad("item_id", x.to_string()))?,
        kind: EventKind::parse(&e.kind).map_err(|x| bad("kind", x.to_string()))?,
        value: e.value,
        timestamp: e.timestamp.unwrap_or(now),
        context: e.context,
    };
    event
        .validate(now)
        .map_err(|x| bad(x.field(), x.to_string()))?;
    Ok(event)
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<EventsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, ApiKeyRole::Storefront).await?;
    let Json(b) = body?;
    if b.events.is_empty() || b.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!(
                "send between 1 and {MAX_EVENTS_PER_BATCH} events per request, not {}",
                b.events.len()
            ),
        ));
    }
    let now = chrono::Utc::now();
    let events = b
        .events
        .into_iter()
        .enumerate()
        .map(|(n, e)| to_event(n, e, now))
        .collect::<Result<Vec<_>, _>>()?;
    let stored = state.record_events(events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "accepted": stored.inserted,
            "duplicates": stored.duplicates,
        })),
    )
        .into_response())
}
