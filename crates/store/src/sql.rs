//! What the SQL backends share: every query of the store written once, in the SQL that SQLite
//! and PostgreSQL both accept (`$N` placeholders, `ON CONFLICT`, `CAST`, `coalesce`), and the
//! conversions between rows and domain values.
//!
//! [`sql_backend!`] expands the shared code inside a backend module for that module's sqlx
//! driver (concrete types, so there is no generic sqlx plumbing). What differs between the
//! databases, the module provides as plain items the expansion refers to:
//!
//! - `LIKE`: the case-insensitive pattern operator (`LIKE` in SQLite, `ILIKE` in PostgreSQL);
//! - `JSON_IDS`: a table expression with a `value` column of the strings of the JSON array
//!   bound as `$1`;
//! - `period_expr(period, column)`: the SQL text of the UTC day or month key of a unix-millisecond
//!   column;
//! - `NUMBERED`: whether long parameter lists (multi-row INSERTs) are written `$1,$2,...`
//!   (PostgreSQL needs that) or `?,?,...` (SQLite looks a numbered parameter's name up with a
//!   linear scan on every bind, which makes a 1,000-row INSERT quadratic);
//! - `SEQ_MARGIN`: how far behind the last seen event sequence number a poll for new events
//!   looks again (0 where numbers are handed out in commit order, as in SQLite).
//!
//! Schema conventions both backends keep: timestamps are unix milliseconds in 64-bit integers,
//! flags are booleans (SQLite stores them as 0/1), JSON values are text, and text ids compare
//! bytewise (PostgreSQL columns use the "C" collation) so keyset paging agrees with Rust's
//! string order.

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use marquee_domain::Timestamp;

/// Bound parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;
/// Rows per multi-row INSERT: large enough to amortise statement overhead.
const MAX_ROWS: usize = 1_000;

/// A multi-row INSERT whose text is fixed by its row count, so prepared-statement caches
/// reuse it.
#[derive(Debug)]
pub(crate) struct Bulk {
    pub(crate) rows: usize,
    full: String,
    head: String,
    tail: &'static str,
    cols: usize,
    numbered: bool,
}

impl Bulk {
    fn new(head: &str, cols: usize, tail: &'static str, numbered: bool) -> Self {
        let rows = (MAX_PARAMS / cols).min(MAX_ROWS);
        Self {
            rows,
            full: values_sql(head, cols, rows, tail, numbered),
            head: head.to_owned(),
            tail,
            cols,
            numbered,
        }
    }

    pub(crate) fn sql(&self, rows: usize) -> String {
        if rows == self.rows {
            self.full.clone()
        } else {
            values_sql(&self.head, self.cols, rows, self.tail, self.numbered)
        }
    }
}

