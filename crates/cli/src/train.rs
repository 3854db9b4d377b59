//! What `train` does, step by step: load events and orders, build the interaction matrix,
//! split it, choose each model's parameters on a validation split cut from training, score
//! every model on the test split against popularity, refit the chosen one on all the data,
//! and write the artifact and its report.

use crate::config::{SourceKind, SplitMethod, TrainConfig};
use crate::{StoreArgs, bar, spinner};
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use marquee_datasets::Bundle;
use marquee_domain::{Event, EventKind, Item, Order};
use marquee_models::features::FeatureList;
use marquee_models::metrics::{Metrics, evaluate_at};
use marquee_models::search::{Candidate, Progress, Trial, validate_with};
use marquee_models::split::{Split, leave_last_out, per_user_random, per_user_temporal};
use marquee_models::{Artifact, Interactions, Model};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set by the Ctrl-C handler; every long step checks it.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The run was stopped by the user; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; no model was written")]
pub struct Interrupted;

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::Relaxed) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Events and orders to train on, the catalog (content features of the two-tower model),
/// and a description of where they came from.
pub struct TrainingData {
    pub events: Vec<Event>,
    pub orders: Vec<Order>,
    pub items: Vec<Item>,
    pub source: String,
}

/// A database URL without its password, for manifests and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Reads the configured source.
pub async fn load(config: &TrainConfig, store: &StoreArgs) -> Result<TrainingData> {
    let from_bundle = |b: Bundle, source: String| TrainingData {
        events: b.events,
        orders: b.orders,
        items: b.items,
        source,
    };
    let path = config.source.path.clone().unwrap_or_default();
    let shown = path.display().to_string();
    let read = |what: &str| format!("reading {what} from {shown}");
    Ok(match config.source.kind {
        SourceKind::Store => {
            let s = store.open().await?;
            // Events, orders and the catalog are read side by side, each on its own
            // connection: the orders and items take no longer than the events' tail.
            let mut events = Vec::new();
            let mut orders = Vec::new();
            let (read_events, read_orders, items) = tokio::join!(
                s.for_each_event(None, |e| {
                    events.push(e);
                    Ok(())
                }),
                s.for_each_order(|o| {
                    orders.push(o);
                    Ok(())
                }),
                s.all_items(),
            );
            read_events.context("reading events from the store")?;
            read_orders.context("reading orders from the store")?;
            let items = items.context("reading the catalog from the store")?;
            TrainingData {
                events,
                orders,
                items,
                source: redact(&store.database_url),
            }
        }
        SourceKind::Movielens => from_bundle(
            marquee_datasets::movielens::read(&path).with_context(|| read("MovieLens"))?,
            format!("movielens:{shown}"),
        ),
        SourceKind::Interactions => from_bundle(
            marquee_tabular::interactions::read(&path, EventKind::View)
                .with_context(|| read("interactions"))?,
            format!("interactions:{shown}"),
        ),
        SourceKind::OnlineRetail => from_bundle(
            marquee_tabular::online_retail::read(&path).with_context(|| read("Online Retail"))?,
            format!("online-retail:{shown}"),
        ),
        SourceKind::Otto => from_bundle(
            marquee_datasets::otto::read(&path).with_context(|| read("OTTO sessions"))?,
            format!("otto:{shown}"),
        ),
        SourceKind::StoreDir => from_bundle(
            marquee_datasets::store_dir::read(&path).with_context(|| read("a store folder"))?,
            format!("store-dir:{shown}"),
        ),
    })
}

/// One model kind's results.
#[derive(Debug, Clone)]
pub struct ModelResult {
    pub kind: &'static str,
    /// The parameters chosen on the validation split.
    pub candidate: Candidate,
    /// Every candidate's validation metrics, best first.
    pub trials: Vec<Trial>,
    /// Test metrics at [`TrainOutcome::ks`].
    pub test: Vec<Metrics>,
    /// Seconds to fit the chosen candidate on the training split.
    pub fit_seconds: f64,
    /// Seconds per ALS sweep or neural epoch of that fit (empty for other models).
    pub iteration_seconds: Vec<f64>,
    /// Training loss per epoch of a neural model (empty for other models).
    pub loss_curve: Vec<f32>,
}

impl ModelResult {
    /// The test metrics at cut-off `k`.
    pub fn at(&self, k: usize) -> Metrics {
        self.test
            .iter()
            .find(|m| m.k == k)
            .copied()
            .unwrap_or_default()
    }

