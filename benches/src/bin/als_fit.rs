//! Times our ALS fit on a data set and writes the exact matrices it used, so that
//! `benches/als_implicit.py` can fit the `implicit` library on the same train split.
//!
//! ```sh
//! als-fit movielens ../shared/data/movielens-latest-small/ratings.csv OUT_DIR [runs]
//! als-fit generated 1000000 OUT_DIR [runs]      # sparse: 50k users x 20k items
//! als-fit dense 1000000 OUT_DIR [runs]          # MovieLens-1M's shape: 6,040 x 3,706
//! ```
//!
//! Writes `OUT_DIR/train.csv` and `OUT_DIR/test.csv` (`user,item,value` as row and column
//! indices) and prints one JSON line: fit seconds of every run, and nDCG@10 / recall@10 of the
//! last fit on the test split (DESIGN.md protocol: per-user random 80/20, seed 42, training
//! items excluded). Parameters: 64 factors, 15 iterations, regularization and alpha from the
//! environment (`ALS_REG`, default 20; `ALS_ALPHA`, default 2; `ALS_SEED`, default 42).
//! `ALS_WARM=1` also measures warm starts (see `warm_starts`); `FIT=ease` fits EASE instead
//! (`benches/ease_numpy.py` is its numpy counterpart).

use marquee_domain::rng::SeededRng;
use marquee_models::metrics::evaluate;
use marquee_models::split::per_user_random;
use marquee_models::{Als, AlsParams, Interactions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn movielens(path: &Path) -> Result<Interactions, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let mut f = line.split(',');
        match (f.next(), f.next()) {
            (Some(u), Some(i)) => rows.push((u, i, 1.0f32)),
            _ => {
                return Err(format!(
                    "{}: line {}: expected userId,movieId,...",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(Interactions::from_triplets(rows))
}

/// The sparse shape: `target / 20` users, `target / 50` items, 5 to 34 picks per visit.
fn generated(target: usize) -> Interactions {
    generated_shape(target / 20, (target / 50).max(100), target, (5, 30), 50)
}

/// MovieLens-1M's shape: 6,040 users, 3,706 items in 6 taste groups, `target` picks, 80
/// to 249 per visit (about 165 per user for a million; repeats make it ~125 distinct).
fn dense(target: usize) -> Interactions {
    generated_shape(6_040, 3_706, target, (80, 170), 6)
}

/// The large shape: 200,000 users, 50,000 items in 50 taste groups, `target` picks, 50 to 149
/// per visit (25M picks make about 20M distinct pairs).
fn large(target: usize) -> Interactions {
    generated_shape(200_000, 50_000, target, (50, 100), 50)
}

/// Users in `groups` taste groups; each group prefers its own slice of a Zipf-popular
/// catalog. Each visit makes `low + (0..spread)` picks (a repeated pick is one pair).
fn generated_shape(
    users: usize,
    items: usize,
    target: usize,
    (low, spread): (usize, usize),
    groups: usize,
) -> Interactions {
    let mut rng = SeededRng::new(7);
    let ids_u: Vec<String> = (0..users).map(|u| format!("u{u}")).collect();
    let ids_i: Vec<String> = (0..items).map(|i| format!("i{i}")).collect();
    // Zipf weights over a group's items (rank r gets 1 / (r + 1)^0.9), cumulative.
    let per_group = items / groups;
    let cdf: Vec<f64> = (0..per_group)
        .scan(0.0, |acc, r| {
            *acc += 1.0 / ((r + 1) as f64).powf(0.9);
            Some(*acc)
        })
        .collect();
    let total = cdf[cdf.len() - 1];
    let mut rows = Vec::with_capacity(target);
    let mut made = 0;
    let mut u = 0;
    while made < target {
        let user = u % users;
        let group = user % groups;
        let n = low + rng.index(spread);
        for _ in 0..n {
            // 80 % of picks from the user's group, 20 % from any group.
            let g = if rng.chance(0.8) {
                group
            } else {
                rng.index(groups)
            };
            let x = rng.f64() * total;
            let r = cdf.partition_point(|&c| c < x).min(per_group - 1);
            rows.push((
                ids_u[user].as_str(),
                ids_i[g * per_group + r].as_str(),
                1.0f32,
            ));
            made += 1;
        }
        u += 1;
    }
    Interactions::from_triplets(rows)
}

fn write_matrix(path: &Path, m: &Interactions) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "user,item,value")?;
    for (u, i, v, _) in m.entries() {
        writeln!(w, "{u},{i},{v}")?;
    }
    w.flush()
}

/// The refit's warm start, measured: a first model on the training split's own 80 % (as
/// `train` fits on its split before refitting on all data), then fits on the whole training
/// split from its factors with few sweeps, against cold fits with as many, all evaluated on
/// the test split. One JSON line per sweep count.
fn warm_starts(split: &marquee_models::split::Split, params: AlsParams) -> Result<(), String> {
    let inner = per_user_random(&split.train, 0.2, 43);
    let first = Als::fit(&inner.train, params, |_, _| true).map_err(|e| e.to_string())?;
    for sweeps in [1, 2, 3, 4, 5, 8, 15] {
        let p = AlsParams {
            iterations: sweeps,
            ..params
        };
        let t = Instant::now();
        let warm = Als::fit_warm(&split.train, p, &first, &inner.train, |_, _| true)
            .map_err(|e| e.to_string())?;
        let warm_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let cold = Als::fit(&split.train, p, |_, _| true).map_err(|e| e.to_string())?;
        let cold_seconds = t.elapsed().as_secs_f64();
        let (w, c) = (
            evaluate(&warm, &split.train, &split.test, 10),
            evaluate(&cold, &split.train, &split.test, 10),
        );
        println!(
            "{}",
            serde_json::json!({
                "sweeps": sweeps,
                "warm_seconds": warm_seconds,
                "warm_ndcg_at_10": w.ndcg,
                "cold_seconds": cold_seconds,
                "cold_ndcg_at_10": c.ndcg,
            })
        );
    }
    Ok(())
}

/// `FIT=ease`: EASE instead of ALS, λ from `EASE_LAMBDA` (default 500), B pruned to
/// `EASE_NEIGHBORS` entries per item on average (default: none pruned, as numpy's EASE).
fn ease(split: &marquee_models::split::Split, runs: usize) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let params = marquee_models::EaseParams {
        lambda: env("EASE_LAMBDA").unwrap_or(500.0),
        neighbors: env("EASE_NEIGHBORS").map_or(split.train.n_items(), |n: f64| n as usize),
        weighted: false,
    };
    let mut seconds = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let model = marquee_models::Ease::fit(&split.train, params).map_err(|e| e.to_string())?;
        seconds.push(t.elapsed().as_secs_f64());
        last = Some(model);
    }
    let model = last.ok_or("no run")?;
    let m = evaluate(&model, &split.train, &split.test, 10);
    println!(
        "{}",
        serde_json::json!({
            "library": "marquee",
            "model": "ease",
            "items": split.train.n_items(),
            "lambda": params.lambda,
            "neighbors": params.neighbors,
            "fit_seconds": seconds,
            "ndcg_at_10": m.ndcg,
        })
    );
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: als-fit movielens RATINGS_CSV OUT_DIR [runs] | als-fit generated|dense|large N OUT_DIR [runs]".into());
    }
    let data = match args[1].as_str() {
        "movielens" => movielens(Path::new(&args[2]))?,
        "generated" => generated(args[2].parse().map_err(|e| format!("N: {e}"))?),
        "dense" => dense(args[2].parse().map_err(|e| format!("N: {e}"))?),
        "large" => large(args[2].parse().map_err(|e| format!("N: {e}"))?),
        other => return Err(format!("unknown data set {other:?}")),
    };
    let out = Path::new(&args[3]);
    let runs: usize = args
        .get(4)
        .map_or(Ok(3), |r| r.parse())
        .map_err(|e| format!("runs: {e}"))?;
    let env = |name: &str, default: f32| -> f32 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let params = AlsParams {
        factors: 64,
        iterations: 15,
        regularization: env("ALS_REG", 20.0),
        alpha: env("ALS_ALPHA", 2.0),
        seed: std::env::var("ALS_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(42),
        ..AlsParams::default()
    };
    let split = per_user_random(&data, 0.2, 42);
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    write_matrix(&out.join("train.csv"), &split.train).map_err(|e| e.to_string())?;
    write_matrix(&out.join("test.csv"), &split.test).map_err(|e| e.to_string())?;
    if std::env::var("FIT").is_ok_and(|v| v == "ease") {
        return ease(&split, runs);
    }
    let mut seconds = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let model = Als::fit(&split.train, params, |_, _| true).map_err(|e| e.to_string())?;
        seconds.push(t.elapsed().as_secs_f64());
        last = Some(model);
    }
    let model = last.ok_or("no run")?;
    let m = evaluate(&model, &split.train, &split.test, 10);
    if std::env::var("ALS_WARM").is_ok_and(|v| v == "1") {
        warm_starts(&split, params)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "library": "marquee",
            "users": data.n_users(),
            "items": data.n_items(),
            "train_interactions": split.train.nnz(),
            "factors": params.factors,
            "iterations": params.iterations,
            "regularization": params.regularization,
            "alpha": params.alpha,
            "fit_seconds": seconds,
            "ndcg_at_10": m.ndcg,
            "recall_at_10": m.recall,
        })
    );
    Ok(())
}
