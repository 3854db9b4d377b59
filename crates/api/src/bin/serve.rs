//! `serve`: the storefront API (and, later, the admin API) over the active model.

use anyhow::{Context, Result};
use clap::Parser;
use marquee_api::jobs::Tools;
use marquee_api::{AppState, admin_router, storefront_router};
use marquee_engine::Engine;
use marquee_store::{ApiKeyRole, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc instead of glibc's allocator: answers allocate on the request threads and their
/// impressions are freed on the writer's, and glibc pays for each such free with an arena
/// lock (under load 15–20 % of the server's time was in malloc and free; see
/// benches/README.md, "Impressions").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serve recommendations over HTTP.
///
/// The storefront API listens on --storefront-addr; every route but /healthz, /readyz and
/// /metrics needs `Authorization: Bearer <storefront key>`. The admin API (model versions and
/// activation, segments, analytics, retraining jobs) listens on --admin-addr and needs an
/// admin key. On the first start with no keys, one storefront and one admin key are created
/// and printed once.
///
/// Web pages (unless --no-pages): a storefront demo at the storefront address's `/` (pick a
/// user, see their rows, click items) and the admin dashboard at the admin address's `/`
/// (log in with the admin key).
#[derive(Debug, Parser)]
#[command(name = "serve", version, about, long_about)]
struct Cli {
    /// Where the store lives: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (the file or database is created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = marquee_store::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Storefront API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    storefront_addr: SocketAddr,
    /// Admin API address (model versions and activation; admin key).
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin_addr: SocketAddr,
    /// The model to serve: a model folder (its `latest` version) or a version folder.
    #[arg(long, default_value = "models/default")]
    model: PathBuf,
    /// The folder with the `train` and `segments` tools that the admin API's jobs (retrain,
    /// recompute segments) and segment exports run; default: the folder of this binary.
    #[arg(long, env = "MARQUEE_TOOLS_DIR")]
    tools_dir: Option<PathBuf>,
    /// A store folder (one CSV per table) that seeds the store when it is empty (no items,
    /// users, orders or events); ignored if the folder does not exist.
    #[arg(long, default_value = "notebooks-data/demo-store")]
    seed: PathBuf,
    /// Requests per API key and second; more get `429 rate_limited` with `Retry-After`.
    /// 0: no limit.
    #[arg(long, env = "MARQUEE_RATE_LIMIT", default_value_t = 0)]
    rate_limit: u32,
    /// Requests answered at once; more are shed at once with `503 overloaded` and
    /// `Retry-After: 1` (health and metrics are never shed).
    #[arg(long, env = "MARQUEE_MAX_IN_FLIGHT", default_value_t = marquee_api::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Serve no web pages: neither the storefront demo (storefront `/`) nor the admin
    /// dashboard (admin `/`). The demo shows any user's rows to whoever reaches the storefront
    /// listener, so turn it off where that listener is public.
    #[arg(long, env = "MARQUEE_NO_PAGES")]
    no_pages: bool,
    /// Record no impressions: answers still carry a recommendation_id, but nothing shown is
    /// stored, so no event or order is credited to an answer and the recommendation KPIs and
    /// experiment results stay empty (for load comparisons, or a store that must not grow).
    #[arg(long, env = "MARQUEE_NO_IMPRESSIONS")]
    no_impressions: bool,
    /// Hours after an answer during which a click, add to cart, purchase or order line of an
    /// item it showed (to the same user or session) is credited to it.
    #[arg(long, env = "MARQUEE_ATTRIBUTION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(1..=720))]
    attribution_hours: u32,
    /// Memory budget, in MB, of the model versions kept loaded for running experiments
    /// (their folders' size on disk); starting an experiment beyond it is refused.
    #[arg(long, env = "MARQUEE_EXPERIMENT_MEMORY_MB", default_value_t = 2048)]
    experiment_memory_mb: u64,
    /// Neither seed an empty store nor fit a first model when --model has none: fail instead.
    #[arg(long)]
    no_first_start: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serve: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let store = Store::open(&cli.database_url).await.with_context(|| {
        format!(
            "opening the store at {}",
            marquee_store::redact_url(&cli.database_url)
        )
    })?;
    for role in [ApiKeyRole::Storefront, ApiKeyRole::Admin] {
        if store.count_api_keys(role).await? == 0 {
            let key = store.create_api_key(role, "created on first start").await?;
            println!("{} key: {}", role.as_str(), key.key);
        }
    }
    if !cli.no_first_start {
        first_start(&store, &cli).await?;
    }
    let catalog = store.all_items().await.context("reading the catalog")?;
    let engine = Engine::open(&cli.model, catalog).with_context(|| {
        format!(
            "loading the model {} (train one with `cargo run --release --bin train`)",
            cli.model.display()
        )
    })?;
    tracing::info!(version = %engine.version(), kind = %engine.kind(), "model loaded");
    let mut tools = Tools::beside_current_exe(&cli.database_url);
    if let Some(dir) = cli.tools_dir {
        tools.dir = dir;
    }
    let state = AppState::new(Arc::new(engine), store)
        .with_tools(tools)
        .with_rate_limit(cli.rate_limit)
        .with_max_in_flight(cli.max_in_flight)
        .with_pages(!cli.no_pages)
        .with_impressions(!cli.no_impressions)
        .with_attribution_window(chrono::TimeDelta::hours(i64::from(cli.attribution_hours)))
        .with_experiment_budget(cli.experiment_memory_mb.saturating_mul(1 << 20));
    state
        .refresh_fresh_users()
        .await
        .context("reading which users have events newer than the model")?;
    let poller = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            tick.tick().await;
            if let Err(e) = poller.refresh_fresh_users().await {
                tracing::warn!("polling for new events failed: {e}");
            }
        }
    });
    let follower = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut last_error = None;
        loop {
            tick.tick().await;
            match follower.follow_shared_changes().await {
                // The same failure every second is logged once, until it changes or clears.
                Err(e) if last_error.as_ref() != Some(&e) => {
                    tracing::warn!("{e}");
                    last_error = Some(e);
                }
                Err(_) => {}
                Ok(()) => last_error = None,
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(cli.storefront_addr)
        .await
        .with_context(|| format!("listening on {}", cli.storefront_addr))?;
    let admin_listener = tokio::net::TcpListener::bind(cli.admin_addr)
        .await
        .with_context(|| format!("listening on {}", cli.admin_addr))?;
    tracing::info!(storefront = %cli.storefront_addr, admin = %cli.admin_addr, "listening");
    let admin = tokio::spawn(
        axum::serve(admin_listener, admin_router(state.clone()))
            .with_graceful_shutdown(shutdown())
            .into_future(),
    );
    axum::serve(listener, storefront_router(state.clone()))
        .with_graceful_shutdown(shutdown())
        .await?;
    admin.abort();
    // What was shown before the stop is recorded before the process ends.
    state.flush_impressions().await;
    Ok(())
}

/// The embedded default's first start: seed an empty store, fit a first model if none exists.
async fn first_start(store: &Store, cli: &Cli) -> Result<()> {
    if cli.seed.is_dir()
        && let Some(rows) = marquee_api::first_start::seed_if_empty(store, &cli.seed).await?
    {
        println!(
            "seeded the empty store from {} ({rows} rows)",
            cli.seed.display()
        );
    }
    if marquee_api::first_start::model_missing(&cli.model) {
        println!(
            "no model in {}: fitting a first one on the store's data (run `train` for an evaluated one)",
            cli.model.display()
        );
        let version = marquee_api::first_start::fit_first_model(store, &cli.model)
            .await
            .with_context(|| format!("fitting a first model into {}", cli.model.display()))?;
        println!("saved {}/{version}", cli.model.display());
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM: requests in flight finish, new ones are refused.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