    /// Validation nDCG of the chosen candidate.
    pub fn validation_ndcg(&self) -> f64 {
        self.trials.first().map_or(0.0, |t| t.validation.ndcg)
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub train_interactions: usize,
    pub test_interactions: usize,
    pub ks: Vec<usize>,
    pub k: usize,
    pub results: Vec<ModelResult>,
    /// Index into `results` of the model that was saved.
    pub chosen: usize,
    /// Models that could not be fitted on this data, with the reason.
    pub skipped: Vec<(String, String)>,
    pub artifact_dir: Option<PathBuf>,
    pub source: String,
    pub top_items: Vec<TopItem>,
    pub top_pairs: Vec<TopPair>,
    /// Wall-clock seconds of each phase of [`run`], in order.
    pub phases: Vec<(String, f64)>,
}

/// Wall-clock time by phase: each [`Phases::lap`] records the time since the previous one.
#[derive(Debug)]
pub struct Phases {
    last: Instant,
    pub laps: Vec<(String, f64)>,
}

impl Default for Phases {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Phases {
    pub fn lap(&mut self, name: impl Into<String>) {
        let now = Instant::now();
        self.laps
            .push((name.into(), now.duration_since(self.last).as_secs_f64()));
        self.last = now;
    }

    /// The phases as a table, with the total and how much of it went to fitting (phases
    /// named `validate …`, `fit …` and `refit`).
    pub fn table(laps: &[(String, f64)]) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("time by phase (wall clock):\n");
        for (name, secs) in laps {
            let _ = writeln!(out, "  {name:<28} {secs:>8.2} s");
        }
        let total: f64 = laps.iter().map(|l| l.1).sum();
        let fitting: f64 = laps
            .iter()
            .filter(|(n, _)| n.starts_with("validate ") || n.starts_with("fit ") || n == "refit")
            .map(|l| l.1)
            .sum();
        let _ = writeln!(
            out,
            "  {:<28} {total:>8.2} s (fitting {fitting:.2} s, everything else {:.2} s)",
            "total",
            total - fitting
        );
        out
    }
}

/// One of the ten most trending items: (item, trending score, distinct users).
pub type TopItem = (String, f64, u32);
/// One of the ten pairs most often bought together: (item, item, orders).
pub type TopPair = (String, String, u32);

/// The report's item tables, from the Polars item statistics.
fn item_tables(events: &[Event], orders: &[Order]) -> Result<(Vec<TopItem>, Vec<TopPair>)> {
    use polars::prelude::DataType;
    let stats = marquee_pipelines::item_stats(events, orders, None, 7.0)?.head(Some(10));
    let items = stats.column("item")?.str()?.clone();
    let trending = stats.column("trending")?.f64()?.clone();
    let users = stats.column("users")?.cast(&DataType::UInt32)?;
    let top_items = items
        .iter()
        .zip(trending.iter())
        .zip(users.u32()?.iter())
        .filter_map(|((i, t), u)| Some((i?.to_owned(), t?, u?)))
        .collect();
    let pairs = marquee_pipelines::co_purchase(orders, 2, 10)?;
    let a = pairs.column("item_a")?.str()?.clone();
    let b = pairs.column("item_b")?.str()?.clone();
    let n = pairs.column("orders")?.u32()?.clone();
    let top_pairs = a
        .iter()
        .zip(b.iter())
        .zip(n.iter())
        .filter_map(|((a, b), n)| Some((a?.to_owned(), b?.to_owned(), n?)))
        .collect();
    Ok((top_items, top_pairs))
}

fn kind_of(name: &str) -> &'static str {
    crate::config::MODEL_KINDS
        .iter()
        .find(|&&k| k == name)
        .copied()
        .unwrap_or("popularity")
}

/// A fitted model with what its fit measured.
struct Fitted {
    model: Model,
    seconds: f64,
    /// Seconds of each ALS sweep or neural epoch.
    sweeps: Vec<f64>,
    /// Training loss of each neural epoch.
    loss: Vec<f32>,
}

