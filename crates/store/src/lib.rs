//! Persistence of the catalog, customers, orders, behaviour events and API keys.
//!
//! [`Store`] is the one interface the rest of the engine uses; which database sits behind it
//! is chosen by the `DATABASE_URL` it is opened with: SQLite (`sqlite://PATH`, one file in WAL
//! mode, created and migrated on open) is the embedded default; PostgreSQL
//! (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, migrated on open) serves several replicas.
//! Both run the same queries ([`sql`]); the backend is an enum dispatched here, and every
//! method speaks in domain types, never in SQL rows.
//!
//! Writes are durable when a method returns (`synchronous = FULL`). Event inserts are
//! idempotent on `event_id`. Large loads go through [`Import`], one transaction that either
//! commits everything or leaves the store as it was.
//!
//! Threading: `Store` is a cheap `Clone` handle over a connection pool and may be shared
//! between tasks; all methods are async (tokio).

pub mod behaviour;
pub mod impressions;
mod keys;
pub mod kpis;
mod orders;
mod postgres;
mod segments;
mod sql;
mod sqlite;
pub mod testing;

use marquee_domain::{
    Event, EventKind, Item, ItemId, Order, OrderId, OrderStatus, SessionId, Timestamp, User,
    UserId, ValidationError,
};

pub use impressions::{
    Attribution, Experiment, GroupBy, Impression, ImpressionBatch, Outcome, RecommendationId,
    RecommendationKpis, ShownItems, StoredPlacement, Variant, VariantCounts,
};
pub use keys::{ApiKeyRole, NewApiKey, check_origins};
pub use orders::{LineRequest, OrderRefused, OrderRequest, Placed};
pub use segments::{SegmentMember, SegmentRun};

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    postgres::redact(url)
}

/// The default `DATABASE_URL`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://marquee.db";

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported DATABASE_URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot open the database at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} #{index} is invalid: {source}")]
    Invalid {
        what: &'static str,
        index: usize,
        #[source]
        source: ValidationError,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of SQLite's own reads that bypass sqlx (the streaming reads of events and
    /// orders).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An order the store would not place ([`Store::place_order`]).
    #[error("{0}")]
    OrderRefused(OrderRefused),
}

impl Error {
    /// Whether the database was only busy: locked by another writer past the wait (SQLite's
    /// BUSY/LOCKED, PostgreSQL's lock timeout) or out of pooled connections. Retrying later
    /// can succeed; nothing was written.
    pub fn is_busy(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::PoolTimedOut) => true,
            Self::Database(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| {
                    // SQLite reports (extended) result codes; 5 BUSY and 6 LOCKED, extended
                    // codes keep them in the low byte.
                    code.parse::<i32>()
                        .map(|c| matches!(c & 0xff, 5 | 6))
                        .unwrap_or(false)
                        || code == "55P03"
                }),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Row counts, as `data stats` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub items: u64,
    pub orders: u64,
    pub order_lines: u64,
    pub events: u64,
    /// Events of kind `rating` (also counted in `events`).
    pub ratings: u64,
    /// Distinct anonymous sessions among the events.
    pub sessions: u64,
}

/// What an event insert did: new events stored, and retried ones (same `event_id`) ignored.
/// A catalog search: items by id order, after `after`, at most `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemQuery<'a> {
    /// Only this category.
    pub category: Option<&'a str>,
    /// Only items whose title or id contains this text (case-insensitive for ASCII).
    pub text: Option<&'a str>,
    /// Start after this item id (paging).
    pub after: Option<&'a str>,
    pub limit: u32,
    /// Also hidden items (the admin API's view).
    pub include_hidden: bool,
    /// Also items out of stock.
    pub include_out_of_stock: bool,
}

/// One admin action of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The acting key's prefix (the key itself is never stored).
    pub key_prefix: String,
    pub method: String,
    pub path: String,
    /// The answer's HTTP status.
    pub status: u16,
}

/// An API key as listings show it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyInfo {
    pub prefix: String,
    pub role: ApiKeyRole,
    pub label: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// The origins a publishable key may be used from (empty for other roles).
    pub origins: Vec<String>,
    /// A publishable key in clear (it is meant to be put in pages); `None` for other roles.
    pub key: Option<String>,
}

