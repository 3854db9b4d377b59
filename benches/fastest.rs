//! Fastest-batch timings, steadier than criterion's medians on a shared machine: the int8
//! first pass with the exact scores of the rows it leaves, for a top 10 over 2,000 to 20,000
//! random items × 64 factors (ns per item; 2,000 items fit in L2, 10,000 do not), then the
//! whole ALS top-10 request of the scoring bench (µs), each as the fastest, the
//! 10th-percentile and the median batch.
//!
//! ```sh
//! cargo bench -p marquee-benches --bench fastest
//! ```

use marquee_domain::rng::SeededRng;
use marquee_engine::Filters;
use marquee_models::{QuantScratch, QuantizedFactors};
use std::hint::black_box;
use std::time::Instant;

#[path = "setup.rs"]
mod setup;
use setup::{FACTORS, ITEMS, als_engine, exact_scorer};

/// Runs `batch` calls of `f` `batches` times; the fastest, 10th-percentile and median time
/// per call divided by `per`, in nanoseconds.
fn batches(batches: usize, batch: u32, per: f64, mut f: impl FnMut()) -> [f64; 3] {
    let mut times: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(batch) / per
        })
        .collect();
    times.sort_by(f64::total_cmp);
    [times[0], times[times.len() / 10], times[times.len() / 2]]
}

fn main() {
    for n in [2_000_usize, 4_000, 10_000, 20_000] {
        let mut rng = SeededRng::new(5);
        let y: Vec<f32> = (0..n * FACTORS)
            .map(|_| rng.normal() as f32 * 0.1)
            .collect();
        let x: Vec<f32> = (0..FACTORS).map(|_| rng.normal() as f32 * 0.1).collect();
        let q = QuantizedFactors::new(&y, n, FACTORS);
        let (mut scratch, mut out) = (QuantScratch::default(), Vec::new());
        let [min, p10, p50] = batches(2_000, 20, n as f64, || {
            q.candidates(
                black_box(&x),
                10,
                &[],
                &mut scratch,
                &mut exact_scorer(&y, &x),
                &mut out,
            );
            black_box(&out);
        });
        println!(
            "int8 pass and exact rows for a top 10, {n} items: ns per item: fastest {min:.3}, p10 {p10:.3}, median {p50:.3}"
        );
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (engine, als) = als_engine(dir.path());
    let q = QuantizedFactors::new(&als.item_factors, ITEMS, FACTORS);
    let (mut scratch, mut candidates) = (QuantScratch::default(), Vec::new());
    let mut total = 0;
    for u in 0..200 {
        let x = als.user_vector(u);
        let mut exact = exact_scorer(&als.item_factors, x);
        q.candidates(x, 10, &[], &mut scratch, &mut exact, &mut candidates);
        total += candidates.len();
    }
    println!(
        "rows scored exactly for a top 10, mean over 200 users: {:.1}",
        total as f64 / 200.0
    );
    let filters = Filters::default();
    let user = marquee_domain::UserId::new("u17").expect("a user id");
    let request = || {
        black_box(
            engine
                .recommend(Some(&user), &[], 10, &filters)
                .expect("an answer"),
        );
    };
    let [min, p10, p50] = batches(12_000, 50, 1_000.0, request);
    println!("ALS top-10 request, 10k x 64: µs: fastest {min:.2}, p10 {p10:.2}, median {p50:.2}");
}
