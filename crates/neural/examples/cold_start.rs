//! The cold-start benchmark of the two-tower model on MovieLens: 10% of the movies are held
//! out of training entirely (all their ratings go to the test side), and the model ranks them
//! for the users who rated them from their content features alone (title words, genres).
//! Reports recall@20 over the cold movies against a genre-popularity baseline and random:
//!
//! ```sh
//! cargo run --release --example cold_start -- ../shared/data/movielens-latest-small
//! ```

use marquee_models::{Interactions, TwoTowerParams};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/movielens-latest-small".into());
    let bundle =
        marquee_datasets::movielens::read(std::path::Path::new(&dir)).expect("read MovieLens");
    let data = Interactions::from_timed_triplets(bundle.events.iter().map(|e| {
        (
            e.user().map_or("", |u| u.as_str()),
            e.item.as_ref().map_or("", |i| i.as_str()),
            1.0,
            e.timestamp.timestamp_millis(),
        )
    }));
    let params = TwoTowerParams::default();
    let report = marquee_neural::cold::two_tower_report(&data, &bundle.items, 0.1, params, 20)
        .expect("fit the two-tower model");
    for e in &report.epochs {
        println!(
            "epoch {:>2}: loss {:.4} ({:.2}s)",
            e.epoch, e.loss, e.seconds
        );
    }
    println!(
        "{} cold movies, {} users with a cold movie; recall@{} over the cold movies:",
        report.cold_items, report.users, report.k
    );
    println!("  two-tower (features only) {:.4}", report.two_tower);
    println!("  genre popularity          {:.4}", report.genre_popularity);
    println!("  random                    {:.4}", report.random);
}
