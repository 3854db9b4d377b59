//! The state every handler shares ([`AppState`]): the engine, the store, metrics, jobs, the
//! caches of verified keys and fresh events, the request budget and the event writer; how it
//! is built ([`AppState::new`] and its `with_*` options) and how it follows what other
//! replicas change in the shared store and model folder.

use crate::error::ApiError;
use crate::experiments::{BuildError, Running};
use crate::{fresh, impressions, jobs, metrics, writer};
use marquee_domain::{Actor, Event, UserId};
use marquee_engine::Engine;
use marquee_store::{KeyAccess, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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

/// Verified keys: key → (what it may do, when verified).
pub(crate) type KeyCache = HashMap<String, (Arc<KeyAccess>, Instant)>;

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub engine: Arc<Engine>,
    pub store: Store,
    /// Keys verified recently: key → (what it may do, when verified).
    pub(crate) keys: Arc<std::sync::RwLock<KeyCache>>,
    /// The publishable key the storefront demo pages embed in their tracker snippet.
    pub(crate) demo_tracker_key: Arc<tokio::sync::OnceCell<String>>,
    /// Users known to have events newer than the active model, and the model version and
    /// event sequence number that set is up to date with. Users outside it skip the store.
    pub(crate) fresh: Arc<std::sync::RwLock<fresh::Fresh>>,
    pub metrics: Arc<metrics::Metrics>,
    /// Background jobs (retrain, segments) and the tools they run.
    pub jobs: Arc<jobs::Jobs>,
    /// Requests per key and second (0: no limit).
    pub(crate) limiter: Arc<crate::auth::RateLimiter>,
    pub tools: jobs::Tools,
    /// The store's catalog version the engine's catalog facts were last loaded at (-1: not yet).
    pub(crate) catalog_seen: Arc<std::sync::atomic::AtomicI64>,
    /// Requests being answered, at most [`AppState::with_max_in_flight`]; more are shed.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    /// Whether the routers serve the web pages (storefront demo, admin dashboard).
    pub(crate) pages: bool,
    /// The group-commit writer of event batches, started by the first batch.
    pub(crate) writer: Arc<std::sync::OnceLock<writer::EventWriter>>,
    /// The impression writer, started by the first answer.
    pub(crate) impressions: Arc<std::sync::OnceLock<impressions::Impressions>>,
    /// Whether answers are recorded as impressions.
    pub(crate) record_impressions: bool,
    /// How long after an answer an event or order line is credited to it.
    pub(crate) attribution_window: chrono::TimeDelta,
    /// The running experiments, with the engines of their versions.
    pub(crate) experiments: Arc<arc_swap::ArcSwap<Running>>,
    /// Serialises rebuilds of `experiments`.
    pub(crate) experiments_building: Arc<tokio::sync::Mutex<()>>,
    /// The memory budget of the versions loaded for experiments, in bytes.
    pub(crate) experiment_budget: u64,
    /// The placements last served: (name, saved at), to tell when the store's changed.
    pub(crate) placements_seen: Arc<std::sync::Mutex<Option<crate::placements::Seen>>>,
    /// Whether every stored order was counted for bought-together answers.
    pub(crate) orders_counted: Arc<std::sync::atomic::AtomicBool>,
}

/// Requests answered at once (per listener pair) before new ones are shed with 503.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

impl AppState {
    pub fn new(engine: Arc<Engine>, store: Store) -> Self {
        Self(Arc::new(Shared {
            engine,
            store,
            keys: Arc::default(),
            demo_tracker_key: Arc::default(),
            fresh: Arc::default(),
            metrics: Arc::default(),
            jobs: Arc::default(),
            tools: jobs::Tools::beside_current_exe(marquee_store::DEFAULT_DATABASE_URL),
            limiter: Arc::default(),
            catalog_seen: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            pages: true,
            writer: Arc::default(),
            impressions: Arc::default(),
            record_impressions: true,
            attribution_window: impressions::DEFAULT_WINDOW,
            experiments: Arc::default(),
            experiments_building: Arc::default(),
            experiment_budget: crate::experiments::DEFAULT_MEMORY_BYTES,
            placements_seen: Arc::default(),
            orders_counted: Arc::default(),
        }))
    }

