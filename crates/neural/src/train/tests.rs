//! BPR and the two-tower model: the loss falls and a planted structure is learnt, the
//! exported towers equal burn's forward pass, cold-item vectors are functions of their
//! features alone, and bad parameters are refused by name.

use super::*;
use marquee_models::{SasrecParams, Scorer};

/// Two groups of users and items: group-0 users only have group-0 items, and so on.
fn planted(users: usize, items: usize) -> Interactions {
    let mut rows = Vec::new();
    let ids: Vec<(String, String)> = (0..users)
        .flat_map(|u| {
            (0..items)
                .filter(move |i| i % 2 == u % 2 && (i + u) % 3 != 0)
                .map(move |i| (format!("u{u}"), format!("i{i}")))
        })
        .collect();
    for (u, i) in &ids {
        rows.push((u.as_str(), i.as_str(), 1.0));
    }
    Interactions::from_triplets(rows)
}

fn in_group_rate(scorer: &dyn Scorer, data: &Interactions) -> f64 {
    let mut hits = 0usize;
    let mut out = vec![0f32; data.n_items()];
    for u in 0..data.n_users() {
        scorer.score(u, data.row(u), &mut out);
        let best = marquee_models::top_k(&out, 3, data.row(u).items);
        let group = data.users.id(u)[1..].parse::<usize>().unwrap_or(0) % 2;
        hits += best
            .iter()
            .filter(|(i, _)| {
                data.items.id(*i as usize)[1..]
                    .parse::<usize>()
                    .unwrap_or(1)
                    % 2
                    == group
            })
            .count();
    }
    hits as f64 / (3 * data.n_users()) as f64
}

#[test]
fn bpr_loss_goes_down_and_learns_a_planted_structure() {
    let data = planted(40, 30);
    let params = BprParams {
        factors: 8,
        epochs: 40,
        learning_rate: 0.05,
        batch_size: 64,
        ..BprParams::default()
    };
    let (model, curve) = fit_bpr(&data, params, |_| true).expect("fit");
    let (first, last) = (curve[0].loss, curve[curve.len() - 1].loss);
    assert!(last < 0.5 * first, "loss {first} → {last}");
    assert!(in_group_rate(&model, &data) > 0.9);
    // The export is the dot product with the bias column.
    let w = model.width();
    assert!(model.user_factors.chunks_exact(w).all(|u| u[w - 1] == 1.0));
    let again = fit_bpr(&data, params, |_| true).expect("fit").0;
    assert_eq!(again, model, "a seed gives the same model");
}

fn tower_params() -> TwoTowerParams {
    TwoTowerParams {
        dim: 8,
        hidden: 16,
        epochs: 30,
        learning_rate: 0.02,
        batch_size: 64,
        negatives: 16,
        history: 8,
        buckets: 64,
        temperature: 0.5,
        ..TwoTowerParams::default()
    }
}

fn planted_features(data: &Interactions, buckets: u32) -> Vec<FeatureList> {
    (0..data.n_items())
        .map(|i| {
            let n: u32 = data.items.id(i)[1..].parse().unwrap_or(0);
            vec![(n % 2, 1.0), (2 + n % (buckets - 2), 0.5)]
        })
        .collect()
}

#[test]
fn two_tower_loss_goes_down_and_learns_a_planted_structure() {
    let data = planted(40, 30);
    let p = tower_params();
    let features = planted_features(&data, p.buckets);
    let (model, curve) = fit_two_tower(&data, &features, p, |_| true).expect("fit");
    let (first, last) = (curve[0].loss, curve[curve.len() - 1].loss);
    assert!(last < 0.8 * first, "loss {first} → {last}");
    assert!(in_group_rate(&model, &data) > 0.9);
}

#[test]
fn the_exported_towers_equal_the_burn_forward_pass() {
    let data = planted(12, 10);
    let p = TwoTowerParams {
        epochs: 2,
        ..tower_params()
    };
    let features = planted_features(&data, p.buckets);
    let table = FeatureTable::new(&features);
    let (model, _) = fit_two_tower(&data, &features, p, |_| true).expect("fit");
    // Rebuild the network from the export and run burn's forward pass on it.
    let dev = device();
    let (d, h, n) = (p.dim, p.hidden, data.n_items());
    let ids: Vec<f32> = (0..n)
        .flat_map(|i| {
            let content = model.item_vector_from_features(&features[i]);
            let full = model.item_factors[i * d..(i + 1) * d].to_vec();
            full.into_iter()
                .zip(content)
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>()
        })
        .collect();
    let net = TowerNet {
        ids: Param::from_tensor(matrix(ids, n, d, &dev)),
        context: Param::from_tensor(matrix(model.context.clone(), n, d, &dev)),
        w1: Param::from_tensor(matrix(model.w1.clone(), d, h, &dev)),
        b1: Param::from_tensor(vector(model.b1.clone(), &dev)),
        w2: Param::from_tensor(matrix(model.w2.clone(), h, d, &dev)),
        b2: Param::from_tensor(vector(model.b2.clone(), &dev)),
        features: Param::from_tensor(matrix(model.features.clone(), p.buckets as usize, d, &dev)),
    };
    let all: Vec<usize> = (0..n).collect();
    let items = values_of(net.item_tower(&all, &vec![1.0; n], &table, d, &dev)).expect("items");
    let cold = values_of(net.item_tower(&all, &vec![0.0; n], &table, d, &dev)).expect("cold");
    for i in 0..n {
        let from_features = model.item_vector_from_features(&features[i]);
        for k in 0..d {
            assert!((items[i * d + k] - model.item_factors[i * d + k]).abs() < 1e-4);
            assert!((cold[i * d + k] - from_features[k]).abs() < 1e-5);
        }
    }
    for u in 0..data.n_users() {
        let row: Vec<usize> = data.row(u).items.iter().map(|&i| i as usize).collect();
        let mut context = row.clone();
        context.resize(n, 0);
        let mut weights = vec![1.0 / row.len() as f32; row.len()];
        weights.resize(n, 0.0);
        let batch = TowerBatch {
            rows: 1,
            context,
            context_weights: weights,
            slots: n,
            candidates: Vec::new(),
            keep_id: Vec::new(),
        };
        let burn_user = values_of(net.user_tower(&batch, d, &dev)).expect("user");
        let exported = &model.user_factors[u * d..(u + 1) * d];
        for (b, e) in burn_user.iter().zip(exported) {
            assert!((b - e).abs() < 1e-4, "{b} vs {e}");
        }
    }
}

