//! The PostgreSQL backend, for shops that outgrow one machine: several `serve` replicas, `train`
//! and `segments` share one database. Migrations from `migrations/postgres` are applied on open
//! (PostgreSQL's advisory lock lets replicas start together). The queries are the shared ones
//! of [`crate::sql`].

use sqlx::postgres::PgConnectOptions;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `ILIKE` matches case-insensitively, as SQLite's `LIKE` does for ASCII.
const LIKE: &str = "ILIKE";
/// PostgreSQL only knows numbered parameters.
const NUMBERED: bool = true;
/// The strings of the JSON array bound as `$1`.
const JSON_IDS: &str = "json_array_elements_text(CAST($1 AS json))";
/// Event sequence numbers are handed out at insert time, and concurrent transactions commit in
/// any order, so an event with a lower number can become visible after a higher one was seen.
/// A poll for new events therefore looks this many numbers back again (re-reporting a user is
/// harmless). An API batch holds at most 1,000 events, so this covers twenty batches still
/// committing behind a newer one; each poll re-reads at most this many index entries.
const SEQ_MARGIN: i64 = 20_000;

/// The UTC day or month key of a unix-millisecond column.
fn period_expr(period: Period, column: &str) -> String {
    let format = match period {
        Period::Day => "YYYY-MM-DD",
        Period::Month => "YYYY-MM",
    };
    format!("to_char(to_timestamp({column} / 1000.0) AT TIME ZONE 'UTC', '{format}')")
}

crate::sql::sql_backend!(
    PostgresStore,
    PostgresImport,
    sqlx::Postgres,
    sqlx::postgres::PgRow
);

impl PostgresStore {
    /// Connects, creates the database first if it does not exist (as SQLite creates its file;
    /// this needs the CREATEDB privilege), and applies the migrations.
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e| Error::Url {
            url: redact(url),
            reason: format!("not a PostgreSQL URL: {e}"),
        })?;
        let pool = match connect(options.clone()).await {
            Err(e) if is_missing_database(&e) => {
                create_database(&options)
                    .await
                    .map_err(|source| Error::Open {
                        url: redact(url),
                        source,
                    })?;
                connect(options).await
            }
            other => other,
        }
        .map_err(|source| Error::Open {
            url: redact(url),
            source,
        })?;
        MIGRATOR.run(&pool).await?;
        Ok(Self::with_pool(pool))
    }
}

async fn connect(options: PgConnectOptions) -> Result<sqlx::PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Some(Duration::from_secs(600)))
        .connect_with(options)
        .await
}

/// SQLSTATE 3D000, invalid_catalog_name: the database named in the URL does not exist.
fn is_missing_database(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "3D000")
}