/// How much of the orders [`Store::touches`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderTouches {
    None,
    /// Who ordered when.
    Times,
    /// Who ordered what when.
    WithItems,
}

/// What a presented key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAccess {
    pub role: ApiKeyRole,
    /// The allowed origins of a publishable key.
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsInserted {
    pub inserted: u64,
    pub duplicates: u64,
}

/// A handle on the store. Clone it freely.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// One all-or-nothing bulk write: everything added is committed together by
/// [`Import::commit`], or nothing is if the import is dropped or fails.
pub struct Import {
    inner: ImportInner,
}

enum ImportInner {
    Sqlite(sqlite::SqliteImport),
    Postgres(postgres::PostgresImport),
}

/// Calls the same method on whichever backend `$on` holds.
macro_rules! dispatch {
    ($on:expr, $b:ident => $call:expr) => {
        match $on {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

/// Calls the same method on whichever backend's import `$on` holds.
macro_rules! dispatch_import {
    ($on:expr, $i:ident => $call:expr) => {
        match $on {
            ImportInner::Sqlite($i) => $call,
            ImportInner::Postgres($i) => $call,
        }
    };
}

impl Store {
    /// Opens (and creates and migrates, if needed) the store named by a `DATABASE_URL`:
    /// `sqlite://PATH` (relative or absolute path; `sqlite::memory:` for a throwaway store) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (the database must exist; its tables are
    /// created on first open).
    pub async fn open(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(Error::Url {
                    url: url.into(),
                    reason: "no file path after sqlite://".into(),
                });
            }
            let backend = sqlite::SqliteStore::open(url, path).await?;
            return Ok(Self {
                backend: Backend::Sqlite(backend),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let backend = postgres::PostgresStore::open(url).await?;
            return Ok(Self {
                backend: Backend::Postgres(backend),
            });
        }
        Err(Error::Url {
            url: postgres::redact(url),
            reason: "expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        })
    }

    /// Starts an all-or-nothing bulk write.
    pub async fn begin_import(&self) -> Result<Import> {
        Ok(Import {
            inner: match &self.backend {
                Backend::Sqlite(s) => ImportInner::Sqlite(s.begin_import().await?),
                Backend::Postgres(s) => ImportInner::Postgres(s.begin_import().await?),
            },
        })
    }

    /// Counts of users, items, orders, events and ratings.
    pub async fn counts(&self) -> Result<Counts> {
        dispatch!(&self.backend, s => s.counts().await)
    }

    /// Inserts or replaces catalog items (validated first; all or none).
    pub async fn upsert_items(&self, items: &[Item]) -> Result<()> {
        let mut import = self.begin_import().await?;
        import.upsert_items(items).await?;
        import.commit().await
    }

    /// Inserts or replaces users (validated first; all or none).
    pub async fn upsert_users(&self, users: &[User]) -> Result<()> {
        let mut import = self.begin_import().await?;
        import.upsert_users(users).await?;
        import.commit().await
    }

    /// Inserts or replaces orders with their lines (validated first; all or none).
    pub async fn put_orders(&self, orders: &[Order]) -> Result<()> {
        let mut import = self.begin_import().await?;
        import.put_orders(orders).await?;
        import.commit().await
    }

    /// Stores events, once per `event_id`: a retried event is counted as a duplicate and not
    /// stored again. All events are validated against the current time first; if one is invalid
    /// none is stored. Durable when this returns.
    pub async fn insert_events(&self, events: &[Event]) -> Result<EventsInserted> {
        let mut import = self.begin_import().await?;
        let inserted = import.insert_events(events).await?;
        import.commit().await?;
        Ok(inserted)
    }

    /// One item by id.
    pub async fn item(&self, id: &ItemId) -> Result<Option<Item>> {
        dispatch!(&self.backend, s => s.item(id).await)
    }

    /// Items in id order, after `after` (keyset paging), at most `limit`.
    pub async fn items(&self, after: Option<&ItemId>, limit: u32) -> Result<Vec<Item>> {
        dispatch!(&self.backend, s => s.items(after, limit).await)
    }

    /// One user by id.
    pub async fn user(&self, id: &UserId) -> Result<Option<User>> {
        dispatch!(&self.backend, s => s.user(id).await)
    }

    /// One order with its lines.
    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>> {
        dispatch!(&self.backend, s => s.order(id).await)
    }

    /// A user's orders, newest first, at most `limit`.
    pub async fn orders_of_user(&self, user: &UserId, limit: u32) -> Result<Vec<Order>> {
        dispatch!(&self.backend, s => s.orders_of_user(user, None, limit).await)
    }

    /// A user's orders placed after `after` (exclusive), newest first, at most `limit`: what
    /// serving folds into a model trained on data up to `after` (one query when there is none).
    pub async fn orders_of_user_after(
        &self,
        user: &UserId,
        after: Timestamp,
        limit: u32,
    ) -> Result<Vec<Order>> {
        dispatch!(&self.backend, s => s.orders_of_user(user, Some(after.timestamp_millis()), limit)
                    .await)
    }

    /// Changes an order's status; false if there is no such order.
    pub async fn set_order_status(&self, id: &OrderId, status: OrderStatus) -> Result<bool> {
        dispatch!(&self.backend, s => s.set_order_status(id, status).await)
    }

    /// A user's most recent events, newest first, at most `limit`.
    pub async fn events_of_user(&self, user: &UserId, limit: u32) -> Result<Vec<Event>> {
        dispatch!(&self.backend, s => s.events_of_user(user, i64::MIN, limit).await)
    }

    /// Users with events stored after the event sequence number `after_seq` and timed after
    /// `after`, each with the sequence number of their newest such event, and the newest
    /// sequence number now: poll with the returned number to learn of new events cheaply.
    /// A backend may report a user again whose events it already reported (PostgreSQL looks
    /// back); compare the per-user numbers to tell new events from old.
    pub async fn users_with_events_after(
        &self,
        after_seq: i64,
        after: Timestamp,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        dispatch!(&self.backend, s => s.users_with_events_after(after_seq, after.timestamp_millis())
                    .await)
    }

    /// A user's events after `after` (exclusive), newest first, at most `limit`: what serving
    /// folds into a model trained on data up to `after`.
    pub async fn events_of_user_after(
        &self,
        user: &UserId,
        after: Timestamp,
        limit: u32,
    ) -> Result<Vec<Event>> {
        dispatch!(&self.backend, s => s.events_of_user(user, after.timestamp_millis(), limit)
                    .await)
    }

    /// Streams every event in insertion order to `each`, in pages (for feature pipelines and
    /// exports that must not hold one query open for minutes).
    pub async fn for_each_event(
        &self,
        kinds: Option<&[EventKind]>,
        mut each: impl FnMut(Event) -> Result<()> + Send,
    ) -> Result<()> {
        dispatch!(&self.backend, s => s.for_each_event(kinds, &mut each).await)
    }

    /// Streams every order with its lines to `each`, in id order and in pages.
    pub async fn for_each_order(
        &self,
        mut each: impl FnMut(Order) -> Result<()> + Send,
    ) -> Result<()> {
        dispatch!(&self.backend, s => s.for_each_order(&mut each).await)
    }

    /// Every user (for exports that join consent and email).
    pub async fn all_users(&self) -> Result<Vec<User>> {
        dispatch!(&self.backend, s => s.all_users().await)
    }

    /// Every catalog item.
    pub async fn all_items(&self) -> Result<Vec<Item>> {
        let mut out: Vec<Item> = Vec::new();
        loop {
            let page = self.items(out.last().map(|i| &i.id), 10_000).await?;
            let done = page.len() < 10_000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Everything people did, for product analytics ([`behaviour`]): every event (those of
    /// anonymous sessions linked to a user as the user's), and a touch of kind `order` for
    /// every valid order (not cancelled or refunded) of a known customer: none with
    /// [`OrderTouches::None`], without their items with [`OrderTouches::Times`] (enough for
    /// retention), with the items of their lines with [`OrderTouches::WithItems`].
    pub async fn touches(&self, orders: OrderTouches) -> Result<Vec<behaviour::Touch>> {
        use behaviour::{Touch, TouchKind};
        let mut out = Vec::new();
        self.for_each_event(None, |e| {
            out.push(Touch {
                person: e.actor.interaction_key(),
                at: e.timestamp.timestamp_millis(),
                kind: TouchKind::Event(e.kind),
                items: e.item.into_iter().collect(),
            });
            Ok(())
        })
        .await?;
        match orders {
            OrderTouches::None => {}
            OrderTouches::Times => {
                let times = dispatch!(&self.backend, s => s.valid_order_times().await)?;
                out.extend(times.into_iter().map(|(person, at)| Touch {
                    person,
                    at,
                    kind: TouchKind::Order,
                    items: Vec::new(),
                }));
            }
            OrderTouches::WithItems => {
                self.for_each_order(|o| {
                    if let Some(user) = o.user.as_ref().filter(|_| !o.status.is_reversal()) {
                        out.push(Touch {
                            person: user.as_str().to_owned(),
                            at: o.created_at.timestamp_millis(),
                            kind: TouchKind::Order,
                            items: o.lines.iter().map(|l| l.item.clone()).collect(),
                        });
                    }
                    Ok(())
                })
                .await?;
            }
        }
        Ok(out)
    }

    /// What the buyers of `item` bought next, computed by the database (the same answer as
    /// [`behaviour::next_purchase`] over every order), at most `limit` items.
    pub async fn next_purchase(
        &self,
        item: &ItemId,
        limit: u32,
    ) -> Result<behaviour::NextPurchase> {
        dispatch!(&self.backend, s => s.next_purchase(item, limit).await)
    }

    /// Every order with its lines, in id order.
    pub async fn all_orders(&self) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        self.for_each_order(|o| {
            out.push(o);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Stores a segmentation run and its members in one transaction.
    pub async fn save_segments(&self, run: &SegmentRun, members: &[SegmentMember]) -> Result<()> {
        dispatch!(&self.backend, s => s.save_segments(run, members).await)
    }

    /// The newest segmentation run, if any.
    pub async fn latest_segment_run(&self) -> Result<Option<SegmentRun>> {
        dispatch!(&self.backend, s => s.latest_segment_run().await)
    }

    /// Per segment of a run: (segment, customers, net revenue in minor units), by name.
    pub async fn segment_sizes(&self, version: &str) -> Result<Vec<(String, u64, i64)>> {
        dispatch!(&self.backend, s => s.segment_sizes(version).await)
    }

    /// Members of a run, by user id; only those of `segment` if given.
    pub async fn segment_members(
        &self,
        version: &str,
        segment: Option<&str>,
    ) -> Result<Vec<SegmentMember>> {
        self.segment_members_page(version, segment, 0, u64::MAX)
            .await
    }

    /// At most `limit` members of a run after skipping `offset`, by user id.
    pub async fn segment_members_page(
        &self,
        version: &str,
        segment: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<SegmentMember>> {
        dispatch!(&self.backend, s => s.segment_members(version, segment, offset, limit).await)
    }

    /// Valid orders and net revenue per day or month in `range`, oldest first.
    pub async fn revenue_by_period(
        &self,
        period: kpis::Period,
        range: kpis::DateRange,
    ) -> Result<Vec<kpis::RevenueRow>> {
        dispatch!(&self.backend, s => s.revenue_by_period(period, range).await)
    }

    /// The `limit` items with the most net revenue (or units) in `range`.
    pub async fn top_products(
        &self,
        range: kpis::DateRange,
        by: kpis::RankBy,
        limit: u32,
    ) -> Result<Vec<kpis::ProductRow>> {
        dispatch!(&self.backend, s => s.top_products(range, by, limit).await)
    }

    /// The view → add_to_cart → purchase funnel of the events in `range`.
    pub async fn funnel(&self, range: kpis::DateRange) -> Result<kpis::Funnel> {
        dispatch!(&self.backend, s => s.funnel(range).await)
    }

    /// New and returning customers per month (months of `range`), oldest first.
    pub async fn new_vs_returning(
        &self,
        range: kpis::DateRange,
    ) -> Result<Vec<kpis::CustomersRow>> {
        dispatch!(&self.backend, s => s.new_vs_returning(range).await)
    }

    /// The items of `ids` that exist, by id, in one query.
    pub async fn items_by_ids(&self, ids: &[ItemId]) -> Result<Vec<Item>> {
        dispatch!(&self.backend, s => s.items_by_ids(ids).await)
    }

    /// Catalog search (see [`ItemQuery`]).
    pub async fn search_items(&self, query: &ItemQuery<'_>) -> Result<Vec<Item>> {
        dispatch!(&self.backend, s => s.search_items(query).await)
    }

    /// A number that changes whenever the catalog is written (by any process): poll it to
    /// know when to reload catalog facts.
    pub async fn catalog_version(&self) -> Result<i64> {
        dispatch!(&self.backend, s => s.catalog_version().await)
    }

    /// Categories of visible items with their item counts, by name.
    pub async fn categories(&self) -> Result<Vec<(String, u64)>> {
        dispatch!(&self.backend, s => s.categories().await)
    }

    /// Orders, newest first, optionally of one status, skipping `offset`.
    pub async fn recent_orders(
        &self,
        status: Option<OrderStatus>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Order>> {
        dispatch!(&self.backend, s => s.recent_orders(status, offset, limit).await)
    }

    /// Users by id after `after`, at most `limit`.
    pub async fn users_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        dispatch!(&self.backend, s => s.users_page(after, limit).await)
    }

    /// Stores a batch of impressions in one transaction: a row per source with the answers as
    /// text, the answers counted per hour and group, and the first sightings of visitors.
    pub async fn write_impressions(&self, batch: &ImpressionBatch) -> Result<()> {
        dispatch!(&self.backend, s => s.write_impressions(batch).await)
    }

    /// The impression batches stored after batch `after` (0: from the first) whose newest
    /// answer is at or after `since`, except those of source `except`, oldest batch first, at
    /// most `limit` batches, each with its number (the next call's `after`).
    pub async fn impression_batches_after(
        &self,
        after: i64,
        since: Timestamp,
        except: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(i64, Vec<Impression>)>> {
        dispatch!(&self.backend, s => s.impression_batches_after(after, since.timestamp_millis(), except, limit).await)
    }

    /// The number of the newest impression batch (0: none yet).
    pub async fn newest_impression_batch(&self) -> Result<i64> {
        dispatch!(&self.backend, s => s.newest_impression_batch().await)
    }

    /// The impression of a recommendation id, if it was stored.
    pub async fn impression(&self, id: RecommendationId) -> Result<Option<Impression>> {
        dispatch!(&self.backend, s => s.impression(id).await)
    }

    /// Stores attributions (one transaction); an event or order line already credited keeps
    /// its first attribution. Returns how many were new.
    pub async fn insert_attributions(&self, rows: &[Attribution]) -> Result<u64> {
        dispatch!(&self.backend, s => s.insert_attributions(rows).await)
    }

    /// The recommendation KPIs of a range, grouped (see [`RecommendationKpis`]). Answers are
    /// counted per UTC hour and visitors per UTC day, so for them the range starts at the
    /// hour (day) `from` falls in; outcomes are cut at `from` exactly.
    pub async fn recommendation_kpis(
        &self,
        range: kpis::DateRange,
        by: GroupBy,
    ) -> Result<Vec<RecommendationKpis>> {
        dispatch!(&self.backend, s => s.recommendation_kpis(range, by).await)
    }

    /// Stores a new experiment. A name in use, or a running experiment on the same placement,
    /// is [`Error::Conflict`] naming it.
    pub async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        dispatch!(&self.backend, s => s.insert_experiment(experiment).await)
    }

    /// Every experiment, newest first.
    pub async fn experiments(&self) -> Result<Vec<Experiment>> {
        dispatch!(&self.backend, s => s.experiments(None).await)
    }

    /// One experiment by name.
    pub async fn experiment(&self, name: &str) -> Result<Option<Experiment>> {
        let mut found = dispatch!(&self.backend, s => s.experiments(Some(name)).await)?;
        Ok(found.pop())
    }

    /// Stops a running experiment; false when it is not running (or unknown).
    pub async fn stop_experiment(&self, name: &str, at: Timestamp) -> Result<bool> {
        dispatch!(&self.backend, s => s.stop_experiment(name, at).await)
    }

    /// What each variant of an experiment measured (variants without answers are missing).
    pub async fn experiment_counts(&self, name: &str) -> Result<Vec<VariantCounts>> {
        dispatch!(&self.backend, s => s.experiment_counts(name).await)
    }

    /// Saves a placement (replacing one of the same name); true when it is new.
    pub async fn put_placement(&self, placement: &StoredPlacement) -> Result<bool> {
        dispatch!(&self.backend, s => s.put_placement(placement).await)
    }

    /// Every placement, by name.
    pub async fn placements(&self) -> Result<Vec<StoredPlacement>> {
        dispatch!(&self.backend, s => s.placements().await)
    }

    /// Deletes a placement; false when there is none of that name.
    pub async fn delete_placement(&self, name: &str) -> Result<bool> {
        dispatch!(&self.backend, s => s.delete_placement(name).await)
    }

    /// Appends an admin action to the audit log.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        dispatch!(&self.backend, s => s.record_audit(entry).await)
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        dispatch!(&self.backend, s => s.audit_log(limit).await)
    }

    /// Every API key (revoked ones too), oldest first, without the keys themselves.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        dispatch!(&self.backend, s => s.list_api_keys().await)
    }

    /// Creates an API key for `role` and returns it in clear text: the only time it is seen.
    /// A publishable key needs its allowed origins: use [`Store::create_publishable_key`].
    pub async fn create_api_key(&self, role: ApiKeyRole, label: &str) -> Result<NewApiKey> {
        if role == ApiKeyRole::Publishable {
            return Err(Error::Conflict(
                "a publishable key needs its allowed origins".into(),
            ));
        }
        let key = NewApiKey::generate(role)?;
        dispatch!(&self.backend, s => s.insert_api_key(&key, label, &[]).await?);
        Ok(key)
    }

    /// Creates a publishable key usable from `origins` (see [`keys::check_origins`]; refused
    /// with [`Error::Conflict`] naming what is wrong). Publishable keys are stored in clear:
    /// they are meant to be put in web pages, and listings show them again.
    pub async fn create_publishable_key(
        &self,
        label: &str,
        origins: &[String],
    ) -> Result<NewApiKey> {
        let origins = keys::check_origins(origins).map_err(Error::Conflict)?;
        let key = NewApiKey::generate(ApiKeyRole::Publishable)?;
        dispatch!(&self.backend, s => s.insert_api_key(&key, label, &origins).await?);
        Ok(key)
    }

    /// The role of a presented key, or `None` for an unknown or revoked key.
    pub async fn verify_api_key(&self, key: &str) -> Result<Option<ApiKeyRole>> {
        Ok(self.key_access(key).await?.map(|a| a.role))
    }

    /// What a presented key may do, or `None` for an unknown or revoked key.
    pub async fn key_access(&self, key: &str) -> Result<Option<KeyAccess>> {
        let hash = keys::hash_key(key);
        dispatch!(&self.backend, s => s.api_key_access(&hash).await)
    }

    /// Links an anonymous session to the user it identified as: from now on the session's
    /// events, earlier ones included, count as the user's (training, fold-in, analytics). The
    /// first link of a session wins; returns whether this one was new.
    pub async fn link_session(&self, session: &SessionId, user: &UserId) -> Result<bool> {
        let mut import = self.begin_import().await?;
        let n = import
            .link_sessions(&[(session.clone(), user.clone())])
            .await?;
        import.commit().await?;
        Ok(n > 0)
    }

    /// The user an anonymous session identified as, if any.
    pub async fn identity_of(&self, session: &SessionId) -> Result<Option<UserId>> {
        dispatch!(&self.backend, s => s.identity_of(session).await)
    }

    /// An anonymous session's most recent events, newest first, at most `limit`.
    pub async fn events_of_session(&self, session: &SessionId, limit: u32) -> Result<Vec<Event>> {
        dispatch!(&self.backend, s => s.events_of_session(session, limit).await)
    }

    /// Opens an admin-dashboard session for `key` lasting `ttl`: the session token (clear
    /// text, shown once; only its hash is stored), or `None` when `key` is not an active admin
    /// key. Expired sessions are deleted on the way.
    pub async fn open_admin_session(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>> {
        let key_hash = keys::hash_key(key);
        let access = dispatch!(&self.backend, s => s.api_key_access(&key_hash).await)?;
        if access.map(|a| a.role) != Some(ApiKeyRole::Admin) {
            return Ok(None);
        }
        let token = keys::session_token()?;
        let now = chrono::Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let prefix: String = key.chars().take(14).collect();
        let hash = keys::hash_key(&token);
        dispatch!(&self.backend, s => s.insert_admin_session(&hash, &key_hash, &prefix, now, now.saturating_add(ttl_ms)).await)?;
        Ok(Some(token))
    }

    /// The prefix of the admin key behind a dashboard session, or `None` when the session is
    /// unknown, expired, logged out, or its key was revoked.
    pub async fn admin_session(&self, token: &str) -> Result<Option<String>> {
        let hash = keys::hash_key(token);
        let now = chrono::Utc::now().timestamp_millis();
        dispatch!(&self.backend, s => s.admin_session_prefix(&hash, now).await)
    }

    /// Ends a dashboard session (logout); unknown tokens are ignored.
    pub async fn close_admin_session(&self, token: &str) -> Result<()> {
        let hash = keys::hash_key(token);
        dispatch!(&self.backend, s => s.delete_admin_session(&hash).await)
    }

    /// How many active keys a role has.
    pub async fn count_api_keys(&self, role: ApiKeyRole) -> Result<u64> {
        dispatch!(&self.backend, s => s.count_api_keys(role).await)
    }

    /// Revokes the active keys whose prefix is `prefix`; returns how many.
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<u64> {
        dispatch!(&self.backend, s => s.revoke_api_key(prefix).await)
    }
}

impl Import {
    /// Inserts items, replacing those already stored (an authoritative catalog).
    pub async fn upsert_items(&mut self, items: &[Item]) -> Result<()> {
        validate_all("item", items, Item::validate)?;
        dispatch_import!(&mut self.inner, i => i.write_items(items, true).await)
    }

    /// Inserts items that are not stored yet and leaves existing ones untouched (placeholder
    /// catalog entries made from interaction files must not overwrite a real catalog).
    pub async fn ensure_items(&mut self, items: &[Item]) -> Result<()> {
        validate_all("item", items, Item::validate)?;
        dispatch_import!(&mut self.inner, i => i.write_items(items, false).await)
    }

    /// Inserts users, replacing those already stored.
    pub async fn upsert_users(&mut self, users: &[User]) -> Result<()> {
        validate_all("user", users, User::validate)?;
        dispatch_import!(&mut self.inner, i => i.write_users(users, true).await)
    }

    /// Inserts users that are not stored yet and leaves existing ones untouched.
    pub async fn ensure_users(&mut self, users: &[User]) -> Result<()> {
        validate_all("user", users, User::validate)?;
        dispatch_import!(&mut self.inner, i => i.write_users(users, false).await)
    }

    /// Inserts orders or replaces them (with all their lines).
    pub async fn put_orders(&mut self, orders: &[Order]) -> Result<()> {
        validate_all("order", orders, Order::validate)?;
        dispatch_import!(&mut self.inner, i => i.write_orders(orders).await)
    }

    /// Stores attributions in this transaction (see [`Store::insert_attributions`]).
    pub async fn insert_attributions(&mut self, rows: &[Attribution]) -> Result<u64> {
        dispatch_import!(&mut self.inner, i => i.write_attributions(rows).await)
    }

    /// Links anonymous sessions to users in this transaction (see [`Store::link_session`]);
    /// returns how many links are new.
    pub async fn link_sessions(&mut self, links: &[(SessionId, UserId)]) -> Result<u64> {
        dispatch_import!(&mut self.inner, i => i.write_links(links).await)
    }

    /// Stores events once per `event_id`.
    pub async fn insert_events(&mut self, events: &[Event]) -> Result<EventsInserted> {
        let now = chrono::Utc::now();
        validate_all("event", events, |e| e.validate(now))?;
        match &mut self.inner {
            ImportInner::Postgres(i) if events.len() >= postgres::COPY_FROM => {
                i.copy_events(events).await
            }
            other => dispatch_import!(other, i => i.write_events(events).await),
        }
    }

    /// Makes everything written durable at once.
    pub async fn commit(self) -> Result<()> {
        dispatch_import!(self.inner, i => i.commit().await)
    }

    /// Undoes everything written (also what dropping the import does).
    pub async fn rollback(self) -> Result<()> {
        dispatch_import!(self.inner, i => i.rollback().await)
    }
}

fn validate_all<T>(
    what: &'static str,
    values: &[T],
    check: impl Fn(&T) -> marquee_domain::Result<()>,
) -> Result<()> {
    for (index, value) in values.iter().enumerate() {
        check(value).map_err(|source| Error::Invalid {
            what,
            index,
            source,
        })?;
    }
    Ok(())
}