/// `head VALUES ($1,..,$cols),(..) tail` for `rows` rows (`?` in place of `$N` unless
/// `numbered`).
fn values_sql(head: &str, cols: usize, rows: usize, tail: &str, numbered: bool) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + rows * cols * 7 + tail.len() + 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 0..cols {
            if col > 0 {
                sql.push(',');
            }
            if numbered {
                let _ = write!(sql, "${}", row * cols + col + 1);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// `$1,$2,..,$n` (or `?,?,..,?` unless `numbered`).
pub(crate) fn placeholders(n: usize, numbered: bool) -> String {
    (1..=n)
        .map(|i| {
            if numbered {
                format!("${i}")
            } else {
                "?".into()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

const ITEM_COLS: &str = "INSERT INTO items (id, title, category, genres, price_minor, currency, in_stock, hidden, created_at, attributes)";
const USER_COLS: &str = "INSERT INTO users (id, created_at, country, marketing_consent, email)";

/// The multi-row INSERT statements, built once per store.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) events: Bulk,
    pub(crate) items_upsert: Bulk,
    pub(crate) items_ensure: Bulk,
    pub(crate) users_upsert: Bulk,
    pub(crate) users_ensure: Bulk,
    pub(crate) orders: Bulk,
    pub(crate) lines: Bulk,
    pub(crate) members: Bulk,
}

impl Statements {
    pub(crate) fn new(numbered: bool) -> Self {
        Self {
            events: Bulk::new(
                "INSERT INTO events (event_id, user_id, session_id, item_id, kind, value, ts, context)",
                8,
                "ON CONFLICT (event_id) DO NOTHING",
                numbered,
            ),
            items_upsert: Bulk::new(
                ITEM_COLS,
                10,
                "ON CONFLICT (id) DO UPDATE SET title = excluded.title, category = excluded.category, \
                 genres = excluded.genres, price_minor = excluded.price_minor, currency = excluded.currency, \
                 in_stock = excluded.in_stock, hidden = excluded.hidden, created_at = excluded.created_at, \
                 attributes = excluded.attributes",
                numbered,
            ),
            items_ensure: Bulk::new(ITEM_COLS, 10, "ON CONFLICT (id) DO NOTHING", numbered),
            users_upsert: Bulk::new(
                USER_COLS,
                5,
                "ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, country = excluded.country, \
                 marketing_consent = excluded.marketing_consent, email = excluded.email",
                numbered,
            ),
            users_ensure: Bulk::new(USER_COLS, 5, "ON CONFLICT (id) DO NOTHING", numbered),
            orders: Bulk::new(
                "INSERT INTO orders (id, user_id, created_at, status)",
                4,
                "ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, created_at = excluded.created_at, \
                 status = excluded.status",
                numbered,
            ),
            lines: Bulk::new(
                "INSERT INTO order_lines (order_id, line_no, item_id, quantity, unit_price_minor, currency)",
                6,
                "",
                numbered,
            ),
            members: Bulk::new(
                "INSERT INTO segment_members (version, user_id, segment, cluster, recency_days, \
                 frequency, monetary_minor, tenure_days, avg_basket_minor, favourite_category, \
                 r_score, f_score, m_score)",
                13,
                "",
                numbered,
            ),
        }
    }
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> Result<Timestamp> {
    DateTime::<Utc>::from_timestamp_millis(v)
        .ok_or_else(|| Error::Corrupt(format!("timestamp {v} is out of range")))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupt(e.to_string())
}

/// A foreign-key violation as the conflict it is for the caller, other errors as they are.
pub(crate) fn foreign_key_hint(e: sqlx::Error, hint: &str) -> Error {
    let is_fk = e
        .as_database_error()
        .is_some_and(|d| matches!(d.kind(), sqlx::error::ErrorKind::ForeignKeyViolation));
    if is_fk {
        Error::Conflict(format!("{hint} (foreign key constraint failed)"))
    } else {
        Error::Database(e)
    }
}

/// `s` with `\`, `%` and `_` escaped for `LIKE ... ESCAPE '\'`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A count as stored (never negative) as `u64`.
pub(crate) fn count(v: i64) -> u64 {
    v.max(0) as u64
}

/// The SQL expression of "this order is cancelled or refunded", for table alias `o`.
pub(crate) const REVERSAL: &str = "o.status IN ('cancelled', 'refunded')";

/// The columns every item query selects, in the order `item_from_row` reads them.
pub(crate) const ITEM_SELECT: &str = "SELECT id, title, category, genres, price_minor, currency, \
     in_stock, hidden, created_at, attributes FROM items";

/// The columns every user query selects, in the order `user_from_row` reads them.
pub(crate) const USER_SELECT: &str =
    "SELECT id, created_at, country, marketing_consent, email FROM users";

/// The columns every event query selects, in the order `event_from_row` reads them.
pub(crate) const EVENT_SELECT: &str =
    "SELECT event_id, user_id, session_id, item_id, kind, value, ts, context, seq FROM events";

/// Expands the shared store code for one sqlx driver; see the module documentation.
macro_rules! sql_backend {
    ($Store:ident, $Import:ident, $DB:ty, $Row:ty) => {
        use $crate::kpis::{CustomersRow, DateRange, Funnel, Period, ProductRow, RankBy, RevenueRow};
        use $crate::sql::{
            corrupt, count, foreign_key_hint, from_ms, like_escape, ms, placeholders, Statements,
            EVENT_SELECT, ITEM_SELECT, REVERSAL, USER_SELECT,
        };
        use $crate::{
            ApiKeyInfo, ApiKeyRole, AuditEntry, Counts, Error, EventsInserted, ItemQuery,
            NewApiKey, Result, SegmentMember, SegmentRun,
        };
        use marquee_domain::{
            Actor, Currency, Event, EventId, EventKind, Item, ItemId, Money, Order, OrderId,
            OrderLine, OrderStatus, SessionId, User, UserId,
        };
        use sqlx::{AssertSqlSafe, Row, Transaction};
        use std::sync::Arc;

        #[derive(Debug, Clone)]
        pub(crate) struct $Store {
            pool: sqlx::Pool<$DB>,
            statements: Arc<Statements>,
        }

        pub(crate) struct $Import {
            tx: Transaction<'static, $DB>,
            statements: Arc<Statements>,
        }

        impl $Store {
            fn with_pool(pool: sqlx::Pool<$DB>) -> Self {
                Self {
                    pool,
                    statements: Arc::new(Statements::new(NUMBERED)),
                }
            }

            pub(crate) async fn begin_import(&self) -> Result<$Import> {
                let tx = self.pool.begin().await?;
                Ok($Import {
                    tx,
                    statements: Arc::clone(&self.statements),
                })
            }

            pub(crate) async fn counts(&self) -> Result<Counts> {
                let row = sqlx::query(
                    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items), \
                     (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines), \
                     (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE kind = 'rating'), \
                     (SELECT count(DISTINCT session_id) FROM events WHERE session_id IS NOT NULL)",
                )
                .fetch_one(&self.pool)
                .await?;
                let n = |i: usize| -> Result<u64> { Ok(count(row.try_get::<i64, _>(i)?)) };
                Ok(Counts {
                    users: n(0)?,
                    items: n(1)?,
                    orders: n(2)?,
                    order_lines: n(3)?,
                    events: n(4)?,
                    ratings: n(5)?,
                    sessions: n(6)?,
                })
            }

            pub(crate) async fn item(&self, id: &ItemId) -> Result<Option<Item>> {
                sqlx::query(AssertSqlSafe(format!("{ITEM_SELECT} WHERE id = $1")))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| item_from_row(&r))
                    .transpose()
            }

            pub(crate) async fn items(&self, after: Option<&ItemId>, limit: u32) -> Result<Vec<Item>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id > $1 ORDER BY id LIMIT $2"
                )))
                .bind(after.map_or("", ItemId::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn items_by_ids(&self, ids: &[ItemId]) -> Result<Vec<Item>> {
                let list = serde_json::to_string(&ids.iter().map(ItemId::as_str).collect::<Vec<_>>())
                    .map_err(corrupt)?;
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id IN (SELECT value FROM {JSON_IDS}) ORDER BY id"
                )))
                .bind(list)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn search_items(&self, q: &ItemQuery<'_>) -> Result<Vec<Item>> {
                let text = q.text.map(|t| format!("%{}%", like_escape(t)));
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id > $1 AND ($2 IS NULL OR category = $2) \
                     AND ($3 IS NULL OR title {LIKE} $3 ESCAPE '\\' OR id {LIKE} $3 ESCAPE '\\') \
                     AND ($4 OR NOT hidden) AND ($5 OR in_stock) ORDER BY id LIMIT $6"
                )))
                .bind(q.after.unwrap_or(""))
                .bind(q.category)
                .bind(text)
                .bind(q.include_hidden)
                .bind(q.include_out_of_stock)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn catalog_version(&self) -> Result<i64> {
                let v: i64 = sqlx::query_scalar("SELECT version FROM catalog_version WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(v)
            }

            pub(crate) async fn categories(&self) -> Result<Vec<(String, u64)>> {
                let rows = sqlx::query(
                    "SELECT category, count(*) FROM items WHERE NOT hidden GROUP BY category \
                     ORDER BY category",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, count(r.try_get(1)?))))
                    .collect()
            }

            pub(crate) async fn user(&self, id: &UserId) -> Result<Option<User>> {
                let row = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} WHERE id = $1")))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            pub(crate) async fn users_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{USER_SELECT} WHERE id > $1 ORDER BY id LIMIT $2"
                )))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(user_from_row).collect()
            }

            pub(crate) async fn all_users(&self) -> Result<Vec<User>> {
                let rows = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} ORDER BY id")))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(user_from_row).collect()
            }

            pub(crate) async fn order(&self, id: &OrderId) -> Result<Option<Order>> {
                let row =
                    sqlx::query("SELECT id, user_id, created_at, status FROM orders WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(self.order_with_lines(&r).await?))
            }

            pub(crate) async fn orders_of_user(
                &self,
                user: &UserId,
                after_ms: Option<i64>,
                limit: u32,
            ) -> Result<Vec<Order>> {
                let rows = sqlx::query(
                    "SELECT id, user_id, created_at, status FROM orders WHERE user_id = $1 \
                     AND ($2 IS NULL OR created_at > $2) ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(user.as_str())
                .bind(after_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                self.orders_with_lines(&rows).await
            }

            pub(crate) async fn recent_orders(
                &self,
                status: Option<OrderStatus>,
                offset: u64,
                limit: u32,
            ) -> Result<Vec<Order>> {
                let rows = sqlx::query(
                    "SELECT id, user_id, created_at, status FROM orders WHERE ($1 IS NULL OR status = $1) \
                     ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                )
                .bind(status.map(OrderStatus::as_str))
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                self.orders_with_lines(&rows).await
            }

            async fn orders_with_lines(&self, rows: &[$Row]) -> Result<Vec<Order>> {
                let mut orders = Vec::with_capacity(rows.len());
                for r in rows {
                    orders.push(self.order_with_lines(r).await?);
                }
                Ok(orders)
            }

            /// The order of a row `id, user_id, created_at, status`, with its lines.
            async fn order_with_lines(&self, r: &$Row) -> Result<Order> {
                let id: String = r.try_get(0)?;
                let lines = sqlx::query(
                    "SELECT item_id, quantity, unit_price_minor, currency FROM order_lines \
                     WHERE order_id = $1 ORDER BY line_no",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|l| line_from_row(l, 0))
                .collect::<Result<Vec<_>>>()?;
                order_from_row(r, lines)
            }

            pub(crate) async fn set_order_status(&self, id: &OrderId, status: OrderStatus) -> Result<bool> {
                let done = sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
                    .bind(status.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn for_each_order(
                &self,
                each: &mut dyn FnMut(Order) -> Result<()>,
            ) -> Result<()> {
                const PAGE: i64 = 20_000;
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

            pub(crate) async fn events_of_user(
                &self,
                user: &UserId,
                after_ms: i64,
                limit: u32,
            ) -> Result<Vec<Event>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{EVENT_SELECT} WHERE user_id = $1 AND ts > $2 ORDER BY ts DESC, seq DESC LIMIT $3"
                )))
                .bind(user.as_str())
                .bind(after_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(event_from_row).collect()
            }

            pub(crate) async fn users_with_events_after(
                &self,
                after_seq: i64,
                after_ms: i64,
            ) -> Result<(Vec<(String, i64)>, i64)> {
                let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
                    .fetch_one(&self.pool)
                    .await?;
                let rows = sqlx::query(
                    "SELECT user_id, max(seq) FROM events \
                     WHERE seq > $1 AND seq <= $2 AND ts > $3 AND user_id IS NOT NULL \
                     GROUP BY user_id",
                )
                .bind(after_seq.saturating_sub(SEQ_MARGIN))
                .bind(newest)
                .bind(after_ms)
                .fetch_all(&self.pool)
                .await?;
                let users = rows
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                Ok((users, newest.max(after_seq)))
            }

            pub(crate) async fn for_each_event(
                &self,
                kinds: Option<&[EventKind]>,
                each: &mut dyn FnMut(Event) -> Result<()>,
            ) -> Result<()> {
                const PAGE: i64 = 50_000;
                let mut after = 0i64;
                loop {
                    let rows = sqlx::query(AssertSqlSafe(format!(
                        "{EVENT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2"
                    )))
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

            pub(crate) async fn save_segments(
                &self,
                run: &SegmentRun,
                members: &[SegmentMember],
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO segment_runs (version, computed_at, reference, k, silhouette, clusters) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&run.version)
                .bind(ms(run.computed_at))
                .bind(ms(run.reference))
                .bind(i64::from(run.k))
                .bind(run.silhouette)
                .bind(serde_json::to_string(&run.clusters).map_err(corrupt)?)
                .execute(&mut *tx)
                .await?;
                let bulk = &self.statements.members;
                for chunk in members.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for m in chunk {
                        q = q
                            .bind(&run.version)
                            .bind(&m.user_id)
                            .bind(&m.segment)
                            .bind(i64::from(m.cluster))
                            .bind(m.recency_days)
                            .bind(i64::from(m.frequency))
                            .bind(m.monetary_minor)
                            .bind(m.tenure_days)
                            .bind(m.avg_basket_minor)
                            .bind(&m.favourite_category)
                            .bind(i64::from(m.r_score))
                            .bind(i64::from(m.f_score))
                            .bind(i64::from(m.m_score));
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn latest_segment_run(&self) -> Result<Option<SegmentRun>> {
                let row = sqlx::query(
                    "SELECT version, computed_at, reference, k, silhouette, clusters FROM segment_runs \
                     ORDER BY computed_at DESC, version DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(SegmentRun {
                    version: r.try_get(0)?,
                    computed_at: from_ms(r.try_get(1)?)?,
                    reference: from_ms(r.try_get(2)?)?,
                    k: u32::try_from(r.try_get::<i64, _>(3)?).map_err(corrupt)?,
                    silhouette: r.try_get(4)?,
                    clusters: serde_json::from_str(&r.try_get::<String, _>(5)?).map_err(corrupt)?,
                }))
            }

            pub(crate) async fn segment_sizes(&self, version: &str) -> Result<Vec<(String, u64, i64)>> {
                let rows = sqlx::query(
                    "SELECT segment, count(*), CAST(sum(monetary_minor) AS BIGINT) FROM segment_members \
                     WHERE version = $1 GROUP BY segment ORDER BY segment",
                )
                .bind(version)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, count(r.try_get(1)?), r.try_get(2)?)))
                    .collect()
            }

            pub(crate) async fn segment_members(
                &self,
                version: &str,
                segment: Option<&str>,
                offset: u64,
                limit: u64,
            ) -> Result<Vec<SegmentMember>> {
                let rows = sqlx::query(
                    "SELECT user_id, segment, cluster, recency_days, frequency, monetary_minor, tenure_days, \
                     avg_basket_minor, favourite_category, r_score, f_score, m_score FROM segment_members \
                     WHERE version = $1 AND ($2 IS NULL OR segment = $2) ORDER BY user_id LIMIT $3 OFFSET $4",
                )
                .bind(version)
                .bind(segment)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                let small = |v: i64| -> Result<u8> { u8::try_from(v).map_err(corrupt) };
                rows.iter()
                    .map(|r| {
                        Ok(SegmentMember {
                            user_id: r.try_get(0)?,
                            segment: r.try_get(1)?,
                            cluster: u32::try_from(r.try_get::<i64, _>(2)?).map_err(corrupt)?,
                            recency_days: r.try_get(3)?,
                            frequency: u32::try_from(r.try_get::<i64, _>(4)?).map_err(corrupt)?,
                            monetary_minor: r.try_get(5)?,
                            tenure_days: r.try_get(6)?,
                            avg_basket_minor: r.try_get(7)?,
                            favourite_category: r.try_get(8)?,
                            r_score: small(r.try_get(9)?)?,
                            f_score: small(r.try_get(10)?)?,
                            m_score: small(r.try_get(11)?)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn insert_api_key(&self, key: &NewApiKey, label: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO api_keys (role, key_hash, prefix, label, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key.role.as_str())
                .bind(key.hash())
                .bind(key.prefix.as_str())
                .bind(label)
                .bind(ms(chrono::Utc::now()))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn api_key_role(&self, hash: &[u8]) -> Result<Option<ApiKeyRole>> {
                let row = sqlx::query(
                    "SELECT role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| ApiKeyRole::parse(&r.try_get::<String, _>(0)?))
                    .transpose()
            }

            pub(crate) async fn count_api_keys(&self, role: ApiKeyRole) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM api_keys WHERE role = $1 AND revoked_at IS NULL",
                )
                .bind(role.as_str())
                .fetch_one(&self.pool)
                .await?;
                Ok(count(n))
            }

            pub(crate) async fn revoke_api_key(&self, prefix: &str) -> Result<u64> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL",
                )
                .bind(ms(chrono::Utc::now()))
                .bind(prefix)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
                let rows = sqlx::query(
                    "SELECT prefix, role, label, created_at, revoked_at FROM api_keys ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ApiKeyInfo {
                            prefix: r.try_get(0)?,
                            role: ApiKeyRole::parse(&r.try_get::<String, _>(1)?)?,
                            label: r.try_get(2)?,
                            created_at: from_ms(r.try_get(3)?)?,
                            revoked_at: r.try_get::<Option<i64>, _>(4)?.map(from_ms).transpose()?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn insert_admin_session(
                &self,
                token_hash: &[u8],
                key_hash: &[u8],
                key_prefix: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO admin_sessions (token_hash, key_hash, key_prefix, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(key_hash)
                .bind(key_prefix)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn admin_session_prefix(
                &self,
                token_hash: &[u8],
                now: i64,
            ) -> Result<Option<String>> {
                let prefix: Option<String> = sqlx::query_scalar(
                    "SELECT s.key_prefix FROM admin_sessions s \
                     JOIN api_keys k ON k.key_hash = s.key_hash \
                     WHERE s.token_hash = $1 AND s.expires_at > $2 \
                       AND k.revoked_at IS NULL AND k.role = 'admin'",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(prefix)
            }

            pub(crate) async fn delete_admin_session(&self, token_hash: &[u8]) -> Result<()> {
                sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(crate) async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, key_prefix, method, path, status) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(ms(entry.at))
                .bind(&entry.key_prefix)
                .bind(&entry.method)
                .bind(&entry.path)
                .bind(i64::from(entry.status))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT at, key_prefix, method, path, status FROM audit_log ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            at: from_ms(r.try_get(0)?)?,
                            key_prefix: r.try_get(1)?,
                            method: r.try_get(2)?,
                            path: r.try_get(3)?,
                            status: u16::try_from(r.try_get::<i64, _>(4)?).map_err(corrupt)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn revenue_by_period(
                &self,
                period: Period,
                range: DateRange,
            ) -> Result<Vec<RevenueRow>> {
                let (from, to) = range.bounds_ms();
                let key = period_expr(period, "o.created_at");
                let sql = format!(
                    "SELECT {key} AS period, \
                     count(DISTINCT CASE WHEN NOT ({REVERSAL}) THEN o.id END), \
                     CAST(coalesce(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END \
                                  * l.quantity * l.unit_price_minor), 0) AS BIGINT) \
                     FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id \
                     WHERE ($1 IS NULL OR o.created_at >= $1) AND ($2 IS NULL OR o.created_at < $2) \
                     GROUP BY 1 ORDER BY 1"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(RevenueRow {
                            period: r.try_get(0)?,
                            orders: count(r.try_get(1)?),
                            revenue_minor: r.try_get(2)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn top_products(
                &self,
                range: DateRange,
                by: RankBy,
                limit: u32,
            ) -> Result<Vec<ProductRow>> {
                let (from, to) = range.bounds_ms();
                let order = match by {
                    RankBy::Revenue => "revenue DESC",
                    RankBy::Units => "units DESC",
                };
                let sql = format!(
                    "SELECT l.item_id, \
                     CAST(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END * l.quantity * l.unit_price_minor) \
                        AS BIGINT) AS revenue, \
                     CAST(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END * l.quantity) AS BIGINT) AS units \
                     FROM orders o JOIN order_lines l ON l.order_id = o.id \
                     WHERE ($1 IS NULL OR o.created_at >= $1) AND ($2 IS NULL OR o.created_at < $2) \
                     GROUP BY l.item_id ORDER BY {order}, l.item_id LIMIT $3"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ProductRow {
                            item: r.try_get(0)?,
                            revenue_minor: r.try_get(1)?,
                            units: r.try_get(2)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn funnel(&self, range: DateRange) -> Result<Funnel> {
                let (from, to) = range.bounds_ms();
                let row = sqlx::query(
                    "WITH steps AS ( \
                       SELECT CASE kind WHEN 'view' THEN 0 WHEN 'click' THEN 0 \
                              WHEN 'add_to_cart' THEN 1 WHEN 'purchase' THEN 2 END AS step, \
                              coalesce(user_id, 'session:' || session_id) AS visitor \
                       FROM events \
                       WHERE kind IN ('view', 'click', 'add_to_cart', 'purchase') \
                         AND ($1 IS NULL OR ts >= $1) AND ($2 IS NULL OR ts < $2)) \
                     SELECT count(DISTINCT CASE WHEN step = 0 THEN visitor END), \
                            count(DISTINCT CASE WHEN step = 1 THEN visitor END), \
                            count(DISTINCT CASE WHEN step = 2 THEN visitor END) FROM steps",
                )
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
                let n = |i: usize| -> Result<u64> { Ok(count(row.try_get::<i64, _>(i)?)) };
                Ok(Funnel::from_counts(n(0)?, n(1)?, n(2)?))
            }

            pub(crate) async fn new_vs_returning(&self, range: DateRange) -> Result<Vec<CustomersRow>> {
                let (from, to) = range.bounds_ms();
                let month = period_expr(Period::Month, "o.created_at");
                let sql = format!(
                    "WITH valid AS ( \
                       SELECT o.user_id, {month} AS month, o.created_at \
                       FROM orders o WHERE o.user_id IS NOT NULL AND NOT ({REVERSAL})), \
                     firsts AS (SELECT user_id, min(month) AS first_month FROM valid GROUP BY user_id) \
                     SELECT v.month, \
                       count(DISTINCT CASE WHEN v.month = f.first_month THEN v.user_id END), \
                       count(DISTINCT CASE WHEN v.month <> f.first_month THEN v.user_id END) \
                     FROM valid v JOIN firsts f ON f.user_id = v.user_id \
                     WHERE ($1 IS NULL OR v.created_at >= $1) AND ($2 IS NULL OR v.created_at < $2) \
                     GROUP BY v.month ORDER BY v.month"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(CustomersRow {
                            month: r.try_get(0)?,
                            new_customers: count(r.try_get(1)?),
                            returning_customers: count(r.try_get(2)?),
                        })
                    })
                    .collect()
            }
        }

        /// A user from `id, created_at, country, marketing_consent, email`.
        fn user_from_row(r: &$Row) -> Result<User> {
            Ok(User {
                id: UserId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                created_at: from_ms(r.try_get(1)?)?,
                country: r.try_get(2)?,
                marketing_consent: r.try_get(3)?,
                email: r.try_get(4)?,
            })
        }

        /// An item from the columns of [`ITEM_SELECT`].
        fn item_from_row(r: &$Row) -> Result<Item> {
            let price = match (
                r.try_get::<Option<i64>, _>(4)?,
                r.try_get::<Option<String>, _>(5)?,
            ) {
                (Some(minor), Some(currency)) => {
                    Some(Money::new(minor, Currency::new(&currency).map_err(corrupt)?))
                }
                _ => None,
            };
            let genres: Vec<String> = serde_json::from_str(&r.try_get::<String, _>(3)?)
                .map_err(|e| Error::Corrupt(format!("item genres: {e}")))?;
            let attributes = serde_json::from_str(&r.try_get::<String, _>(9)?)
                .map_err(|e| Error::Corrupt(format!("item attributes: {e}")))?;
            Ok(Item {
                id: ItemId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                title: r.try_get(1)?,
                category: r.try_get(2)?,
                genres,
                price,
                in_stock: r.try_get(6)?,
                hidden: r.try_get(7)?,
                created_at: from_ms(r.try_get(8)?)?,
                attributes,
            })
        }

        /// An event from the columns of [`EVENT_SELECT`].
        fn event_from_row(r: &$Row) -> Result<Event> {
            let actor = match (
                r.try_get::<Option<String>, _>(1)?,
                r.try_get::<Option<String>, _>(2)?,
            ) {
                (Some(user), _) => Actor::User(UserId::new(user).map_err(corrupt)?),
                (None, Some(session)) => Actor::Session(SessionId::new(session).map_err(corrupt)?),
                (None, None) => {
                    return Err(Error::Corrupt(
                        "an event has neither user nor session".into(),
                    ));
                }
            };
            let context = r
                .try_get::<Option<String>, _>(7)?
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| Error::Corrupt(format!("event context: {e}")))?;
            Ok(Event {
                id: EventId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                actor,
                item: r
                    .try_get::<Option<String>, _>(3)?
                    .map(ItemId::new)
                    .transpose()
                    .map_err(corrupt)?,
                kind: EventKind::parse(&r.try_get::<String, _>(4)?).map_err(corrupt)?,
                value: r.try_get::<Option<f64>, _>(5)?.map(|v| v as f32),
                timestamp: from_ms(r.try_get(6)?)?,
                context,
            })
        }

        /// An order from `id, user_id, created_at, status` and its lines.
        fn order_from_row(r: &$Row, lines: Vec<OrderLine>) -> Result<Order> {
            Ok(Order {
                id: OrderId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                user: r
                    .try_get::<Option<String>, _>(1)?
                    .map(UserId::new)
                    .transpose()
                    .map_err(corrupt)?,
                created_at: from_ms(r.try_get(2)?)?,
                status: OrderStatus::parse(&r.try_get::<String, _>(3)?).map_err(corrupt)?,
                lines,
            })
        }

        /// An order line from columns `item_id, quantity, unit_price_minor, currency` starting
        /// at column `first`.
        fn line_from_row(l: &$Row, first: usize) -> Result<OrderLine> {
            Ok(OrderLine {
                item: ItemId::new(l.try_get::<String, _>(first)?).map_err(corrupt)?,
                quantity: u32::try_from(l.try_get::<i64, _>(first + 1)?).map_err(corrupt)?,
                unit_price: Money::new(
                    l.try_get(first + 2)?,
                    Currency::new(&l.try_get::<String, _>(first + 3)?).map_err(corrupt)?,
                ),
            })
        }

        impl $Import {
            pub(crate) async fn write_items(&mut self, items: &[Item], replace: bool) -> Result<()> {
                let bulk = if replace {
                    &self.statements.items_upsert
                } else {
                    &self.statements.items_ensure
                };
                for chunk in items.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for it in chunk {
                        let genres = serde_json::to_string(&it.genres).map_err(corrupt)?;
                        q = q
                            .bind(it.id.as_str())
                            .bind(it.title.as_str())
                            .bind(it.category.as_str())
                            .bind(genres)
                            .bind(it.price.map(|p| p.minor))
                            .bind(it.price.map(|p| p.currency.as_str().to_owned()))
                            .bind(it.in_stock)
                            .bind(it.hidden)
                            .bind(ms(it.created_at))
                            .bind(it.attributes.to_string());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            pub(crate) async fn write_users(&mut self, users: &[User], replace: bool) -> Result<()> {
                let bulk = if replace {
                    &self.statements.users_upsert
                } else {
                    &self.statements.users_ensure
                };
                for chunk in users.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for u in chunk {
                        q = q
                            .bind(u.id.as_str())
                            .bind(ms(u.created_at))
                            .bind(u.country.as_deref())
                            .bind(u.marketing_consent)
                            .bind(u.email.as_deref());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            pub(crate) async fn write_orders(&mut self, orders: &[Order]) -> Result<()> {
                let bulk = &self.statements.orders;
                for chunk in orders.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for o in chunk {
                        q = q
                            .bind(o.id.as_str())
                            .bind(o.user.as_ref().map(UserId::as_str))
                            .bind(ms(o.created_at))
                            .bind(o.status.as_str());
                    }
                    q.execute(&mut *self.tx).await.map_err(|e| {
                        foreign_key_hint(e, "an order names a user that is not in the store")
                    })?;
                    // Replacing an order replaces all its lines.
                    let del = format!(
                        "DELETE FROM order_lines WHERE order_id IN ({})",
                        placeholders(chunk.len(), NUMBERED)
                    );
                    let mut q = sqlx::query(AssertSqlSafe(del));
                    for o in chunk {
                        q = q.bind(o.id.as_str());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                let lines: Vec<(&Order, usize, &OrderLine)> = orders
                    .iter()
                    .flat_map(|o| o.lines.iter().enumerate().map(move |(n, l)| (o, n, l)))
                    .collect();
                let bulk = &self.statements.lines;
                for chunk in lines.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for (o, n, l) in chunk {
                        q = q
                            .bind(o.id.as_str())
                            .bind(*n as i64)
                            .bind(l.item.as_str())
                            .bind(i64::from(l.quantity))
                            .bind(l.unit_price.minor)
                            .bind(l.unit_price.currency.as_str());
                    }
                    q.execute(&mut *self.tx).await.map_err(|e| {
                        foreign_key_hint(e, "an order line names an item that is not in the catalog")
                    })?;
                }
                Ok(())
            }

            pub(crate) async fn write_events(&mut self, events: &[Event]) -> Result<EventsInserted> {
                let bulk = &self.statements.events;
                let mut inserted = 0u64;
                for chunk in events.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for e in chunk {
                        let (user, session) = match &e.actor {
                            Actor::User(u) => (Some(u.as_str()), None),
                            Actor::Session(s) => (None, Some(s.as_str())),
                        };
                        q = q
                            .bind(e.id.as_str())
                            .bind(user)
                            .bind(session)
                            .bind(e.item.as_ref().map(ItemId::as_str))
                            .bind(e.kind.as_str())
                            .bind(e.value.map(f64::from))
                            .bind(ms(e.timestamp))
                            .bind(e.context.as_ref().map(ToString::to_string));
                    }
                    inserted += q.execute(&mut *self.tx).await?.rows_affected();
                }
                Ok(EventsInserted {
                    inserted,
                    duplicates: events.len() as u64 - inserted,
                })
            }

            pub(crate) async fn commit(self) -> Result<()> {
                self.tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn rollback(self) -> Result<()> {
                self.tx.rollback().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_backend;
