//! Probe: SASRec on MovieLens small, leave-last-out, printing nDCG@10 against popularity and
//! what it ranks for a few users (a development aid):
//!
//! ```sh
//! cargo run --release -p marquee-neural --example sasrec_probe -- \
//!     <ratings.csv> [epochs] [lr] [dropout] [negatives] [batch]
//! SESSIONS=1 cargo run --release -p marquee-neural --example sasrec_probe -- <ratings.csv> [epochs]
//! ```
//!
//! With `SESSIONS=1`: anonymous sessions of users held out of training, SASRec against the
//! item-kNN session answer.

use marquee_models::metrics::evaluate;
use marquee_models::split::leave_last_out;
use marquee_models::{Interactions, Popularity, SasrecParams, Scorer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("ratings.csv");
    let epochs: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(SasrecParams::default().epochs);
    let lr: f32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.001);
    let dropout: f32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.2);
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<(String, String, f32, i64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                1.0,
                f[3].parse::<i64>().unwrap() * 1000,
            )
        })
        .collect();
    let data = Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
    );
    if std::env::var("SESSIONS").is_ok() {
        return sessions(&rows, &args);
    }
    let split = leave_last_out(&data);
    let pop = Popularity::fit(&split.train);
    println!(
        "popularity {:?}",
        evaluate(&pop, &split.train, &split.test, 10).ndcg
    );
    let negatives: usize = args
        .get(5)
        .and_then(|s| s.parse().ok())
        .unwrap_or(SasrecParams::default().negatives);
    let batch_size: usize = args
        .get(6)
        .and_then(|s| s.parse().ok())
        .unwrap_or(SasrecParams::default().batch_size);
    let params = SasrecParams {
        epochs,
        learning_rate: lr,
        dropout,
        negatives,
        batch_size,
        ..SasrecParams::default()
    };
    let (m, curve) = marquee_neural::fit_sasrec(&split.train, params, |e| {
        eprintln!("epoch {} loss {:.3} ({:.1} s)", e.epoch, e.loss, e.seconds);
        true
    })
    .unwrap();
    let _ = curve;
    println!(
        "sasrec {:?}",
        evaluate(&m, &split.train, &split.test, 10).ndcg
    );
    // On the training data: the last training item predicted from the ones before it.
    let mut hits = 0;
    let mut out = vec![0f32; data.n_items()];
    for u in 0..split.train.n_users() {
        let seq = m.sequence_of(u);
        if seq.len() < 2 {
            continue;
        }
        m.score_sequence(&seq[..seq.len() - 1], &mut out);
        let top = marquee_models::top_k(&out, 10, &seq[..seq.len() - 1]);
        if top.iter().any(|(i, _)| *i == seq[seq.len() - 1]) {
            hits += 1;
        }
    }
    println!("train last-item hit@10 {hits} of {}", split.train.n_users());
    for u in 0..3 {
        m.score(u, split.train.row(u), &mut out);
        let top = marquee_models::top_k(&out, 5, split.train.row(u).items);
        println!(
            "user {u}: {:?}",
            top.iter()
                .map(|(i, s)| (data.items.id(*i as usize).to_owned(), *s))
                .collect::<Vec<_>>()
        );
    }
}

/// Anonymous sessions: every tenth user is held out of training entirely; their sequence but
/// the newest item is the session (all of it, or its newest 5), the newest item the target.
/// SASRec's answer against the item-kNN answer the engine gives sessions otherwise (50
/// neighbours, unweighted, popularity breaking ties) and popularity. nDCG@10 and recall@10.
fn sessions(rows: &[(String, String, f32, i64)], args: &[String]) {
    use marquee_models::{ItemKnn, ItemKnnParams, Row};
    let all = Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
    );
    let held = |u: &str| all.users.get(u).is_some_and(|x| x % 10 == 0);
    let train = Interactions::from_timed_coo(
        all.users.clone(),
        all.items.clone(),
        rows.iter()
            .filter(|(u, ..)| !held(u))
            .map(|(u, i, w, t)| (all.users.get(u).unwrap(), all.items.get(i).unwrap(), *w, *t))
            .collect(),
    );
    let epochs: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(SasrecParams::default().epochs);
    let params = SasrecParams {
        epochs,
        ..SasrecParams::default()
    };
    let (m, _) = marquee_neural::fit_sasrec(&train, params, |e| {
        eprintln!("epoch {} loss {:.3} ({:.1} s)", e.epoch, e.loss, e.seconds);
        true
    })
    .unwrap();
    let knn = ItemKnn::fit(
        &train,
        ItemKnnParams {
            neighbors: 50,
            weighted: false,
        },
    )
    .unwrap();
    let popular: Vec<f32> = train.item_counts().into_iter().map(|c| c as f32).collect();
    let top = popular.iter().copied().fold(1.0, f32::max);
    let (indptr, items) = marquee_models::sasrec::sequences(&all);
    for keep in [usize::MAX, 50, 30, 20, 10, 5, 3] {
        let mut sums = [[0f64; 2]; 3];
        let mut count = 0;
        let mut out = vec![0f32; all.n_items()];
        for u in (0..all.n_users()).filter(|u| u % 10 == 0) {
            let seq = &items[indptr[u]..indptr[u + 1]];
            if seq.len() < 2 {
                continue;
            }
            let target = seq[seq.len() - 1];
            let session = &seq[(seq.len() - 1).saturating_sub(keep)..seq.len() - 1];
            let mut seen = session.to_vec();
            seen.sort_unstable();
            seen.dedup();
            count += 1;
            for (n, model) in ["sasrec", "item_knn", "popularity"].iter().enumerate() {
                match *model {
                    "sasrec" => m.score_sequence(session, &mut out),
                    "item_knn" => {
                        let ones = vec![1.0; seen.len()];
                        knn.score(
                            0,
                            Row {
                                items: &seen,
                                values: &ones,
                            },
                            &mut out,
                        );
                        for (s, p) in out.iter_mut().zip(&popular) {
                            *s += 1e-3 * p / top;
                        }
                    }
                    _ => out.copy_from_slice(&popular),
                }
                let ranked = marquee_models::top_k(&out, 10, &seen);
                if let Some(r) = ranked.iter().position(|&(i, _)| i == target) {
                    sums[n][0] += 1.0 / ((r + 2) as f64).log2();
                    sums[n][1] += 1.0;
                }
            }
        }
        let label = if keep == usize::MAX {
            "whole history".to_owned()
        } else {
            format!("newest {keep}")
        };
        for (n, model) in ["sasrec", "item_knn", "popularity"].iter().enumerate() {
            println!(
                "sessions ({label}, {count} held-out users): {model} nDCG@10 {:.4} recall@10 {:.4}",
                sums[n][0] / f64::from(count),
                sums[n][1] / f64::from(count)
            );
        }
    }
}
