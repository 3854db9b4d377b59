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

pub(crate) mod catalog;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod impressions;
pub(crate) mod keys;
pub(crate) mod kpis;
pub(crate) mod orders;
pub(crate) mod rows;
pub(crate) mod segments;

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
    pub(crate) visitors: Bulk,
    pub(crate) attributions: Bulk,
}

impl Statements {
    pub(crate) fn new(numbered: bool) -> Self {
        Self {
            visitors: Bulk::new(
                "INSERT INTO impression_visitors (day, placement, model_version, experiment, variant, visitor)",
                6,
                "ON CONFLICT (day, placement, model_version, experiment, variant, visitor) DO NOTHING",
                numbered,
            ),
            attributions: Bulk::new(
                "INSERT INTO attributions (key, recommendation_id, at, kind, item_id, visitor, \
                 placement, model_version, experiment, variant, revenue_minor)",
                11,
                "ON CONFLICT (key) DO NOTHING",
                numbered,
            ),
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

/// Expands the shared store code for one sqlx driver; see the module documentation. Each
/// area's queries are a macro of their own (modules `catalog`, `orders`, `events`,
/// `segments`, `keys`, `kpis`, `import`, `rows`), expanded here into the same module, so they
/// share this expansion's imports.
macro_rules! sql_backend {
    ($Store:ident, $Import:ident, $DB:ty, $Row:ty) => {
        use $crate::impressions::{
            Attribution, Experiment, GroupBy, Impression, ImpressionBatch, RecommendationId,
            RecommendationKpis, StoredPlacement, VariantCounts,
        };
        use $crate::kpis::{CustomersRow, DateRange, Funnel, Period, ProductRow, RankBy, RevenueRow};
        use $crate::sql::{
            corrupt, count, foreign_key_hint, from_ms, like_escape, ms, placeholders, Statements,
            EVENT_SELECT, ITEM_SELECT, REVERSAL, USER_SELECT,
        };
        use $crate::{
            ApiKeyInfo, ApiKeyRole, AuditEntry, Counts, Error, EventsInserted, ItemQuery,
            KeyAccess, NewApiKey, Result, SegmentMember, SegmentRun,
        };
        use marquee_domain::{
            Actor, Currency, Event, Item, ItemId, Money, Order, OrderId,
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
        }

        $crate::sql::catalog::sql_catalog!($Store, $DB, $Row);
        $crate::sql::orders::sql_orders!($Store, $DB, $Row);
        $crate::sql::events::sql_events!($Store, $DB, $Row);
        $crate::sql::segments::sql_segments!($Store, $DB, $Row);
        $crate::sql::keys::sql_keys!($Store, $DB, $Row);
        $crate::sql::kpis::sql_kpis!($Store, $DB, $Row);
        $crate::sql::impressions::sql_impressions!($Store, $Import, $DB, $Row);
        $crate::sql::rows::sql_rows!($Row);
        $crate::sql::import::sql_import!($Import, $DB);
    };
}

pub(crate) use sql_backend;
