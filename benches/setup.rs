//! The ALS serving setup the scoring benches share: 2,000 users with 40 random items each over
//! 10,000 items, random 64-factor ALS vectors (N(0, 0.1²)), saved as an artifact and opened
//! by the engine.

use marquee_domain::EventWeights;
use marquee_domain::rng::SeededRng;
use marquee_engine::Engine;
use marquee_models::{Als, AlsParams, Artifact, Interactions, Model};

pub const ITEMS: usize = 10_000;
pub const USERS: usize = 2_000;
pub const FACTORS: usize = 64;
pub fn history() -> Interactions {
    let mut rng = SeededRng::new(3);
    let users: Vec<String> = (0..USERS).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = (0..ITEMS).map(|i| format!("i{i}")).collect();
    let mut rows = Vec::new();
    for u in &users {
        for _ in 0..40 {
            rows.push((
                u.as_str(),
                items[rng.index(ITEMS)].as_str(),
                1.0,
                1_700_000_000_000,
            ));
        }
    }
    // Every item appears at least once, so the catalog is exactly ITEMS wide.
    for (n, i) in items.iter().enumerate() {
        rows.push((
            users[n % USERS].as_str(),
            i.as_str(),
            1.0,
            1_700_000_000_000,
        ));
    }
    Interactions::from_timed_triplets(rows)
}

pub fn als_engine(dir: &std::path::Path) -> (Engine, Als) {
    let history = history();
    let mut rng = SeededRng::new(5);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32 * 0.1).collect() };
    let als = Als {
        params: AlsParams {
            factors: FACTORS,
            ..AlsParams::default()
        },
        n_users: history.n_users(),
        n_items: history.n_items(),
        user_factors: random(history.n_users() * FACTORS),
        item_factors: random(history.n_items() * FACTORS),
    };
    let model = Model::Als(als.clone());
    let mut artifact = Artifact::new(
        "bench",
        "v1",
        model,
        history,
        "bench",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    );
    let path = dir.join("als");
    artifact.save(&path).unwrap();
    (Engine::open(&path, Vec::new()).unwrap(), als)
}

/// The exact score of item `i` (rows of `FACTORS` in `y`) for the user vector `x`, as the
/// engine computes it for the rows the int8 pass leaves.
pub fn exact_scorer<'a>(y: &'a [f32], x: &'a [f32]) -> impl FnMut(u32) -> f32 + 'a {
    move |i| marquee_models::dot(&y[i as usize * FACTORS..][..FACTORS], x)
}