/// Fits `candidate` on `data` with a progress bar over ALS sweeps or neural epochs.
fn fit(
    candidate: &Candidate,
    data: &Interactions,
    features: &[FeatureList],
    what: &str,
) -> Result<Fitted> {
    let start = Instant::now();
    let mut sweeps = Vec::new();
    let mut last = Instant::now();
    let progress = match candidate {
        Candidate::Als(p) => bar(p.iterations as u64, what),
        Candidate::Bpr(p) => bar(p.epochs as u64, what),
        Candidate::TwoTower(p) => bar(p.epochs as u64, what),
        Candidate::Sasrec(p) => bar(p.epochs as u64, what),
        _ => spinner(what.to_owned()),
    };
    let fitted = marquee_neural::fit(candidate, data, Some(features), &mut |done, _| {
        sweeps.push(last.elapsed().as_secs_f64());
        last = Instant::now();
        progress.set_position(done as u64);
        !STOP.load(Ordering::Relaxed)
    });
    progress.finish_and_clear();
    check_stop()?;
    let (model, loss) = fitted?;
    Ok(Fitted {
        model,
        seconds: start.elapsed().as_secs_f64(),
        sweeps,
        loss,
    })
}

/// The content features of every item of `matrix` (column order), from the catalog; an item
/// missing from the catalog gets the features of an empty entry.
pub fn item_features(matrix: &Interactions, items: &[Item], buckets: u32) -> Vec<FeatureList> {
    let by_id: std::collections::HashMap<&str, &Item> =
        items.iter().map(|i| (i.id.as_str(), i)).collect();
    matrix
        .items
        .ids()
        .iter()
        .map(|id| match by_id.get(id.as_str()) {
            Some(item) => marquee_models::features::item_features(item, buckets),
            None => marquee_models::features::features_of_unknown(buckets),
        })
        .collect()
}

fn split_of(method: SplitMethod, data: &Interactions, fraction: f64, seed: u64) -> Result<Split> {
    Ok(match method {
        SplitMethod::Random => per_user_random(data, fraction, seed),
        SplitMethod::Temporal => {
            if !data.has_times() {
                bail!("split.method = \"temporal\" needs timestamps, and this data has none");
            }
            per_user_temporal(data, fraction)
        }
        SplitMethod::LeaveLastOut => {
            if !data.has_times() {
                bail!("split.method = \"leave_last_out\" needs timestamps, and this data has none");
            }
            leave_last_out(data)
        }
    })
}

