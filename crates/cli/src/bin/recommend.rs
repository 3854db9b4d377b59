//! `recommend`: batch recommendations from a saved model.

use anyhow::Result;
use clap::Parser;
use marquee_cli::init_logging;
use marquee_cli::recommend::{
    Users, read_user_file, resolve_model, write_file, write_recommendations,
};
use marquee_models::Artifact;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write the top-k recommendations of a trained model as CSV: `user,item,rank,score`, one row
/// per recommendation, ranks from 1, ids as imported.
///
/// Users the model has not seen get the most popular items of its training data.
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
    if cli.k == 0 {
        anyhow::bail!("--k must be at least 1");
    }
    let dir = resolve_model(&cli.model)?;
    let artifact = Artifact::load(&dir)?;
    let users = if cli.users == "all" {
        Users::All
    } else {
        Users::Listed(read_user_file(std::path::Path::new(&cli.users))?)
    };
    let written = if cli.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        write_recommendations(&artifact, &users, cli.k, cli.exclude_seen, &mut lock)?
    } else {
        write_file(&artifact, &users, cli.k, cli.exclude_seen, &cli.out)?
    };
    eprintln!(
        "{} rows for {} users from {} ({}){}",
        written.rows,
        written.users,
        artifact.manifest.kind,
        dir.display(),
        if written.unknown_users > 0 {
            format!(
                "; {} users not in the model got the most popular items",
                written.unknown_users
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
