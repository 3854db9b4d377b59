//! k-means on generated customers: time and peak memory of `segments::cluster` (linfa) on N
//! customers with the five RFM features.
//!
//! ```sh
//! /usr/bin/time -v target/release/kmeans-1m 1000000 8     # N customers, k (or "auto")
//! ```

use marquee_domain::rng::SeededRng;
use marquee_segments::{CustomerFeatures, cluster};
use std::time::Instant;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .map_or(Ok(1_000_000), |a| a.parse())
        .map_err(|e| format!("N: {e}"))?;
    let k = match args.get(2).map(String::as_str) {
        None | Some("auto") => None,
        Some(k) => Some(k.parse().map_err(|e| format!("k: {e}"))?),
    };
    let mut rng = SeededRng::new(1);
    // Five kinds of customer, each with its own typical values and spread.
    let kinds = [
        (5.0, 25.0, 90_000.0, 700.0, 3_600.0),
        (40.0, 6.0, 12_000.0, 400.0, 2_000.0),
        (120.0, 2.0, 3_000.0, 150.0, 1_500.0),
        (300.0, 1.0, 900.0, 300.0, 900.0),
        (10.0, 1.0, 1_500.0, 10.0, 1_500.0),
    ];
    let features: Vec<CustomerFeatures> = (0..n)
        .map(|_| {
            let (r, f, m, t, b) = kinds[rng.index(kinds.len())];
            let mut noise = |v: f64| (v * (1.0 + 0.25 * rng.normal())).max(0.0);
            CustomerFeatures {
                recency_days: noise(r),
                frequency: noise(f).max(1.0),
                monetary: noise(m),
                tenure_days: noise(t),
                avg_basket: noise(b),
            }
        })
        .collect();
    let start = Instant::now();
    let clusters = cluster(&features, k).map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{n} customers, k = {} (silhouette {:.3}), clustered in {seconds:.2} s",
        clusters.k, clusters.silhouette
    );
    for (c, d) in clusters.descriptions.iter().enumerate() {
        let size = clusters.labels.iter().filter(|&&l| l == c).count();
        println!("cluster {c}: {size} customers: {d}");
    }
    Ok(())
}
