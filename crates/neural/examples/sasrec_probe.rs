//! Probe: SASRec on MovieLens small, leave-last-out, printing nDCG@10 against popularity and
//! what it ranks for a few users (a development aid: `cargo run --release -p marquee-neural
//! --example sasrec_probe -- <ratings.csv> [epochs] [lr]`).

use marquee_models::metrics::evaluate;
use marquee_models::split::leave_last_out;
use marquee_models::{Interactions, Popularity, SasrecParams, Scorer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("ratings.csv");
    let epochs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
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
    let split = leave_last_out(&data);
    let pop = Popularity::fit(&split.train);
    println!(
        "popularity {:?}",
        evaluate(&pop, &split.train, &split.test, 10).ndcg
    );
    let negatives: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(256);
    let batch_size: usize = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(128);
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
