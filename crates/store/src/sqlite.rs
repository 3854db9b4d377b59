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

impl SqliteStore {
    /// Runs `read` on a blocking thread with one of the pool's connections, as rusqlite sees
    /// it, and hands what it emits to `each` on this task, `batch` at a time: SQLite steps
    /// through rows on that thread while this one checks them. Through sqlx a row costs about
    /// 3.7 µs (a row object per row, sent across its worker thread); stepped here it is a
    /// fraction of that. When `each` fails the reader stops at its next batch.
    async fn stream<R: Send + 'static>(
        &self,
        batch: usize,
        read: impl FnOnce(&rusqlite::Connection, &mut dyn FnMut(R) -> bool) -> Result<()>
        + Send
        + 'static,
        each: &mut (dyn FnMut(R) -> Result<()> + Send),
    ) -> Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<R>>(4);
        let mut conn = self.pool.acquire().await?;
        let runtime = tokio::runtime::Handle::current();
        let reader = tokio::task::spawn_blocking(move || {
            let mut locked = runtime.block_on(conn.lock_handle())?;
            with_rusqlite(&mut locked, |db| {
                let mut rows = Vec::with_capacity(batch);
                let mut emit = |row: R| {
                    rows.push(row);
                    rows.len() < batch
                        || tx
                            .blocking_send(std::mem::replace(&mut rows, Vec::with_capacity(batch)))
                            .is_ok()
                };
                read(db, &mut emit)?;
                if !rows.is_empty() {
                    // A caller that has stopped no longer wants it.
                    let _ = tx.blocking_send(rows);
                }
                Ok(())
            })?
        });
        let consume = async move {
            while let Some(batch) = rx.recv().await {
                for row in batch {
                    each(row)?;
                }
            }
            Ok::<_, crate::Error>(())
        };
        let (read, consumed) = tokio::join!(reader, consume);
        consumed?;
        match read {
            // A column holding a value of another type than its own is stored data gone
            // wrong, as the checks on the caller's side report it.
            Ok(Err(crate::Error::Sqlite(rusqlite::Error::InvalidColumnType(_, name, ty)))) => {
                Err(crate::Error::Corrupt(format!(
                    "{name} is stored as {}",
                    ty.to_string().to_lowercase()
                )))
            }
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(sqlx::Error::WorkerCrashed.into()),
        }
    }

    /// Every event in insertion order, read in pages of 50,000, each page its own read
    /// transaction: a slow caller keeps one open only while it works through a page.
    pub(crate) async fn for_each_event(
        &self,
        kinds: Option<&[marquee_domain::EventKind]>,
        each: &mut (dyn FnMut(marquee_domain::Event) -> Result<()> + Send),
    ) -> Result<()> {
        use crate::sql::rows::event_from_parts;
        const PAGE: i64 = 50_000;
        let read = |db: &rusqlite::Connection, emit: &mut dyn FnMut(EventRows) -> bool| {
            // Events of anonymous sessions that identified as a user are that user's.
            let linked: bool =
                db.query_row("SELECT EXISTS (SELECT 1 FROM identities)", [], |r| r.get(0))?;
            let mut page = db.prepare(if linked {
                "SELECT e.seq, e.event_id, coalesce(e.user_id, i.user_id), \
                 CASE WHEN i.user_id IS NULL THEN e.session_id END, e.item_id, e.kind, \
                 e.context, e.value, e.ts \
                 FROM events e LEFT JOIN identities i ON i.session_id = e.session_id \
                 WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
            } else {
                "SELECT seq, event_id, user_id, session_id, item_id, kind, context, value, ts \
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            })?;
            let mut after = 0i64;
            loop {
                let mut rows = page.query((after, PAGE))?;
                let mut count = 0;
                let mut out = EventRows::default();
                while let Some(r) = rows.next()? {
                    count += 1;
                    after = r.get(0)?;
                    out.push(r)?;
                    if out.values.len() == EVENT_BATCH && !emit(std::mem::take(&mut out)) {
                        return Ok(());
                    }
                }
                if !out.values.is_empty() && !emit(out) {
                    return Ok(());
                }
                if count < PAGE {
                    return Ok(());
                }
            }
        };
        self.stream(1, read, &mut |rows: EventRows| {
            for (k, &(value, ts)) in rows.values.iter().enumerate() {
                let [id, user, session, item, kind, context] = rows.text(k)?;
                let context = context
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| crate::Error::Corrupt(format!("event context: {e}")))?;
                let event = event_from_parts((
                    id.unwrap_or_default().to_owned(),
                    user.map(str::to_owned),
                    session.map(str::to_owned),
                    item.map(str::to_owned),
                    kind.unwrap_or_default().to_owned(),
                    value,
                    ts,
                    context,
                ))?;
                if kinds.is_none_or(|k| k.contains(&event.kind)) {
                    each(event)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Every order with its lines, in id order, in pages of 5,000 orders, each page its own
    /// read transaction.
    pub(crate) async fn for_each_order(
        &self,
        each: &mut (dyn FnMut(marquee_domain::Order) -> Result<()> + Send),
    ) -> Result<()> {
        use crate::sql::rows::{line_from_parts, order_from_parts};
        /// Item, quantity, unit price in minor units, currency.
        type RawLine = (String, i64, i64, String);
        /// Id, user, time (ms), status, lines in line order.
        type RawOrder = (String, Option<String>, i64, String, Vec<RawLine>);
        const PAGE: i64 = 5_000;
        let read = |db: &rusqlite::Connection, emit: &mut dyn FnMut(RawOrder) -> bool| {
            let mut page = db.prepare(
                "SELECT o.id, o.user_id, o.created_at, o.status, \
                 l.item_id, l.quantity, l.unit_price_minor, l.currency \
                 FROM (SELECT id, user_id, created_at, status FROM orders WHERE id > ?1 \
                 ORDER BY id LIMIT ?2) o LEFT JOIN order_lines l ON l.order_id = o.id \
                 ORDER BY o.id, l.line_no",
            )?;
            let mut after = String::new();
            loop {
                let mut rows = page.query((&after, PAGE))?;
                let mut count = 0;
                let mut open: Option<RawOrder> = None;
                while let Some(r) = rows.next()? {
                    let id = r
                        .get_ref(0)?
                        .as_str()
                        .map_err(|e| crate::Error::Corrupt(format!("an order id: {e}")))?;
                    if open.as_ref().is_none_or(|o| o.0 != id) {
                        if let Some(done) = open.take()
                            && !emit(done)
                        {
                            return Ok(());
                        }
                        count += 1;
                        open = Some((id.to_owned(), r.get(1)?, r.get(2)?, r.get(3)?, Vec::new()));
                    }
                    if let (Some(order), Some(item)) = (open.as_mut(), r.get(4)?) {
                        order.4.push((item, r.get(5)?, r.get(6)?, r.get(7)?));
                    }
                }
                let Some(last) = open else {
                    return Ok(());
                };
                after.clone_from(&last.0);
                if !emit(last) || count < PAGE {
                    return Ok(());
                }
            }
        };
        self.stream(
            256,
            read,
            &mut |(id, user, created_at, status, lines): RawOrder| {
                let lines = lines
                    .into_iter()
                    .map(|(item, quantity, minor, currency)| {
                        line_from_parts(item, quantity, minor, &currency)
                    })
                    .collect::<Result<Vec<_>>>()?;
                each(order_from_parts(id, user, created_at, &status, lines)?)
            },
        )
        .await
    }
}

/// Events handed over at a time.
const EVENT_BATCH: usize = 2_048;

/// A batch of events as stored: their text columns (event id, user, session, item, kind,
/// context) copied into one buffer, unchecked, and their value and time. The reading thread
/// only copies bytes; the caller's thread checks them and makes the strings.
#[derive(Default)]
struct EventRows {
    bytes: Vec<u8>,
    /// Per event: where its text starts in `bytes`, then each text column's end there
    /// (`u32::MAX` for NULL).
    ends: Vec<[u32; 7]>,
    values: Vec<(Option<f64>, i64)>,
}

impl EventRows {
    /// Appends a row of `seq, event_id, user_id, session_id, item_id, kind, context, value, ts`.
    fn push(&mut self, r: &rusqlite::Row<'_>) -> Result<()> {
        use rusqlite::types::ValueRef;
        const NAMES: [&str; 6] = ["id", "user", "session", "item", "kind", "context"];
        let mut ends = [u32::MAX; 7];
        ends[0] = self.end()?;
        for (c, end) in ends[1..].iter_mut().enumerate() {
            match r.get_ref(c + 1)? {
                ValueRef::Null => {}
                ValueRef::Text(t) => {
                    self.bytes.extend_from_slice(t);
                    *end = self.end()?;
                }
                other => {
                    return Err(crate::Error::Corrupt(format!(
                        "an event's {} is stored as {}, not text",
                        NAMES[c],
                        other.data_type().to_string().to_lowercase()
                    )));
                }
            }
        }
        self.ends.push(ends);
        self.values.push((r.get(7)?, r.get(8)?));
        Ok(())
    }

    /// The length of `bytes`, which a batch keeps below 4 GiB.
    fn end(&self) -> Result<u32> {
        u32::try_from(self.bytes.len())
            .map_err(|_| crate::Error::Corrupt("an event's text is over 4 GiB".into()))
    }

    /// Event `k`'s text columns, each checked to be UTF-8.
    fn text(&self, k: usize) -> Result<[Option<&str>; 6]> {
        let [first, ends @ ..] = self.ends[k];
        let mut start = first as usize;
        let mut out = [None; 6];
        for (slot, end) in out.iter_mut().zip(ends) {
            if end == u32::MAX {
                continue;
            }
            let bytes = &self.bytes[start..end as usize];
            *slot = Some(std::str::from_utf8(bytes).map_err(|e| {
                crate::Error::Corrupt(format!("an event's text is not UTF-8: {e}"))
            })?);
            start = end as usize;
        }
        Ok(out)
    }
}

/// Runs `f` on the SQLite connection that `locked` holds, through rusqlite.
#[allow(unsafe_code)]
fn with_rusqlite<T>(
    locked: &mut sqlx::sqlite::LockedSqliteHandle<'_>,
    f: impl FnOnce(&rusqlite::Connection) -> T,
) -> Result<T> {
    // SAFETY: the handle is an open connection that sqlx has handed over: its worker waits
    // until `locked` is dropped, so nothing else uses the connection meanwhile. The rusqlite
    // value does not own the handle (it does not close it), and it is dropped inside this
    // function, while `locked` is still held; `f` cannot keep it, since it only borrows it.
    let db = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) }?;
    Ok(f(&db))
}