/// A version string from the clock: `20261124T211500Z`.
pub fn new_version() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// Runs the whole training job (the data already loaded).
pub fn run(config: &TrainConfig, data: TrainingData) -> Result<TrainOutcome> {
    let mut phases = Phases::default();
    let TrainingData {
        events,
        orders,
        items,
        source,
    } = data;
    if events.is_empty() && orders.is_empty() {
        bail!(
            "{source} holds no events or orders to train on; import data first, e.g. \
             `cargo run --release --bin data -- import store notebooks-data/demo-store`"
        );
    }
    let building = spinner(format!(
        "building interactions from {} events and {} orders",
        events.len(),
        orders.len()
    ));
    // The report's item tables (only when there is a report) are built beside the matrix,
    // on a second thread.
    let (matrix, tables) = std::thread::scope(|scope| {
        let tables = scope.spawn(|| {
            if config.report {
                item_tables(&events, &orders)
            } else {
                Ok((Vec::new(), Vec::new()))
            }
        });
        let matrix =
            marquee_pipelines::interactions(&events, &orders, &config.features.settings(), None);
        (matrix, tables.join())
    });
    let matrix = matrix.context("building the interaction matrix")?;
    let (top_items, top_pairs) = match tables {
        Ok(tables) => tables?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    building.finish_and_clear();
    // Freeing a million events' strings takes a tenth of a second: a thread of its own does it.
    std::thread::spawn(move || drop((events, orders)));
    phases.lap("features");
    let matrix = if config.features.binary {
        matrix.map_values(|_| 1.0)
    } else {
        matrix
    };
    if matrix.nnz() == 0 {
        bail!(
            "{source} holds no interactions to train on; import data first, e.g. \
             `cargo run --release --bin data -- import store notebooks-data/demo-store`"
        );
    }
    eprintln!(
        "data: {} users, {} items, {} interactions (from {source})",
        matrix.n_users(),
        matrix.n_items(),
        matrix.nnz()
    );
    let split = split_of(
        config.split.method,
        &matrix,
        config.split.test_fraction,
        config.seed,
    )?;
    let validation = split_of(
        config.split.method,
        &split.train,
        config.split.validation_fraction,
        config.seed.wrapping_add(1),
    )?;
    if split.test.nnz() == 0 {
        bail!("the test split is empty: every user has a single interaction");
    }
    phases.lap("split");
    let features = item_features(&matrix, &items, config.two_tower.buckets);
    drop(items);
    phases.lap("item features");
    let mut ks: Vec<usize> = vec![1, 5, 10, 20, config.k];
    ks.sort_unstable();
    ks.dedup();

    let mut results = Vec::new();
    let mut models = Vec::new();
    let mut skipped = Vec::new();
    for kind in config.kinds() {
        check_stop()?;
        let candidates = config.candidates(kind);
        let searching = bar(candidates.len() as u64, &format!("validating {kind}"));
        let trials = validate_with(
            &validation,
            Some(&features),
            &candidates,
            config.k,
            &marquee_neural::fit,
            |p| {
                if let Progress::Trial(_) = p {
                    searching.inc(1);
                }
                !STOP.load(Ordering::Relaxed)
            },
        );
        searching.finish_and_clear();
        phases.lap(format!("validate {kind}"));
        check_stop()?;
        let trials = match trials {
            Ok(t) => t,
            Err(e @ (marquee_models::Error::TooLarge(_) | marquee_models::Error::NoTimes)) => {
                eprintln!("skipping {kind}: {e}");
                skipped.push((kind.to_owned(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("validating {kind}")),
        };
        let best = trials[0].candidate;
        let Fitted {
            model,
            seconds: fit_seconds,
            sweeps: iteration_seconds,
            loss: loss_curve,
        } = fit(&best, &split.train, &features, &format!("fitting {kind}"))?;
        phases.lap(format!("fit {kind}"));
        let test = evaluate_at(&model, &split.train, &split.test, &ks);
        phases.lap(format!("evaluate {kind}"));
        let result = ModelResult {
            kind: kind_of(kind),
            candidate: best,
            trials,
            test,
            fit_seconds,
            iteration_seconds,
            loss_curve,
        };
        let m = result.at(config.k);
        eprintln!(
            "{kind:<10} nDCG@{k} {:.4} (validation {:.4}), fitted in {fit_seconds:.2}s",
            m.ndcg,
            result.validation_ndcg(),
            k = config.k
        );
        results.push(result);
        models.push(model);
    }
    let chosen = match &config.select {
        Some(name) => results
            .iter()
            .position(|r| r.kind == name)
            .with_context(|| format!("select = {name:?}, but that model was skipped"))?,
        None => (0..results.len())
            .max_by(|&a, &b| {
                results[a]
                    .validation_ndcg()
                    .total_cmp(&results[b].validation_ndcg())
            })
            .context("no model could be fitted")?,
    };
    check_stop()?;

    let choice = &results[chosen];
    let mut refit_note = serde_json::Value::Null;
    let (model, history) = if config.refit {
        let warm = config.als.refit_iterations;
        let refitted = match (&choice.candidate, &models[chosen]) {
            (Candidate::Als(p), marquee_models::Model::Als(first)) if warm > 0 => {
                let params = marquee_models::AlsParams {
                    iterations: warm.min(p.iterations),
                    ..*p
                };
                refit_note = serde_json::json!({"warm_start": true, "sweeps": params.iterations});
                let progress = bar(
                    params.iterations as u64,
                    "refitting als on all data (warm start)",
                );
                let m = marquee_models::Als::fit_warm(
                    &matrix,
                    params,
                    first,
                    &split.train,
                    |done, _| {
                        progress.set_position(done as u64);
                        !STOP.load(Ordering::Relaxed)
                    },
                );
                progress.finish_and_clear();
                check_stop()?;
                marquee_models::Model::Als(m.context("refitting als")?)
            }
            _ => {
                refit_note = serde_json::json!({"warm_start": false});
                fit(
                    &choice.candidate,
                    &matrix,
                    &features,
                    &format!("refitting {} on all data", choice.kind),
                )?
                .model
            }
        };
        phases.lap("refit");
        (refitted, matrix)
    } else {
        (models.swap_remove(chosen), split.train.clone())
    };
    drop(models);
    check_stop()?;
    let mut outcome_metrics = metrics_json(config, &results, chosen, &split, &ks);
    outcome_metrics["refit"] = refit_note;
    let version = new_version();
    let dir = config.output_dir.join(&config.name).join(&version);
    let mut artifact = Artifact::new(
        &config.name,
        &version,
        model,
        history,
        &source,
        outcome_metrics,
        serde_json::to_value(config.features.weights).unwrap_or_default(),
    );
    artifact
        .save(&dir)
        .with_context(|| format!("writing the model to {}", dir.display()))?;
    write_latest(&config.output_dir.join(&config.name), &version)?;
    phases.lap("write");
    Ok(TrainOutcome {
        users: artifact.history.n_users(),
        items: artifact.history.n_items(),
        interactions: artifact.manifest.data.interactions,
        train_interactions: split.train.nnz(),
        test_interactions: split.test.nnz(),
        ks,
        k: config.k,
        results,
        chosen,
        skipped,
        artifact_dir: Some(dir),
        source,
        top_items,
        top_pairs,
        phases: phases.laps,
    })
}

/// Points `<name>/latest` at `version` (written to a temporary file and renamed).
fn write_latest(dir: &std::path::Path, version: &str) -> Result<()> {
    let tmp = dir.join(format!(".latest.{}", std::process::id()));
    std::fs::write(&tmp, format!("{version}\n"))
        .and_then(|()| std::fs::rename(&tmp, dir.join("latest")))
        .with_context(|| format!("writing {}", dir.join("latest").display()))
}

fn metrics_json(
    config: &TrainConfig,
    results: &[ModelResult],
    chosen: usize,
    split: &Split,
    ks: &[usize],
) -> serde_json::Value {
    let by_model: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|r| {
            (
                r.kind.to_owned(),
                serde_json::json!({
                    "parameters": r.candidate,
                    "validation": r.trials.first().map(|t| t.validation),
                    "test": r.test,
                    "fit_seconds": r.fit_seconds,
                    "loss_per_epoch": r.loss_curve,
                    "seconds_per_epoch": (!r.loss_curve.is_empty()).then_some(&r.iteration_seconds),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "protocol": {
            "split": config.split.method,
            "test_fraction": config.split.test_fraction,
            "validation_fraction": config.split.validation_fraction,
            "seed": config.seed,
            "ks": ks,
            "train_interactions": split.train.nnz(),
            "test_interactions": split.test.nnz(),
        },
        "chosen": results[chosen].kind,
        "test": results[chosen].at(config.k),
        "baseline": results.iter().find(|r| r.kind == "popularity").map(|r| r.at(config.k)),
        "models": by_model,
    })
}

/// The compact results table printed at the end.
pub fn table(outcome: &TrainOutcome) -> String {
    let k = outcome.k;
    let base = outcome
        .results
        .iter()
        .find(|r| r.kind == "popularity")
        .map_or(0.0, |r| r.at(k).ndcg);
    let mut out = format!(
        "{:<2}{:<11} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8}  {}\n",
        "",
        "model",
        format!("P@{k}"),
        format!("R@{k}"),
        format!("nDCG@{k}"),
        format!("MAP@{k}"),
        "cov",
        "vs pop",
        "fit",
        "parameters"
    );
    for (i, r) in outcome.results.iter().enumerate() {
        let m = r.at(k);
        let lift = if base > 0.0 {
            format!("{:+.0}%", (m.ndcg / base - 1.0) * 100.0)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<2}{:<11} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>7.3} {:>9} {:>7.2}s  {}\n",
            if i == outcome.chosen { "*" } else { "" },
            r.kind,
            m.precision,
            m.recall,
            m.ndcg,
            m.map,
            m.coverage,
            lift,
            r.fit_seconds,
            params_text(&r.candidate)
        ));
    }
    for (kind, why) in &outcome.skipped {
        out.push_str(&format!("  {kind:<11} skipped: {why}\n"));
    }
    out
}

/// `factors=64 iterations=15 ...` for a candidate.
pub fn params_text(c: &Candidate) -> String {
    let value = serde_json::to_value(c).unwrap_or_default();
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "model")
                .map(|(k, v)| match v.as_f64() {
                    // Parameters are f32: shown as such (0.2, not 0.20000000298023224).
                    Some(x) if v.is_f64() => format!("{k}={}", x as f32),
                    _ => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A bar for reading a source (hidden when not a terminal).
pub fn loading(config: &TrainConfig) -> ProgressBar {
    spinner(match config.source.kind {
        SourceKind::Store => "reading the store".to_owned(),
        _ => format!(
            "reading {}",
            config
                .source
                .path
                .as_deref()
                .unwrap_or(std::path::Path::new("?"))
                .display()
        ),
    })
}
