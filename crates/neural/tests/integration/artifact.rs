//! BPR and the two-tower model save like every other model: vectors and tower weights in the
//! artifact, loaded and scored without burn.

use marquee_models::search::Candidate;
use marquee_models::{Artifact, BprParams, Interactions, Model, Scorer, TwoTowerParams};

/// 50 users with seven items each out of 36, some users sharing more than others.
fn data() -> Interactions {
    let mut rows = Vec::new();
    for u in 0..50usize {
        for step in 0..7usize {
            let item = (u * 5 + step * (u % 4 + 2)) % 36;
            rows.push((
                format!("u{u}"),
                format!("i{item}"),
                1.0,
                (u * 100 + step) as i64,
            ));
        }
    }
    Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
    )
}

/// BPR and the two-tower model (trained with burn) save their exported vectors and tower
/// weights, and load to the same model and scores, without burn.
#[test]
fn neural_models_round_trip_with_their_tower_weights() {
    let root = tempfile::tempdir().unwrap();
    let x = data();
    let features: Vec<_> = (0..x.n_items())
        .map(|i| vec![((i % 7) as u32, 1.0), (7 + (i % 3) as u32, 0.5)])
        .collect();
    let tower = TwoTowerParams {
        dim: 4,
        hidden: 8,
        epochs: 2,
        batch_size: 32,
        negatives: 8,
        buckets: 16,
        ..TwoTowerParams::default()
    };
    let bpr = BprParams {
        factors: 4,
        epochs: 2,
        ..BprParams::default()
    };
    for candidate in [Candidate::Bpr(bpr), Candidate::TwoTower(tower)] {
        let (model, curve) =
            marquee_neural::fit(&candidate, &x, Some(&features), &mut |_, _| true).unwrap();
        assert_eq!(curve.len(), 2);
        let dir = root.path().join(candidate.kind());
        let mut saved = Artifact::new(
            "t",
            "v1",
            model,
            x.clone(),
            "unit",
            serde_json::Value::Null,
            serde_json::Value::Null,
        );
        saved.save(&dir).unwrap();
        let loaded = Artifact::load(&dir).unwrap();
        assert_eq!(loaded, saved, "{}", candidate.kind());
        let n = x.n_items();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        for u in 0..x.n_users() {
            saved.model.score(u, x.row(u), &mut a);
            loaded.model.score(u, x.row(u), &mut b);
            assert_eq!(a, b);
        }
        if let Model::TwoTower(t) = &loaded.model {
            // The tower recomputes a training user's stored vector from their history.
            let again = t.user_vector_from(x.row(3).items.iter().map(|&i| i as usize));
            assert_eq!(again.as_slice(), loaded.model.user_vector(3).unwrap());
        }
    }
    // A two-tower artifact whose tower weights do not fit its parameters is refused.
    let manifest = root.path().join("two_tower/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"hidden\": 8", "\"hidden\": 9")).unwrap();
    let err = Artifact::load(&root.path().join("two_tower"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tower.w1"), "{err}");
}
