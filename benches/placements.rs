//! In-process cost of a placement answer: the ALS setup of the scoring benches (10,000 items,
//! 64 factors) with a catalog of 20 categories, prices and a brand attribute; a personal top
//! 10 plain, the candidate pool a placement ranks first (32 items), and the placement itself with a
//! filter, two boosts (one reading the user's latest category) and diversity; a promotion on
//! top. The difference between the placement and its pool is the rules' cost per answer.
//!
//! ```sh
//! cargo bench -p marquee-benches --bench placements
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use marquee_domain::{Currency, Item, ItemId, Money, UserId};
use marquee_engine::{
    Boost, Diversity, Engine, Filters, PlaceRequest, PlacementSpec, Promotion, Strategy,
};
use std::collections::HashMap;
use std::hint::black_box;

#[path = "setup.rs"]
#[allow(dead_code)] // shared with the scoring bench, which uses all of it
mod setup;
use setup::{ITEMS, als_engine};

fn catalog() -> Vec<Item> {
    (0..ITEMS)
        .map(|i| {
            let mut item = Item::new(
                ItemId::new(format!("i{i}")).unwrap(),
                format!("Item {i}"),
                format!("c{}", i % 20),
                chrono::DateTime::from_timestamp_millis(1_600_000_000_000 + i as i64 * 3_600_000)
                    .unwrap(),
            );
            item.genres = vec![format!("g{}", i % 7), format!("g{}", i % 11)];
            item.price = Some(Money::new(
                100 + (i as i64 * 37) % 9_900,
                Currency::new("EUR").unwrap(),
            ));
            item.in_stock = i % 50 != 0;
            item.attributes = serde_json::json!({"brand": format!("b{}", i % 13)});
            item
        })
        .collect()
}

fn spec(promotion: bool) -> PlacementSpec {
    PlacementSpec {
        strategy: Strategy::Personal,
        k: Some(10),
        filter: Some(r#"in_stock && price < 80 && !(genres contains "g3")"#.into()),
        boosts: vec![
            Boost {
                when: r#"attributes.brand in ["b1", "b2"]"#.into(),
                factor: 1.5,
            },
            Boost {
                when: "category == user.last_category".into(),
                factor: 2.0,
            },
        ],
        diversity: Some(Diversity {
            attribute: "category".into(),
            max_per_value: 2,
        }),
        promotion: promotion.then(|| Promotion {
            filter: r#"attributes.brand == "b5""#.into(),
            positions: vec![1, 5],
        }),
        rotation: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (opened, _) = als_engine(dir.path());
    let engine = Engine::open(&opened.model_dir(), catalog()).unwrap();
    let mut placements = HashMap::new();
    placements.insert("shelf".to_owned(), spec(false));
    placements.insert("promoted".to_owned(), spec(true));
    for s in placements.values() {
        engine.check_placement(s).unwrap();
    }
    engine.set_placements(placements);
    let user = UserId::new("u17").unwrap();
    let filters = Filters::default();
    c.bench_function("personal top-10, 10k items x 64 factors", |b| {
        b.iter(|| black_box(engine.recommend(Some(&user), &[], 10, &filters).unwrap()));
    });
    c.bench_function(
        "personal top-32 (a placement's first pool for k = 10)",
        |b| {
            b.iter(|| black_box(engine.recommend(Some(&user), &[], 32, &filters).unwrap()));
        },
    );
    let req = PlaceRequest {
        user: Some(&user),
        now_ms: 1_800_000_000_000,
        ..PlaceRequest::default()
    };
    c.bench_function(
        "placement top-10: filter, 2 boosts (one on the latest category), diversity",
        |b| b.iter(|| black_box(engine.place("shelf", black_box(&req)).unwrap())),
    );
    c.bench_function("the same placement with a promotion at 2 positions", |b| {
        b.iter(|| black_box(engine.place("promoted", black_box(&req)).unwrap()));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
