//! Models fitted on hand-made and generated data: EASE against a hand-solved answer, ALS
//! against the popularity baseline on data with planted tastes.

use marquee_datasets::generator::{GeneratorConfig, generate_bundle};
use marquee_domain::EventKind;
use marquee_models::metrics::evaluate;
use marquee_models::split::per_user_random;
use marquee_models::{
    Als, AlsParams, Ease, EaseParams, Interactions, ItemKnn, ItemKnnParams, Popularity, Scorer,
};

#[test]
fn ease_matches_the_hand_solved_closed_form() {
    // X = [[1,1,0],[0,1,1]], λ = 1: G = XᵀX + I = [[2,1,0],[1,3,1],[0,1,2]],
    // P = G⁻¹ = 1/8 [[5,-2,1],[-2,4,-2],[1,-2,5]], B_ij = -P_ij / P_jj.
    let x = Interactions::from_triplets([
        ("u1", "a", 1.0),
        ("u1", "b", 1.0),
        ("u2", "b", 1.0),
        ("u2", "c", 1.0),
    ]);
    let params = EaseParams {
        lambda: 1.0,
        weighted: false,
        neighbors: 2,
    };
    let ease = Ease::fit(&x, params).unwrap();
    let mut dense = [0f32; 9];
    for i in 0..3 {
        for (j, w) in ease.graph.neighbors_of(i) {
            dense[i * 3 + j] = w;
        }
    }
    let expected = [0.0, 0.5, -0.2, 0.4, 0.0, 0.4, -0.2, 0.5, 0.0];
    for (got, want) in dense.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{dense:?}");
    }
    // Pruned to one entry per row on average: the entries of largest magnitude over the whole
    // of B are kept (B_ab = B_cb = 0.5), and nothing kept is smaller than anything dropped.
    let pruned = Ease::fit(
        &x,
        EaseParams {
            neighbors: 1,
            ..params
        },
    )
    .unwrap();
    let mut kept = [false; 9];
    for i in 0..3 {
        for (j, w) in pruned.graph.neighbors_of(i) {
            assert!((w - expected[i * 3 + j]).abs() < 1e-6);
            kept[i * 3 + j] = true;
        }
    }
    assert!(kept[1] && kept[7], "{kept:?}");
    assert!(kept.iter().filter(|&&k| k).count() < 6);
    let smallest_kept = (0..9)
        .filter(|&c| kept[c])
        .map(|c| expected[c].abs())
        .fold(f32::INFINITY, f32::min);
    let largest_dropped = (0..9)
        .filter(|&c| !kept[c] && c % 4 != 0)
        .map(|c| expected[c].abs())
        .fold(0.0, f32::max);
    assert!(smallest_kept >= largest_dropped);
    // u1 (a, b) scores c with B_ac + B_bc = -0.2 + 0.4.
    let mut out = vec![0.0; 3];
    ease.score(0, x.row(0), &mut out);
    assert!((out[2] - 0.2).abs() < 1e-6, "{out:?}");
}

#[test]
fn item_knn_similarities_are_hand_computed_cosines() {
    // Columns a = (1,1,0), b = (1,0,1), c = (1,1,1) over users u1..u3:
    // cos(a,b) = 1/2, cos(a,c) = 2/√6, cos(b,c) = 2/√6.
    let x = Interactions::from_triplets([
        ("u1", "a", 1.0),
        ("u1", "b", 1.0),
        ("u1", "c", 1.0),
        ("u2", "a", 1.0),
        ("u2", "c", 1.0),
        ("u3", "b", 1.0),
        ("u3", "c", 1.0),
    ]);
    let knn = ItemKnn::fit(
        &x,
        ItemKnnParams {
            neighbors: 2,
            weighted: false,
        },
    )
    .unwrap();
    let a: Vec<(usize, f32)> = knn.neighbors_of(0).collect();
    let c = 2.0 / 6f32.sqrt();
    assert_eq!(a.iter().map(|n| n.0).collect::<Vec<_>>(), [2, 1]);
    assert!(
        (a[0].1 - c).abs() < 1e-6 && (a[1].1 - 0.5).abs() < 1e-6,
        "{a:?}"
    );
    // u2 (a, c) scores b with cos(a,b) + cos(c,b).
    let mut out = vec![0.0; 3];
    knn.score(1, x.row(1), &mut out);
    assert!((out[1] - (0.5 + c)).abs() < 1e-6, "{out:?}");
    let one = ItemKnn::fit(
        &x,
        ItemKnnParams {
            neighbors: 1,
            weighted: false,
        },
    )
    .unwrap();
    assert_eq!(one.neighbors_of(0).count(), 1);
}

