//! `segments`: customer segments for CRM mailings.

use anyhow::{Context, Result};
use chrono::{NaiveDate, TimeZone, Utc};
use clap::{Parser, Subcommand};
use marquee_cli::segments::{Format, compute, export, sizes};
use marquee_cli::{StoreArgs, init_logging};
use std::path::PathBuf;
use std::process::ExitCode;

/// Compute customer segments from the store's orders, list them, and export them for a CRM.
///
/// `compute` scores every customer on recency, frequency and monetary value (quintiles 1-5),
/// names a segment by rule (champions, loyal, potential_loyalists, new, cant_lose, at_risk,
/// hibernating, lost) and clusters customers with k-means. `export` writes the members of the
/// latest run; only customers with marketing consent unless --include-non-consenting.
#[derive(Debug, Parser)]
#[command(name = "segments", version, about, long_about)]
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
    /// Compute RFM scores, segments and clusters for every customer and store them as a new run.
    Compute {
        /// Reference date for recency (YYYY-MM-DD); default: the day after the newest order.
        #[arg(long, value_parser = parse_date)]
        reference: Option<NaiveDate>,
        /// Number of k-means clusters; default: 2 to 8, chosen by silhouette.
        #[arg(long)]
        k: Option<usize>,
    },
    /// Print each segment's size and share of revenue in the latest run.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Export the members of one segment, or all, as CSV or Parquet.
    Export {
        /// The segment to export: champions, loyal, potential_loyalists, new, cant_lose,
        /// at_risk, hibernating or lost.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        segment: Option<String>,
        /// Export every segment.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// The file to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Also export customers without marketing consent.
        #[arg(long)]
        include_non_consenting: bool,
        /// The model whose top-3 recommendations fill the `top_items` column (left empty if
        /// there is none).
        #[arg(long, default_value = "models/default")]
        model: PathBuf,
    },
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a YYYY-MM-DD date: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("segments: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("segments: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let store = cli.store.open().await?;
    match cli.command {
        Command::Compute { reference, k } => {
            let reference = reference
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| Utc.from_utc_datetime(&d));
            let (run, members, t) = compute(&store, reference, k).await?;
            println!(
                "run {}: {} customers, reference {}, {} clusters (silhouette {:.3})",
                run.version,
                members.len(),
                run.reference.format("%Y-%m-%d"),
                run.k,
                run.silhouette
            );
            print_sizes(&members);
            for (c, description) in run.clusters.iter().enumerate() {
                let n = members.iter().filter(|m| m.cluster as usize == c).count();
                println!("cluster {c}: {n} customers: {description}");
            }
            eprintln!(
                "read the store in {:.2}s, RFM and segments in {:.3}s, clustering in {:.3}s, saved in {:.2}s",
                t.read, t.rfm, t.cluster, t.save
            );
        }
        Command::List { json } => {
            let run = store
                .latest_segment_run()
                .await?
                .context("no segments computed yet; run `segments compute` first")?;
            let members = store.segment_members(&run.version, None).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"run": run, "segments": sizes(&members)})
                );
            } else {
                println!("run {} ({} customers)", run.version, members.len());
                print_sizes(&members);
            }
        }
        Command::Export {
            segment,
            all: _,
            format,
            out,
            include_non_consenting,
            model,
        } => {
            let done = export(
                &store,
                segment.as_deref(),
                format,
                &out,
                include_non_consenting,
                Some(&model),
            )
            .await?;
            println!("wrote {} customers to {}", done.rows, out.display());
            if done.left_out > 0 {
                println!(
                    "left out {} customers without marketing consent (--include-non-consenting to include them)",
                    done.left_out
                );
            }
            if !done.with_recommendations {
                println!("top_items is empty: no model at {}", model.display());
            }
        }
    }
    Ok(())
}

fn print_sizes(members: &[marquee_store::SegmentMember]) {
    println!(
        "{:<22} {:>10} {:>14}",
        "segment", "customers", "revenue share"
    );
    for s in sizes(members) {
        println!(
            "{:<22} {:>10} {:>13.1}%",
            s.segment,
            s.customers,
            s.revenue_share * 100.0
        );
    }
}
