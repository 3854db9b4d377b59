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
