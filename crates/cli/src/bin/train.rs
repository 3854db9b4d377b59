//! `train`: fit, evaluate and save recommendation models.

use anyhow::Result;
use clap::Parser;
use marquee_cli::config::TrainConfig;
use marquee_cli::train::{self, Interrupted, STOP};
use marquee_cli::{StoreArgs, init_logging, interrupted, report};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// mimalloc, as `serve` uses: a million events' strings are made on one thread and freed
/// on another, which glibc's allocator does slowly (reading a million stored events took
/// 0.72-0.92 s with it, 0.56-0.60 s with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Freed memory goes back to the system after 50 ms instead of mimalloc's default delay
/// (1 s in the mimalloc built here, 10 ms in its version 2). With the 1 s delay,
/// ml-latest-small's run of four models peaked at 988-1008 MiB (EASE's budget is 1 GB);
/// with 50 ms, at 887 MiB (glibc: 863 MiB). With no delay at all, the read of a million
/// events slowed from about 0.5 s to 0.6-0.8 s: each batch's freed buffers went back to the
/// system and were faulted in again for the next.
#[allow(unsafe_code)]
fn purge_freed_memory_sooner() {
    use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};
    /// `mi_option_purge_delay`, the 16th option of mimalloc.h in both of its versions.
    const PURGE_DELAY: mi_option_t = 15;
    // SAFETY: reading and setting an option are plain calls that take and return integers.
    // The option is checked to hold one of its two defaults first, so a mimalloc that
    // numbered its options differently, or an operator's own MIMALLOC_PURGE_DELAY, is left
    // alone.
    unsafe {
        if matches!(mi_option_get(PURGE_DELAY), 10 | 1000) {
            mi_option_set(PURGE_DELAY, 50);
        }
    }
}

/// Train recommendation models, compare them with the popularity baseline, and save the best.
///
/// Reads events and orders (from the store at DATABASE_URL, or a file named in the config),
/// builds weighted interactions, holds out a test split (per user, 80/20, seed 42 by default),
/// chooses each model's parameters on a validation split cut from training, prints held-out
/// precision, recall, nDCG, MAP and coverage for every model, refits the best one on all the
/// data and writes it to `<output_dir>/<name>/<version>/` with `report.html`.
///
/// Models: popularity, trending, item_knn, ease, als (the default list), and bpr, two_tower and
/// sasrec (trained with burn on the CPU; ask for them with `--set models=...`). sasrec, the
/// next-item sequence model, is measured with `--set split.method=leave_last_out` (each user's
/// newest item held out). Without --config,
/// `training/default.toml` is used if it exists, else the built-in defaults (the default
/// models, the store at DATABASE_URL). Ctrl-C stops cleanly: nothing is written.
#[derive(Debug, Parser)]
#[command(name = "train", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// The experiment config (TOML); see training/README.md for every key.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set models=als,ease,two_tower --set als.factors=64
    /// --set ease.lambda=100,200 --set two_tower.epochs=10 --set refit=false
    /// --set output_dir=DIR`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log more (RUST_LOG overrides).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    purge_freed_memory_sooner();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("train: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("train: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let default = Path::new("training/default.toml");
    let path = cli
        .config
        .as_deref()
        .or_else(|| default.is_file().then_some(default));
    let config = TrainConfig::load(path, &cli.set)?;
    let config_toml = toml::to_string_pretty(&config)?;
    if cli.print_config {
        print!("{config_toml}");
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.spawn(async {
        interrupted().await;
        STOP.store(true, Ordering::Relaxed);
    });
    let loading = train::loading(&config);
    let started = std::time::Instant::now();
    let data = runtime.block_on(train::load(&config, &cli.store));
    loading.finish_and_clear();
    let read = started.elapsed().as_secs_f64();
    let mut outcome = train::run(&config, data?)?;
    outcome.phases.insert(0, ("read".into(), read));
    print!("{}", train::table(&outcome));
    if let Some(dir) = &outcome.artifact_dir {
        println!(
            "saved {} to {}",
            outcome.results[outcome.chosen].kind,
            dir.display()
        );
        if config.report {
            let path = dir.join("report.html");
            let started = std::time::Instant::now();
            std::fs::write(&path, report::render(&outcome, &config_toml))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            outcome
                .phases
                .push(("report".into(), started.elapsed().as_secs_f64()));
            println!("report: {}", path.display());
        }
    }
    eprint!("{}", train::Phases::table(&outcome.phases));
    Ok(())
}
