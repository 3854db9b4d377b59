//! Throwaway stores for the tests of this and other crates, on either backend.
//!
//! SQLite stores live in a temporary folder. PostgreSQL stores are fresh databases on the
//! server named by `MARQUEE_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:55432/postgres`; `.ci/run` starts such a server). When that
//! variable is unset the PostgreSQL variants of the tests say so and pass, unless
//! `MARQUEE_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes a missing server a failure.

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, empty database of one backend: open it (several times, to test reopening) with
/// [`TestDatabase::url`]. The SQLite file goes away when this is dropped; PostgreSQL test
/// databases stay on the throwaway server.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A SQLite file in a new temporary folder (in a subfolder that does not exist yet).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("nested/store.db").display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// A new database on the test PostgreSQL server, or `None` (after saying why on stderr)
    /// when no server is configured and none is required.
    pub fn postgres() -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let Ok(admin) = std::env::var("MARQUEE_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("MARQUEE_REQUIRE_POSTGRES").is_none(),
                "MARQUEE_REQUIRE_POSTGRES is set but MARQUEE_TEST_POSTGRES_URL is not: \
                 point it at a PostgreSQL server (see .ci/run)"
            );
            eprintln!("PostgreSQL variant skipped: MARQUEE_TEST_POSTGRES_URL is not set");
            return None;
        };
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "marquee_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Some(Self {
            url: format!("{base}/{name}"),
            _dir: None,
        })
    }

    /// The `DATABASE_URL` of this database (created on first open).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens it.
    pub async fn open(&self) -> crate::Store {
        crate::Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening the test store {}: {e}", self.url))
    }
}