/// `CREATE DATABASE` for the database `options` names, through the `postgres` maintenance
/// database with the same credentials. A replica that loses the race to create it is fine.
async fn create_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut conn = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let done = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut conn)
        .await;
    match done {
        // 42P04 duplicate_database: another process created it meanwhile.
        Err(e)
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04") =>
        {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

/// `url` without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Event loads at least this large go through COPY ([`PostgresImport::copy_events`]); smaller
/// ones (the API's batches) through multi-row INSERTs.
pub(crate) const COPY_FROM: usize = 5_000;

impl PostgresImport {
    /// Stores events through `COPY` into a temporary staging table, then one `INSERT ... SELECT
    /// ... ON CONFLICT (event_id) DO NOTHING` in input order, so retried events are skipped as
    /// with the INSERT path and sequence numbers follow the input.
    pub(crate) async fn copy_events(
        &mut self,
        events: &[marquee_domain::Event],
    ) -> Result<EventsInserted> {
        sqlx::query(
            "CREATE TEMPORARY TABLE IF NOT EXISTS events_staging (n BIGINT, event_id TEXT, \
             user_id TEXT, session_id TEXT, item_id TEXT, kind TEXT, value DOUBLE PRECISION, \
             ts BIGINT, context TEXT) ON COMMIT DROP",
        )
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("TRUNCATE events_staging")
            .execute(&mut *self.tx)
            .await?;
        let mut copy = self
            .tx
            .copy_in_raw(
                "COPY events_staging (n, event_id, user_id, session_id, item_id, kind, value, ts, \
                 context) FROM STDIN (FORMAT csv)",
            )
            .await?;
        let mut buf = String::with_capacity(1 << 20);
        for (n, e) in events.iter().enumerate() {
            let (user, session) = match &e.actor {
                Actor::User(u) => (Some(u.as_str()), None),
                Actor::Session(s) => (None, Some(s.as_str())),
            };
            let context = e.context.as_ref().map(ToString::to_string);
            let value = e.value.map(|v| f64::from(v).to_string());
            let ts = ms(e.timestamp).to_string();
            let n = n.to_string();
            let fields = [
                Some(n.as_str()),
                Some(e.id.as_str()),
                user,
                session,
                e.item.as_ref().map(ItemId::as_str),
                Some(e.kind.as_str()),
                value.as_deref(),
                Some(ts.as_str()),
                context.as_deref(),
            ];
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    buf.push(',');
                }
                // CSV: an unquoted empty field is NULL; everything else is quoted.
                if let Some(text) = field {
                    buf.push('"');
                    buf.push_str(&text.replace('"', "\"\""));
                    buf.push('"');
                }
            }
            buf.push('\n');
            if buf.len() >= 1 << 20 {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await?;
        }
        copy.finish().await?;
        let inserted = sqlx::query(
            "INSERT INTO events (event_id, user_id, session_id, item_id, kind, value, ts, context) \
             SELECT event_id, user_id, session_id, item_id, kind, value, ts, context \
             FROM events_staging ORDER BY n ON CONFLICT (event_id) DO NOTHING",
        )
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(EventsInserted {
            inserted,
            duplicates: events.len() as u64 - inserted,
        })
    }
}

impl PostgresStore {
    /// Every event in insertion order, in pages of 50,000 rows.
    pub(crate) async fn for_each_event(
        &self,
        kinds: Option<&[marquee_domain::EventKind]>,
        each: &mut (dyn FnMut(Event) -> Result<()> + Send),
    ) -> Result<()> {
        const PAGE: i64 = 50_000;
        // Events of anonymous sessions that identified as a user are that user's.
        let linked: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identities)")
            .fetch_one(&self.pool)
            .await?;
        let select = if linked {
            "SELECT e.event_id, coalesce(e.user_id, i.user_id), \
             CASE WHEN i.user_id IS NULL THEN e.session_id END, e.item_id, e.kind, \
             e.value, e.ts, e.context, e.seq \
             FROM events e LEFT JOIN identities i ON i.session_id = e.session_id \
             WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
                .to_owned()
        } else {
            format!("{EVENT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2")
        };
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(select.clone()))
                .bind(after)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.try_get(8)?;
            for row in &rows {
                let event = event_from_row(row)?;
                if kinds.is_none_or(|k| k.contains(&event.kind)) {
                    each(event)?;
                }
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

impl PostgresStore {
    /// Every order with its lines, in id order, in pages of 2,000 orders.
    pub(crate) async fn for_each_order(
        &self,
        each: &mut (dyn FnMut(Order) -> Result<()> + Send),
    ) -> Result<()> {
        // Orders per page: their lines are read at once, so this bounds the memory a
        // read holds (2,000 orders of Online Retail are ~40k lines).
        const PAGE: i64 = 2_000;
        let mut after = String::new();
        loop {
            let heads = sqlx::query(
                "SELECT id, user_id, created_at, status FROM orders WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = heads.last() else {
                return Ok(());
            };
            let last_id: String = last.try_get(0)?;
            let lines = sqlx::query(
                "SELECT order_id, item_id, quantity, unit_price_minor, currency FROM order_lines \
                 WHERE order_id > $1 AND order_id <= $2 ORDER BY order_id, line_no",
            )
            .bind(&after)
            .bind(&last_id)
            .fetch_all(&self.pool)
            .await?;
            let mut lines = lines.iter().peekable();
            for head in &heads {
                let id: String = head.try_get(0)?;
                let mut order_lines = Vec::new();
                while let Some(&l) = lines.peek() {
                    let of: String = l.try_get(0)?;
                    if of > id {
                        break;
                    }
                    lines.next();
                    if of == id {
                        order_lines.push(line_from_row(l, 1)?);
                    }
                }
                each(order_from_row(head, order_lines)?)?;
            }
            if (heads.len() as i64) < PAGE {
                return Ok(());
            }
            after = last_id;
        }
    }
}