    /// The parts, to change while building (copied first if already shared).
    pub(crate) fn parts(&mut self) -> &mut Shared {
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
            for (engine, _) in self.experiments.load().engines.values() {
                engine.set_catalog(catalog.clone());
            }
            self.engine.set_catalog(catalog);
            self.catalog_seen.store(version, Ordering::Release);
        }
        self.follow_experiments().await?;
        self.follow_placements().await?;
        self.impressions()
            .follow(&self.store)
            .await
            .map_err(|e| format!("reading other replicas' impressions: {e}"))?;
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
        self.parts().limiter = Arc::new(crate::auth::RateLimiter {
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

    /// The event writer (started on first use, on the runtime of the request using it).
    fn event_writer(&self) -> &writer::EventWriter {
        self.writer
            .get_or_init(|| writer::EventWriter::spawn(self.store.clone()))
    }

    /// The impression writer and memory of recent answers (started by the first use).
    pub(crate) fn impressions(&self) -> &impressions::Impressions {
        self.impressions.get_or_init(|| {
            impressions::Impressions::spawn(
                self.store.clone(),
                self.metrics.clone(),
                impressions::QUEUE,
                self.attribution_window,
            )
        })
    }

    /// Waits until every impression queued so far is stored: `serve` calls it when it stops
    /// gracefully, and tests before they read impressions.
    pub async fn flush_impressions(&self) {
        if let Some(writer) = self.impressions.get() {
            writer.flush().await;
        }
    }

    /// Whether answers are recorded as impressions (default: yes). Without, answers still
    /// carry ids, and nothing is credited to them.
    pub fn with_impressions(mut self, on: bool) -> Self {
        self.parts().record_impressions = on;
        self
    }

    /// How long after an answer events and order lines are credited to it (default 24 h).
    pub fn with_attribution_window(mut self, window: chrono::TimeDelta) -> Self {
        self.parts().attribution_window = window;
        self
    }

    /// The memory budget of the model versions loaded for experiments (default 2 GiB).
    pub fn with_experiment_budget(mut self, bytes: u64) -> Self {
        self.parts().experiment_budget = bytes;
        self
    }

    /// Makes `experiments` (those running) what requests are assigned to, loading their
    /// versions; on an error nothing changes.
    pub(crate) async fn rebuild_experiments(
        &self,
        experiments: Vec<marquee_store::Experiment>,
    ) -> Result<(), BuildError> {
        let _one = self.experiments_building.lock().await;
        let catalog = self
            .store
            .all_items()
            .await
            .map_err(|e| BuildError::Store(e.to_string()))?;
        let root = self
            .engine
            .model_dir()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let current = self.experiments.load_full();
        let budget = self.experiment_budget;
        let built = tokio::task::spawn_blocking(move || {
            current.build(experiments, &root, &catalog, budget)
        })
        .await
        .map_err(|e| BuildError::Store(e.to_string()))??;
        let placements = self.engine.placements();
        for (engine, _) in built.engines.values() {
            engine.share_orders(&self.engine);
            engine.set_placements((*placements).clone());
        }
        self.experiments.store(Arc::new(built));
        Ok(())
    }

    /// Follows experiments started or stopped through another replica.
    async fn follow_experiments(&self) -> Result<(), String> {
        let stored = self
            .store
            .experiments()
            .await
            .map_err(|e| format!("reading experiments: {e}"))?;
        let running = |list: &[marquee_store::Experiment]| {
            list.iter()
                .filter(|e| e.state == "running")
                .map(|e| (e.name.clone(), e.placement.clone()))
                .collect::<Vec<_>>()
        };
        if running(&stored) == running(&self.experiments.load().built_from) {
            return Ok(());
        }
        self.rebuild_experiments(stored)
            .await
            .map_err(|e| format!("following experiments: {e}"))
    }

    /// Stores events (durable when this returns; committed together with the batches posted
    /// meanwhile), marks their users as having fresh events and counts them. Clicks (and
    /// views), adds to cart and purchases of items an answer showed are credited to that
    /// answer in the same transaction (the one `explicit` names for the event at the same
    /// position, if any; see [`impressions::Impressions::attribute`]).
    pub(crate) async fn record_events(
        &self,
        events: Vec<Event>,
        explicit: Vec<Option<marquee_store::RecommendationId>>,
    ) -> Result<marquee_store::EventsInserted, ApiError> {
        self.record_events_linked(events, explicit, Vec::new())
            .await
    }

    /// [`AppState::record_events`], linking anonymous sessions to the users they identified
    /// as in the same transaction (their earlier events then count as the users').
    pub(crate) async fn record_events_linked(
        &self,
        events: Vec<Event>,
        explicit: Vec<Option<marquee_store::RecommendationId>>,
        links: Vec<(marquee_domain::SessionId, UserId)>,
    ) -> Result<marquee_store::EventsInserted, ApiError> {
        use marquee_domain::EventKind;
        use marquee_store::Outcome as O;
        let outcomes: Vec<impressions::Outcome> = events
            .iter()
            .enumerate()
            .filter_map(|(n, e)| {
                let kind = match e.kind {
                    EventKind::Click | EventKind::View => O::Click,
                    EventKind::AddToCart => O::AddToCart,
                    EventKind::Purchase => O::Purchase,
                    _ => return None,
                };
                Some(impressions::Outcome {
                    key: format!("e:{}", e.id.as_str()),
                    visitor: match &e.actor {
                        Actor::User(u) => format!("u:{}", u.as_str()),
                        Actor::Session(s) => format!("s:{}", s.as_str()),
                    },
                    item: e.item.clone()?,
                    at: e.timestamp,
                    kind,
                    explicit: explicit.get(n).copied().flatten(),
                    revenue_minor: 0,
                })
            })
            .collect();
        let attributions = if outcomes.is_empty() {
            Vec::new()
        } else {
            self.impressions().attribute(&self.store, outcomes).await
        };
        let users: Vec<UserId> = events
            .iter()
            .filter_map(|e| match &e.actor {
                Actor::User(u) => Some(u.clone()),
                Actor::Session(_) => None,
            })
            .collect();
        let stored = self
            .event_writer()
            .write(events, links, attributions)
            .await?;
        for u in &users {
            self.note_fresh_user(u.as_str());
        }
        self.metrics.add_events(stored.inserted);
        Ok(stored)
    }
}