#[test]
fn ease_refuses_bad_parameters() {
    let x = Interactions::from_triplets([("u1", "a", 1.0)]);
    assert!(
        Ease::fit(
            &x,
            EaseParams {
                lambda: 0.0,
                ..EaseParams::default()
            }
        )
        .is_err()
    );
    assert!(
        Als::fit(
            &x,
            AlsParams {
                factors: 0,
                ..AlsParams::default()
            },
            |_, _| true
        )
        .is_err()
    );
}

fn planted() -> Interactions {
    let bundle = generate_bundle(&GeneratorConfig {
        users: 600,
        items: 500,
        events: 60_000,
        seed: 11,
        ..GeneratorConfig::default()
    })
    .unwrap();
    Interactions::from_triplets(
        bundle
            .events
            .iter()
            .filter(|e| e.kind == EventKind::View)
            .map(|e| {
                (
                    e.user().unwrap().as_str(),
                    e.item.as_ref().unwrap().as_str(),
                    1.0,
                )
            }),
    )
}

#[test]
fn als_and_ease_beat_popularity_on_planted_tastes() {
    let data = planted();
    let split = per_user_random(&data, 0.2, 42);
    let pop = evaluate(
        &Popularity::fit(&split.train),
        &split.train,
        &split.test,
        10,
    );
    let params = AlsParams {
        factors: 32,
        iterations: 10,
        regularization: 0.1,
        alpha: 2.0,
        ..AlsParams::default()
    };
    let als = Als::fit(&split.train, params, |_, _| true).unwrap();
    let als_m = evaluate(&als, &split.train, &split.test, 10);
    let ease = evaluate(
        &Ease::fit(&split.train, EaseParams::default()).unwrap(),
        &split.train,
        &split.test,
        10,
    );
    assert!(
        als_m.ndcg > pop.ndcg * 1.2,
        "ALS {:.4} vs popularity {:.4}",
        als_m.ndcg,
        pop.ndcg
    );
    assert!(
        ease.ndcg > pop.ndcg * 1.2,
        "EASE {:.4} vs popularity {:.4}",
        ease.ndcg,
        pop.ndcg
    );
    assert!(als_m.coverage > pop.coverage);
    // Fitting is deterministic for a seed.
    let again = Als::fit(&split.train, params, |_, _| true).unwrap();
    assert_eq!(again.item_factors, als.item_factors);
}

#[test]
fn grid_search_chooses_on_validation_and_prefers_a_real_model() {
    use marquee_models::search::{Candidate, grid_search};
    let data = planted();
    let split = per_user_random(&data, 0.2, 42);
    let candidates = [
        Candidate::Popularity,
        Candidate::ItemKnn(ItemKnnParams::default()),
        Candidate::Als(AlsParams {
            factors: 16,
            iterations: 5,
            regularization: 0.1,
            ..AlsParams::default()
        }),
    ];
    let trials = grid_search(&split.train, &candidates, 0.2, 7, 10).unwrap();
    assert_eq!(trials.len(), 3);
    assert!(
        trials
            .windows(2)
            .all(|w| w[0].validation.ndcg >= w[1].validation.ndcg)
    );
    assert_ne!(trials[0].candidate, Candidate::Popularity);
    // The validation items are cut from training: every user with at least two training
    // interactions, and only those, is evaluated.
    let eligible = (0..split.train.n_users())
        .filter(|&u| split.train.row(u).len() >= 2)
        .count();
    assert_eq!(trials[0].validation.users, eligible);
}

#[test]
fn als_can_be_stopped_after_any_iteration() {
    let data = planted();
    let mut seen = Vec::new();
    let als = Als::fit(
        &data,
        AlsParams {
            factors: 8,
            iterations: 10,
            ..AlsParams::default()
        },
        |done, total| {
            seen.push((done, total));
            done < 3
        },
    )
    .unwrap();
    assert_eq!(seen, [(1, 10), (2, 10), (3, 10)]);
    assert!(als.user_factors.iter().all(|v| v.is_finite()));
}