#[test]
fn cold_item_vectors_are_deterministic_functions_of_their_features() {
    let data = planted(12, 10);
    let p = TwoTowerParams {
        epochs: 2,
        ..tower_params()
    };
    let features = planted_features(&data, p.buckets);
    let (model, _) = fit_two_tower(&data, &features, p, |_| true).expect("fit");
    let (again, _) = fit_two_tower(&data, &features, p, |_| true).expect("fit");
    let new_item = vec![(1, 1.0), (5, 0.5)];
    let v = model.item_vector_from_features(&new_item);
    assert_eq!(v, model.item_vector_from_features(&new_item));
    assert_eq!(v, again.item_vector_from_features(&new_item));
    assert!(v.iter().any(|&x| x != 0.0));
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let data = planted(8, 6);
    let err = fit_bpr(
        &data,
        BprParams {
            learning_rate: -1.0,
            ..BprParams::default()
        },
        |_| true,
    )
    .expect_err("negative learning rate");
    assert!(err.to_string().contains("bpr.learning_rate"), "{err}");
    let err = fit_two_tower(&data, &[], tower_params(), |_| true).expect_err("no features");
    assert!(err.to_string().contains("features"), "{err}");
}

/// Users walk a chain of items: each has 8 consecutive items of 0..30, in order.
fn chain(users: usize) -> Interactions {
    let mut rows = Vec::new();
    for u in 0..users {
        let start = (u * 7) % 22;
        for step in 0..8 {
            rows.push((
                format!("u{u}"),
                format!("i{}", start + step),
                1.0,
                (u * 1_000 + step * 10) as i64,
            ));
        }
    }
    Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
    )
}

fn small_sasrec() -> SasrecParams {
    SasrecParams {
        dim: 16,
        blocks: 1,
        heads: 1,
        max_len: 8,
        epochs: 200,
        learning_rate: 0.01,
        batch_size: 32,
        negatives: 10,
        dropout: 0.0,
        ..SasrecParams::default()
    }
}

/// The share of k = 2..28 whose next item k+1 is ranked first after k-2, k-1, k.
fn next_first(model: &marquee_models::Sasrec, data: &Interactions) -> f64 {
    let index = |name: String| data.items.get(&name).unwrap();
    let mut out = vec![0f32; data.n_items()];
    let mut right = 0;
    for k in 2..28 {
        let seq: Vec<u32> = (k - 2..=k).map(|i| index(format!("i{i}"))).collect();
        model.score_sequence(&seq, &mut out);
        if marquee_models::top_k(&out, 1, &[])[0].0 == index(format!("i{}", k + 1)) {
            right += 1;
        }
    }
    f64::from(right) / 26.0
}

#[test]
fn sasrec_with_a_full_softmax_learns_what_comes_next() {
    let data = chain(60);
    let params = SasrecParams {
        negatives: 0,
        epochs: 100,
        ..small_sasrec()
    };
    let (model, curve) = fit_sasrec(&data, params, |_| true).expect("fit");
    assert!(curve[curve.len() - 1].loss < 0.5 * curve[0].loss);
    assert!(
        next_first(&model, &data) >= 0.9,
        "{}",
        next_first(&model, &data)
    );
}

#[test]
fn sasrec_learns_what_comes_next_and_is_seeded() {
    let data = chain(60);
    let (model, curve) = fit_sasrec(&data, small_sasrec(), |_| true).expect("fit");
    let (first, last) = (curve[0].loss, curve[curve.len() - 1].loss);
    assert!(last < 0.5 * first, "loss {first} → {last}");
    // After ..., k-1, k the next item is k+1: ranked first for nearly every k.
    let index = |name: String| data.items.get(&name).unwrap();
    let mut out = vec![0f32; data.n_items()];
    let (mut right, mut asked) = (0, 0);
    for k in 2..28 {
        let seq: Vec<u32> = (k - 2..=k).map(|i| index(format!("i{i}"))).collect();
        model.score_sequence(&seq, &mut out);
        let best = marquee_models::top_k(&out, 1, &[]);
        asked += 1;
        if best[0].0 == index(format!("i{}", k + 1)) {
            right += 1;
        }
    }
    assert!(
        right * 10 >= asked * 9,
        "{right} of {asked} next items first"
    );
    // The same seed gives the same model; another seed another.
    let (again, _) = fit_sasrec(&data, small_sasrec(), |_| true).expect("fit");
    assert_eq!(again, model);
    let other = SasrecParams {
        seed: 7,
        ..small_sasrec()
    };
    assert_ne!(
        fit_sasrec(&data, other, |_| true).unwrap().0.item_emb,
        model.item_emb
    );
    // Bad parameters are refused by name.
    let bad = SasrecParams {
        heads: 3,
        ..small_sasrec()
    };
    let err = fit_sasrec(&data, bad, |_| true).unwrap_err().to_string();
    assert!(err.contains("sasrec.heads"), "{err}");
}
