//! The two-tower model on items it never saw in training: 10% of the MovieLens movies are held
//! out entirely, and the model must rank them for the users who rated them from their content
//! features alone, far better than random (recall@20 over the cold movies).

use marquee_models::{Interactions, TwoTowerParams};
use std::path::Path;

#[test]
fn the_two_tower_model_ranks_movies_it_never_saw_far_better_than_random() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/movielens-latest-small");
    let bundle =
        marquee_datasets::movielens::read(&dir).expect("read MovieLens from ../shared/data");
    let data = Interactions::from_timed_triplets(bundle.events.iter().map(|e| {
        (
            e.user().map_or("", |u| u.as_str()),
            e.item.as_ref().map_or("", |i| i.as_str()),
            1.0,
            e.timestamp.timestamp_millis(),
        )
    }));
    let params = TwoTowerParams {
        epochs: 6,
        ..TwoTowerParams::default()
    };
    let report =
        marquee_neural::cold::two_tower_report(&data, &bundle.items, 0.1, params, 20).expect("fit");
    eprintln!("{report:?}");
    assert_eq!(
        report.cold_items,
        (data.n_items() as f64 * 0.1).round() as usize
    );
    assert!(report.users > 300, "{report:?}");
    assert!(
        report.two_tower > 3.0 * report.random,
        "two-tower recall@20 {:.4} is not far above random {:.4}",
        report.two_tower,
        report.random
    );
    let first = report.epochs[0].loss;
    let last = report.epochs[report.epochs.len() - 1].loss;
    assert!(last < first, "loss {first} → {last}");
}
