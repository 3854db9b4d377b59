//! Shared plumbing of the command-line binaries (`data`, `train`, `recommend`, and later
//! `segments`): the store option, logging, progress bars, Ctrl-C handling, and the writer
//! that puts a dataset [`Bundle`] into the store in one all-or-nothing transaction.
//!
//! The binaries are thin: parsing and formatting here, the work in the library crates.

pub mod config;
pub mod recommend;
pub mod report;
pub mod segments;
pub mod train;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use marquee_datasets::Bundle;
use marquee_store::{EventsInserted, Import, Store};
use std::time::Duration;

/// Options every binary shares.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Where the store lives: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (the file or database is created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = marquee_store::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

impl StoreArgs {
    /// Opens the store, saying which one on failure.
    pub async fn open(&self) -> Result<Store> {
        Store::open(&self.database_url).await.with_context(|| {
            format!(
                "opening the store at {}",
                marquee_store::redact_url(&self.database_url)
            )
        })
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level.
pub fn init_logging(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or a collector gets plain
        // text (NO_COLOR, no-color.org, turns colour off everywhere).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .try_init();
}

/// A spinner for work of unknown length (hidden when stderr is not a terminal).
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `total` units.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{human_pos}}/{{human_len}} ({{per_sec}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Totals written by [`write_bundle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub items: u64,
    pub users: u64,
    pub orders: u64,
    pub order_lines: u64,
    pub events: EventsInserted,
}

impl Written {
    pub fn add(&mut self, other: Written) {
        self.items += other.items;
        self.users += other.users;
        self.orders += other.orders;
        self.order_lines += other.order_lines;
        self.events.inserted += other.events.inserted;
        self.events.duplicates += other.events.duplicates;
    }
}

/// Rows per write call, so that the progress bar moves and memory stays flat.
const WRITE_CHUNK: usize = 20_000;

/// Writes a bundle into an open import: items, users, orders, then events.
pub async fn write_bundle(
    import: &mut Import,
    bundle: &Bundle,
    progress: &ProgressBar,
) -> Result<Written> {
    let mut written = Written::default();
    for chunk in bundle.items.chunks(WRITE_CHUNK) {
        if bundle.items_are_placeholders {
            import.ensure_items(chunk).await?;
        } else {
            import.upsert_items(chunk).await?;
        }
        written.items += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
    }
    for chunk in bundle.users.chunks(WRITE_CHUNK) {
        if bundle.users_are_placeholders {
            import.ensure_users(chunk).await?;
        } else {
            import.upsert_users(chunk).await?;
        }
        written.users += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
    }
    for chunk in bundle.orders.chunks(WRITE_CHUNK / 4) {
        import.put_orders(chunk).await?;
        written.orders += chunk.len() as u64;
        written.order_lines += chunk.iter().map(|o| o.lines.len() as u64).sum::<u64>();
        progress.inc(chunk.len() as u64);
    }
    for chunk in bundle.events.chunks(WRITE_CHUNK) {
        let e = import.insert_events(chunk).await?;
        written.events.inserted += e.inserted;
        written.events.duplicates += e.duplicates;
        progress.inc(chunk.len() as u64);
    }
    Ok(written)
}

/// Rows a bundle holds, for a progress bar over [`write_bundle`].
pub fn bundle_rows(bundle: &Bundle) -> u64 {
    (bundle.items.len() + bundle.users.len() + bundle.orders.len() + bundle.events.len()) as u64
}

/// Resolves when the user presses Ctrl-C (never, if the signal cannot be installed).
pub async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
