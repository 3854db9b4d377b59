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

/// SASRec saves its weights (not its sequences: they are rebuilt from the history's times),
/// loads to the same model and scores without burn; weights that do not fit its parameters,
/// or that are not finite, are refused.
#[test]
fn sasrec_round_trips_and_damaged_weights_are_refused() {
    use marquee_models::SasrecParams;
    let root = tempfile::tempdir().unwrap();
    let x = data();
    let params = SasrecParams {
        dim: 8,
        blocks: 2,
        heads: 2,
        max_len: 5,
        epochs: 2,
        negatives: 8,
        ..SasrecParams::default()
    };
    let (model, curve) =
        marquee_neural::fit(&Candidate::Sasrec(params), &x, None, &mut |_, _| true).unwrap();
    assert_eq!(curve.len(), 2);
    let dir = root.path().join("sasrec");
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
    assert_eq!(loaded, saved);
    let n = x.n_items();
    let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
    for u in 0..x.n_users() {
        saved.model.score(u, x.row(u), &mut a);
        loaded.model.score(u, x.row(u), &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()));
    }
    // A history item the training sequence does not hold (folded in) changes the answer.
    let Model::Sasrec(m) = &loaded.model else {
        panic!("not sasrec")
    };
    let mut row_items: Vec<u32> = x.row(0).items.to_vec();
    let fresh = (0..n as u32).find(|i| !row_items.contains(i)).unwrap();
    row_items.push(fresh);
    row_items.sort_unstable();
    let values = vec![1.0; row_items.len()];
    let row = marquee_models::Row {
        items: &row_items,
        values: &values,
    };
    m.score(0, row, &mut b);
    m.score(0, x.row(0), &mut a);
    assert_ne!(a, b, "a fresh item is read as the newest");

    // Weights that do not fit the parameters are refused, naming the tensor.
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"max_len\": 5", "\"max_len\": 6")).unwrap();
    let err = Artifact::load(&dir).unwrap_err().to_string();
    assert!(err.contains("pos_emb"), "{err}");
    // A non-finite weight (saved with valid checksums) is refused too.
    let mut bad = saved.clone();
    if let Model::Sasrec(m) = &mut bad.model {
        m.blocks[1].w2[3] = f32::NAN;
    }
    let bad_dir = root.path().join("nan");
    bad.save(&bad_dir).unwrap();
    let err = Artifact::load(&bad_dir).unwrap_err().to_string();
    assert!(err.contains("block1.w2") && err.contains("finite"), "{err}");
}
