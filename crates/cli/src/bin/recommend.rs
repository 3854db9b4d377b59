//! `recommend`: batch recommendations from a saved model.

use anyhow::{Context, Result};
use clap::Parser;
use marquee_cli::recommend::{
    Users, read_user_file, resolve_model, write_file, write_recommendations,
};
use marquee_cli::{StoreArgs, init_logging};
use marquee_engine::Engine;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write the top-k recommendations of a trained model as CSV: `user,item,rank,score`, one row
/// per recommendation, ranks from 1, ids as imported.
///
/// Every answer is ranked by the serving engine with the store's catalog, as
/// `GET /v1/recommendations` would answer it: hidden and out-of-stock items are left out, and
/// users the model has not seen get the cold-start answer (trending items).
#[derive(Debug, Parser)]
#[command(name = "recommend", version, about, long_about)]
struct Cli {
    /// A model version folder (models/NAME/VERSION) or a model folder (models/NAME, whose
    /// `latest` version is used).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// `all` (every user in the model) or a file of user ids, one per line.
    #[arg(long, value_name = "all|FILE", default_value = "all")]
    users: String,
    /// Recommendations per user.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Leave out the items each user already interacted with.
    #[arg(long)]
    exclude_seen: bool,
    /// The CSV file to write (`-` for standard output).
    #[arg(long, value_name = "FILE", default_value = "-")]
    out: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Log more (RUST_LOG overrides).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recommend: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    if cli.k == 0 || cli.k > marquee_engine::MAX_K {
        anyhow::bail!(
            "--k must be between 1 and {}, not {}",
            marquee_engine::MAX_K,
            cli.k
        );
    }
    let dir = resolve_model(&cli.model)?;
    let catalog = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = cli.store.open().await?;
            anyhow::Ok(store.all_items().await?)
        })
        .context("reading the catalog (hidden and out-of-stock items are left out)")?;
    let engine = Engine::open(&dir, catalog)?;
    let users = if cli.users == "all" {
        Users::All
    } else {
        Users::Listed(read_user_file(std::path::Path::new(&cli.users))?)
    };
    let written = if cli.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        write_recommendations(&engine, &users, cli.k, cli.exclude_seen, &mut lock)?
    } else {
        write_file(&engine, &users, cli.k, cli.exclude_seen, &cli.out)?
    };
    eprintln!(
        "{} rows for {} users from {} ({}){}",
        written.rows,
        written.users,
        engine.kind(),
        dir.display(),
        if written.unknown_users > 0 {
            format!(
                "; {} users not in the model got the cold-start answer (trending items)",
                written.unknown_users
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
