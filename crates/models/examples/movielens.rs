//! Evaluates the models on MovieLens with the DESIGN.md protocol (per-user random 80/20,
//! seed 42, top 10, training items excluded, binary relevance):
//!
//! ```sh
//! cargo run --release -p marquee-models --example movielens -- ../shared/data/movielens-latest-small
//! ```

use marquee_models::metrics::{Metrics, evaluate};
use marquee_models::split::per_user_random;
use marquee_models::{
    Als, AlsParams, Ease, EaseParams, Interactions, ItemKnn, ItemKnnParams, Popularity,
};
use std::time::Instant;

fn row(name: &str, m: &Metrics, secs: f64) {
    println!(
        "{name:<28} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>8.2}s",
        m.precision, m.recall, m.ndcg, m.map, m.coverage, secs
    );
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/movielens-latest-small".into());
    let bundle =
        marquee_datasets::movielens::read(std::path::Path::new(&dir)).expect("read MovieLens");
    let data = Interactions::from_triplets(bundle.events.iter().map(|e| {
        (
            e.user().map_or("", |u| u.as_str()),
            e.item.as_ref().map_or("", |i| i.as_str()),
            e.value.unwrap_or(1.0),
        )
    }));
    let split = per_user_random(&data.map_values(|_| 1.0), 0.2, 42);
    println!(
        "{} users, {} items, {} train, {} test",
        data.n_users(),
        data.n_items(),
        split.train.nnz(),
        split.test.nnz()
    );
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "model", "P@10", "R@10", "nDCG@10", "MAP@10", "cov", "fit"
    );
    let t = Instant::now();
    let pop = Popularity::fit(&split.train);
    row(
        "popularity",
        &evaluate(&pop, &split.train, &split.test, 10),
        t.elapsed().as_secs_f64(),
    );
    for neighbors in [50, 200] {
        let t = Instant::now();
        let knn = ItemKnn::fit(
            &split.train,
            ItemKnnParams {
                neighbors,
                weighted: false,
            },
        )
        .expect("kNN");
        let secs = t.elapsed().as_secs_f64();
        row(
            &format!("item_knn k={neighbors}"),
            &evaluate(&knn, &split.train, &split.test, 10),
            secs,
        );
    }
    for (lambda, neighbors) in [
        (100.0, 500),
        (200.0, 500),
        (500.0, 500),
        (200.0, 1000),
        (200.0, 2000),
    ] {
        let t = Instant::now();
        let ease = Ease::fit(
            &split.train,
            EaseParams {
                lambda,
                neighbors,
                ..EaseParams::default()
            },
        )
        .expect("EASE");
        let secs = t.elapsed().as_secs_f64();
        row(
            &format!("ease λ={lambda} n={neighbors}"),
            &evaluate(&ease, &split.train, &split.test, 10),
            secs,
        );
    }
    for (factors, reg, alpha) in [
        (64, 0.05, 2.0),
        (64, 5.0, 1.0),
        (64, 20.0, 2.0),
        (128, 50.0, 4.0),
        (32, 1.0, 1.0),
        (16, 0.1, 1.0),
    ] {
        let t = Instant::now();
        let params = AlsParams {
            factors,
            iterations: 15,
            regularization: reg,
            alpha,
            ..AlsParams::default()
        };
        let als = Als::fit(&split.train, params, |_, _| true).expect("ALS");
        let secs = t.elapsed().as_secs_f64();
        row(
            &format!("als f={factors} λ={reg} α={alpha}"),
            &evaluate(&als, &split.train, &split.test, 10),
            secs,
        );
    }
}
