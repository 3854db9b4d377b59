//! The SQLite backend: one file in WAL mode with `synchronous = FULL`, foreign keys on,
//! migrations from `migrations/sqlite` applied on open. The queries are the shared ones of
//! [`crate::sql`].

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite's `LIKE` ignores ASCII case.
const LIKE: &str = "LIKE";
/// Plain `?` parameters: SQLite binds numbered ones with a linear name scan each.
const NUMBERED: bool = false;
/// The strings of the JSON array bound as `$1`.
const JSON_IDS: &str = "json_each($1)";
/// SQLite has one writer at a time, so sequence numbers are handed out in commit order.
const SEQ_MARGIN: i64 = 0;

/// The UTC day or month key of a unix-millisecond column.
fn period_expr(period: Period, column: &str) -> String {
    let format = match period {
        Period::Day => "%Y-%m-%d",
        Period::Month => "%Y-%m",
    };
    format!("strftime('{format}', {column} / 1000, 'unixepoch')")
}

crate::sql::sql_backend!(
    SqliteStore,
    SqliteImport,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow
);

impl SqliteStore {
    pub(crate) async fn open(url: &str, path: &str) -> Result<Self> {
        let memory = path == ":memory:";
        if !memory
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|e| Error::Url {
                url: url.into(),
                reason: format!("cannot create the folder {}: {e}", parent.display()),
            })?;
        }
        let options = if memory {
            SqliteConnectOptions::new().in_memory(true)
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
        // An in-memory database lives in one connection; a file is shared by a few.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await
            .map_err(|source| Error::Open {
                url: url.into(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Self::with_pool(pool))
    }
}

/// One event as a page of [`SqliteStore::for_each_event`] holds it: sequence number, event
/// id, user, session, item, kind, value, time (ms), context.
type JsonEvent = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<f64>,
    i64,
    Option<serde_json::Value>,
);

impl SqliteStore {
    /// Every event in insertion order, read in pages of 50,000 that SQLite hands over as one
    /// JSON array each. A page as rows costs sqlx about 3.7 µs per row (a row object per
    /// event, sent across its worker thread); as one text it is one value, parsed here.
    pub(crate) async fn for_each_event(
        &self,
        kinds: Option<&[marquee_domain::EventKind]>,
        each: &mut (dyn FnMut(marquee_domain::Event) -> Result<()> + Send),
    ) -> Result<()> {
        use crate::sql::rows::event_from_parts;
        use sqlx::Row;
        const PAGE: i64 = 50_000;
        // Events of anonymous sessions that identified as a user are that user's.
        let linked: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identities)")
            .fetch_one(&self.pool)
            .await?;
        let page = if linked {
            "SELECT e.event_id AS event_id, coalesce(e.user_id, i.user_id) AS user_id, \
             CASE WHEN i.user_id IS NULL THEN e.session_id END AS session_id, \
             e.item_id AS item_id, e.kind AS kind, e.value AS value, e.ts AS ts, \
             e.context AS context, e.seq AS seq \
             FROM events e LEFT JOIN identities i ON i.session_id = e.session_id \
             WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
        } else {
            "SELECT event_id, user_id, session_id, item_id, kind, value, ts, context, seq \
             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        };
        // No ORDER BY inside the aggregate: SQLite would sort every page again, though the
        // rows come in `seq` order from the subquery. That order is not promised, so each
        // page is checked below (and sorted if it ever is not).
        let select = format!(
            "SELECT json_group_array(json_array(seq, event_id, user_id, session_id, item_id, \
             kind, value, ts, json(context))), max(seq), count(*) FROM ({page})"
        );
        // The next page is asked for before this one is parsed, so SQLite (on sqlx's worker
        // thread) builds it while this thread parses.
        let fetch = |after: i64| {
            let (pool, select) = (self.pool.clone(), select.clone());
            tokio::spawn(async move {
                sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(after)
                    .bind(PAGE)
                    .fetch_one(&pool)
                    .await
            })
        };
        let mut pending = Some(fetch(0));
        while let Some(page) = pending.take() {
            let row = match page.await {
                Ok(row) => row?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(sqlx::Error::WorkerCrashed.into()),
            };
            let count: i64 = row.try_get(2)?;
            if count == 0 {
                return Ok(());
            }
            if count == PAGE {
                pending = Some(fetch(row.try_get(1)?));
            }
            let text: String = row.try_get(0)?;
            let mut events: Vec<JsonEvent> = serde_json::from_str(&text)
                .map_err(|e| crate::Error::Corrupt(format!("a page of events: {e}")))?;
            if !events.is_sorted_by_key(|e| e.0) {
                events.sort_unstable_by_key(|e| e.0);
            }
            for (_, id, user, session, item, kind, value, ts, context) in events {
                let event = event_from_parts((id, user, session, item, kind, value, ts, context))?;
                if kinds.is_none_or(|k| k.contains(&event.kind)) {
                    each(event)?;
                }
            }
        }
        Ok(())
    }

    /// Every order with its lines, in id order, in pages of 5,000 orders that SQLite hands
    /// over as one JSON array each (an order: id, user, time in ms, status, and its lines as
    /// an array of line number, item, quantity, unit price in minor units, currency). As
    /// sqlx rows, orders and their lines cost several µs each.
    pub(crate) async fn for_each_order(
        &self,
        each: &mut (dyn FnMut(marquee_domain::Order) -> Result<()> + Send),
    ) -> Result<()> {
        use crate::sql::rows::{line_from_parts, order_from_parts};
        type JsonLine = (i64, String, i64, i64, String);
        type JsonOrder = (String, Option<String>, i64, String, Vec<JsonLine>);
        const PAGE: i64 = 5_000;
        // json(...) keeps the lines an array inside the order's array (a subquery's result
        // would otherwise be embedded as text). Neither aggregate has an ORDER BY (SQLite
        // would sort again what the subqueries return in order); the order is checked below.
        let select = "SELECT json_group_array(json_array(o.id, o.user_id, o.created_at, \
             o.status, json((SELECT json_group_array(json_array(l.line_no, l.item_id, \
             l.quantity, l.unit_price_minor, l.currency)) FROM (SELECT * FROM order_lines l \
             WHERE l.order_id = o.id ORDER BY l.line_no) l)))), count(*) \
             FROM (SELECT id, user_id, created_at, status FROM orders WHERE id > $1 \
             ORDER BY id LIMIT $2) o";
        let mut after = String::new();
        loop {
            let (text, count): (String, i64) = sqlx::query_as(select)
                .bind(&after)
                .bind(PAGE)
                .fetch_one(&self.pool)
                .await?;
            let mut orders: Vec<JsonOrder> = serde_json::from_str(&text)
                .map_err(|e| crate::Error::Corrupt(format!("a page of orders: {e}")))?;
            if !orders.is_sorted_by(|a, b| a.0 <= b.0) {
                orders.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
            if let Some(last) = orders.last() {
                after.clone_from(&last.0);
            }
            for (id, user, created_at, status, mut lines) in orders {
                if !lines.is_sorted_by_key(|l| l.0) {
                    lines.sort_unstable_by_key(|l| l.0);
                }
                let lines = lines
                    .into_iter()
                    .map(|(_, item, quantity, minor, currency)| {
                        line_from_parts(item, quantity, minor, &currency)
                    })
                    .collect::<Result<Vec<_>>>()?;
                each(order_from_parts(id, user, created_at, &status, lines)?)?;
            }
            if count < PAGE {
                return Ok(());
            }
        }
    }
}
