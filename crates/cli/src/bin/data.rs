//! `data`: load data sets into the store, generate a synthetic store, print counts.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use marquee_cli::{
    StoreArgs, Written, bar, bundle_rows, init_logging, interrupted, spinner, write_bundle,
};
use marquee_datasets::generator::{GeneratorConfig, generate};
use marquee_datasets::{Bundle, store_dir};
use marquee_domain::{Currency, EventKind};
use marquee_store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Load data into the Marquee store, generate a synthetic store, and count what is stored.
///
/// Every import is all-or-nothing: a malformed row is reported with its file, line and field,
/// and nothing of the file is stored. Re-importing the same file stores nothing twice.
#[derive(Debug, Parser)]
#[command(name = "data", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// Log more (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a data set into the store.
    #[command(subcommand)]
    Import(Source),
    /// Generate a synthetic store with planted tastes (into the store, or as CSV files).
    Generate(GenerateArgs),
    /// Print how many users, items, orders, events and ratings the store holds.
    Stats {
        /// Print JSON instead of `name: count` lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Source {
    /// A MovieLens folder: ratings.csv + movies.csv (+ tags.csv), ratings.dat + movies.dat, or u.data + u.item.
    Movielens { dir: PathBuf },
    /// UCI Online Retail as .parquet or .csv (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country).
    OnlineRetail { file: PathBuf },
    /// OTTO sessions as sessions.jsonl or the flattened events.csv (session, aid, ts_ms, type).
    Otto { file: PathBuf },
    /// A CSV or Parquet file with columns user,item and optional rating,timestamp.
    Interactions {
        file: PathBuf,
        /// Event kind for rows without a rating.
        #[arg(long, default_value = "view", value_parser = parse_kind)]
        kind: EventKind,
    },
    /// A store folder of this project (items.csv, users.csv, orders.csv, order_lines.csv, events.csv), e.g. notebooks-data/demo-store.
    Store { dir: PathBuf },
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Number of catalog items.
    #[arg(long, default_value_t = 2_000)]
    items: usize,
    /// Exact number of behaviour events (views, carts, purchases, ratings, ...).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Random seed: the same seed gives the same store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of taste groups users are drawn from.
    #[arg(long, default_value_t = 12)]
    taste_groups: usize,
    /// Days of history before the end date.
    #[arg(long, default_value_t = 180)]
    days: u32,
    /// Time of the last event (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    end: chrono::DateTime<chrono::Utc>,
    /// Currency of prices (ISO 4217).
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Write a store folder (CSV files) here instead of into the store.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_kind(text: &str) -> Result<EventKind, String> {
    EventKind::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result.map(|()| ExitCode::SUCCESS),
            () = interrupted() => {
                eprintln!("interrupted: nothing of the unfinished import was stored");
                Ok(ExitCode::from(130))
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Stats { json } => {
            let store = cli.store.open().await?;
            print_stats(&store, json).await
        }
        Command::Import(source) => {
            let store = cli.store.open().await?;
            import(&store, source).await?;
            print_stats(&store, false).await
        }
        Command::Generate(args) => generate_cmd(&cli.store, args).await,
    }
}

async fn print_stats(store: &Store, json: bool) -> Result<()> {
    let c = store.counts().await?;
    if json {
        println!(
            "{{\"users\":{},\"items\":{},\"orders\":{},\"order_lines\":{},\"events\":{},\"ratings\":{},\"sessions\":{}}}",
            c.users, c.items, c.orders, c.order_lines, c.events, c.ratings, c.sessions
        );
    } else {
        println!("users: {}", c.users);
        println!("items: {}", c.items);
        println!("orders: {}", c.orders);
        println!("order_lines: {}", c.order_lines);
        println!("events: {}", c.events);
        println!("ratings: {}", c.ratings);
        println!("sessions: {}", c.sessions);
    }
    Ok(())
}

async fn read_source(source: Source) -> Result<(String, Bundle)> {
    let label = match &source {
        Source::Movielens { dir } => format!("MovieLens folder {}", dir.display()),
        Source::OnlineRetail { file } => format!("Online Retail file {}", file.display()),
        Source::Otto { file } => format!("OTTO sessions {}", file.display()),
        Source::Interactions { file, .. } => format!("interactions {}", file.display()),
        Source::Store { dir } => format!("store folder {}", dir.display()),
    };
    let reading = spinner(format!("reading {label}"));
    let bundle = tokio::task::spawn_blocking(move || match source {
        Source::Movielens { dir } => marquee_datasets::movielens::read(&dir),
        Source::OnlineRetail { file } => marquee_tabular::online_retail::read(&file),
        Source::Otto { file } => marquee_datasets::otto::read(&file),
        Source::Interactions { file, kind } => marquee_tabular::interactions::read(&file, kind),
        Source::Store { dir } => store_dir::read(&dir),
    })
    .await
    .context("the reader thread failed")?
    .with_context(|| format!("nothing was imported from the {label}"))?;
    reading.finish_and_clear();
    Ok((label, bundle))
}

async fn import(store: &Store, source: Source) -> Result<()> {
    let started = Instant::now();
    let (label, bundle) = read_source(source).await?;
    let read_time = started.elapsed();
    let progress = bar(bundle_rows(&bundle), "storing");
    let write_start = Instant::now();
    let mut import = store.begin_import().await?;
    let written = write_bundle(&mut import, &bundle, &progress)
        .await
        .with_context(|| format!("nothing was imported from the {label}"))?;
    import.commit().await?;
    progress.finish_and_clear();
    report(&label, &written, read_time, write_start.elapsed());
    for note in &bundle.notes {
        println!("note: {note}");
    }
    Ok(())
}

fn report(label: &str, w: &Written, read: std::time::Duration, write: std::time::Duration) {
    let rows =
        w.items + w.users + w.orders + w.order_lines + w.events.inserted + w.events.duplicates;
    let secs = write.as_secs_f64().max(1e-9);
    println!("imported {label}");
    println!(
        "  items {}, users {}, orders {} ({} lines), events {} new + {} already stored",
        w.items, w.users, w.orders, w.order_lines, w.events.inserted, w.events.duplicates
    );
    println!(
        "  read in {:.2}s, stored in {:.2}s ({:.0} rows/s)",
        read.as_secs_f64(),
        write.as_secs_f64(),
        rows as f64 / secs
    );
}

async fn generate_cmd(store_args: &StoreArgs, args: GenerateArgs) -> Result<()> {
    if args.users == 0 || args.items == 0 {
        bail!("--users and --items must be at least 1");
    }
    let config = GeneratorConfig {
        seed: args.seed,
        users: args.users,
        items: args.items,
        events: args.events,
        taste_groups: args.taste_groups.max(1),
        end: args.end,
        days: args.days.max(1),
        currency: Currency::new(&args.currency).context("--currency")?,
    };
    if let Some(out) = args.out {
        return generate_to_folder(config, &out).await;
    }
    let store = store_args.open().await?;
    let started = Instant::now();
    let progress = bar(
        (config.items + config.users + config.events) as u64,
        "generating",
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bundle>(2);
    let producer = tokio::task::spawn_blocking(move || {
        generate(&config, |chunk| {
            tx.blocking_send(chunk)
                .map_err(|_| marquee_datasets::Error::Unsupported {
                    path: PathBuf::from("store"),
                    message: "the writer stopped".into(),
                })
        })
    });
    let mut import = store.begin_import().await?;
    let mut written = Written::default();
    while let Some(chunk) = rx.recv().await {
        let before = progress.position();
        written.add(write_bundle(&mut import, &chunk, &progress).await?);
        // Orders are not part of the bar's total.
        progress.set_position(
            before + (chunk.items.len() + chunk.users.len() + chunk.events.len()) as u64,
        );
    }
    let counts = producer.await.context("the generator thread failed")??;
    import.commit().await?;
    progress.finish_and_clear();
    report(
        &format!("a generated store (seed {})", args.seed),
        &written,
        std::time::Duration::ZERO,
        started.elapsed(),
    );
    debug_assert_eq!(
        counts.events as u64,
        written.events.inserted + written.events.duplicates
    );
    print_stats(&store, false).await
}

async fn generate_to_folder(config: GeneratorConfig, out: &Path) -> Result<()> {
    let out = out.to_owned();
    let shown = out.display().to_string();
    let writing = spinner(format!("writing a generated store to {shown}"));
    let counts = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut writer = store_dir::StoreDirWriter::create(&out)?;
        let counts = generate(&config, |chunk| writer.write(&chunk))?;
        writer.finish()?;
        Ok(counts)
    })
    .await
    .context("the generator thread failed")??;
    writing.finish_and_clear();
    println!(
        "wrote {shown}: items {}, users {}, orders {}, events {}",
        counts.items, counts.users, counts.orders, counts.events
    );
    Ok(())
}
