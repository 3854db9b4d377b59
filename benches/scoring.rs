//! In-process latency of one recommendation request: top 10 for one known user over 10,000
//! items × 64 factors (ALS), through the engine with its default filters (seen, hidden and
//! out-of-stock items left out), its parts (the f32 scores alone, the int8 first pass alone
//! and with its candidate selection, the top 10 of a score vector, in random order and
//! rising, and of 400 scores as a demo-store answer), and a fold-in request (ALS with new
//! events). Also the EASE scores of a 40-item history over 1,000 items, from the sparse
//! neighbour lists and from the dense rows serving uses; SASRec's forward pass, scores and
//! engine requests over 10,000 items.
//!
//! ```sh
//! cargo bench -p marquee-benches --bench scoring
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use marquee_domain::rng::SeededRng;
use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, UserId};
use marquee_engine::Filters;
use marquee_models::{Ease, EaseParams, Interactions, ItemItem, Row};
use std::hint::black_box;

#[path = "setup.rs"]
mod setup;
use setup::{FACTORS, ITEMS, als_engine, exact_scorer, history};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, als) = als_engine(dir.path());
    let filters = Filters::default();
    // The parts of a request: the scores of every item, then the top 10 of them.
    let mut scores = vec![0.0_f32; ITEMS];
    c.bench_function("als scores only, 10k items x 64 factors", |b| {
        b.iter(|| {
            als.scores_for(black_box(als.user_vector(17)), &mut scores);
            black_box(&scores);
        });
    });
    let quantized = marquee_models::QuantizedFactors::new(&als.item_factors, ITEMS, FACTORS);
    let mut approx = vec![0.0_f32; ITEMS];
    c.bench_function("als int8 first-pass scores, 10k items x 64 factors", |b| {
        b.iter(|| {
            quantized.scores(black_box(als.user_vector(17)), &mut approx);
            black_box(&approx);
        });
    });
    let (mut scratch, mut candidates) = (marquee_models::QuantScratch::default(), Vec::new());
    c.bench_function(
        "als int8 pass and exact rescoring for a top 10, 10k items x 64 factors",
        |b| {
            b.iter(|| {
                let x = black_box(als.user_vector(17));
                let mut exact = exact_scorer(&als.item_factors, x);
                quantized.candidates(x, 10, &[], &mut scratch, &mut exact, &mut candidates);
                black_box(&candidates);
            });
        },
    );
    c.bench_function("top-10 of 10k scores", |b| {
        b.iter(|| black_box(marquee_models::top_k(black_box(&scores), 10, &[])));
    });
    // The same scores rising along the index: every one a new best for a plain running top k.
    let mut rising = scores.clone();
    rising.sort_by(f32::total_cmp);
    c.bench_function("top-10 of 10k rising scores", |b| {
        b.iter(|| black_box(marquee_models::top_k(black_box(&rising), 10, &[])));
    });
    // The size of a demo-store answer: 400 scores, 45 of them (the user's items) left out
    // by −∞ as the engine does; 25 different answers in turn, so that the branch predictor
    // cannot learn one.
    let small: Vec<Vec<f32>> = scores
        .chunks_exact(400)
        .enumerate()
        .map(|(j, chunk)| {
            let mut v = chunk.to_vec();
            for s in v.iter_mut().skip(j % 9).step_by(9) {
                *s = f32::NEG_INFINITY;
            }
            v
        })
        .collect();
    let mut turn = 0;
    c.bench_function("top-10 of 400 scores, 45 left out", |b| {
        b.iter(|| {
            turn = (turn + 1) % small.len();
            black_box(marquee_models::top_k(black_box(&small[turn]), 10, &[]))
        });
    });
    let user = UserId::new("u17").unwrap();
    c.bench_function("als top-10, 10k items x 64 factors", |b| {
        b.iter(|| black_box(engine.recommend(Some(&user), &[], 10, &filters).unwrap()));
    });
    let events: Vec<Event> = (0..5)
        .map(|k| Event {
            id: EventId::new(format!("e{k}")).unwrap(),
            actor: Actor::User(UserId::new("u17").unwrap()),
            item: Some(ItemId::new(format!("i{}", k * 7)).unwrap()),
            kind: EventKind::AddToCart,
            value: None,
            timestamp: chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(),
            context: None,
        })
        .collect();
    c.bench_function("als top-10 with fold-in of 5 new events", |b| {
        b.iter(|| {
            black_box(
                engine
                    .recommend(Some(&user), &events, 10, &filters)
                    .unwrap(),
            )
        });
    });
}

fn ease(c: &mut Criterion) {
    let mut rng = SeededRng::new(11);
    let n = 1_000;
    let items: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    let users: Vec<String> = (0..3_000).map(|u| format!("u{u}")).collect();
    let mut rows = Vec::new();
    for u in &users {
        for _ in 0..30 {
            rows.push((u.as_str(), items[rng.index(n)].as_str(), 1.0, 0));
        }
    }
    let x = Interactions::from_timed_triplets(rows);
    let model = Ease::fit(&x, EaseParams::default()).unwrap();
    let dense = model.graph.to_dense(2_048).unwrap();
    let history_items: Vec<u32> = (0..40).map(|k| k * 23).collect();
    let values = vec![1.0_f32; history_items.len()];
    let history = Row {
        items: &history_items,
        values: &values,
    };
    let mut out = vec![0.0_f32; x.n_items()];
    c.bench_function(
        "ease scores, 40 history items over 1k items, sparse lists",
        |b| {
            b.iter(|| {
                model.graph.score(black_box(history), false, &mut out);
                black_box(&out);
            });
        },
    );
    c.bench_function(
        "ease scores, 40 history items over 1k items, dense rows",
        |b| {
            b.iter(|| {
                ItemItem::score_dense(black_box(&dense), black_box(history), false, &mut out);
                black_box(&out);
            });
        },
    );
}

/// SASRec (64 dimensions, 2 blocks, 50 items read) over 10,000 items: the forward pass to the
/// last position's vector, the scores of every item, and whole engine requests (a known user
/// with 40 training items; a newcomer with 50 views since training).
fn sasrec(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, model) = sasrec_engine(dir.path());
    let filters = Filters::default();
    let recent: Vec<u32> = (0..50).map(|k| k * 197).collect();
    let window = model.window(&recent);
    c.bench_function("sasrec forward pass, 50 items, 64 dims, 2 blocks", |b| {
        b.iter(|| black_box(model.last_hidden(black_box(&window))));
    });
    let mut out = vec![0.0_f32; ITEMS];
    c.bench_function("sasrec scores, 50 items over 10k items", |b| {
        b.iter(|| {
            model.score_sequence(black_box(&recent), &mut out);
            black_box(&out);
        });
    });
    let user = UserId::new("u17").unwrap();
    c.bench_function("sasrec top-10, known user, 10k items", |b| {
        b.iter(|| black_box(engine.recommend(Some(&user), &[], 10, &filters).unwrap()));
    });
    let views: Vec<Event> = recent
        .iter()
        .enumerate()
        .map(|(n, i)| Event {
            id: EventId::new(format!("v{n}")).unwrap(),
            actor: Actor::User(UserId::new("newcomer").unwrap()),
            item: Some(ItemId::new(format!("i{i}")).unwrap()),
            kind: EventKind::View,
            value: None,
            timestamp: chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + n as i64)
                .unwrap(),
            context: None,
        })
        .collect();
    let newcomer = UserId::new("newcomer").unwrap();
    c.bench_function("sasrec top-10, newcomer with 50 views, 10k items", |b| {
        b.iter(|| {
            black_box(
                engine
                    .recommend(Some(&newcomer), &views, 10, &filters)
                    .unwrap(),
            )
        });
    });
}

/// A SASRec model of random weights (64 dimensions, 2 blocks, 1 head, 50 items read) over the
/// same 10,000 items and users, saved as an artifact and opened by the engine.
fn sasrec_engine(dir: &std::path::Path) -> (marquee_engine::Engine, marquee_models::Sasrec) {
    use marquee_domain::EventWeights;
    use marquee_engine::Engine;
    use marquee_models::{Artifact, Model, Sasrec, SasrecBlock, SasrecParams};
    let history = history();
    let params = SasrecParams {
        dim: FACTORS,
        blocks: 2,
        heads: 1,
        max_len: 50,
        ..SasrecParams::default()
    };
    let d = params.dim;
    let mut rng = SeededRng::new(7);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32 * 0.1).collect() };
    let blocks = (0..params.blocks)
        .map(|_| SasrecBlock {
            ln1_gamma: vec![1.0; d],
            ln1_beta: vec![0.0; d],
            wq: random(d * d),
            bq: random(d),
            wk: random(d * d),
            bk: random(d),
            wv: random(d * d),
            bv: random(d),
            wo: random(d * d),
            bo: random(d),
            ln2_gamma: vec![1.0; d],
            ln2_beta: vec![0.0; d],
            w1: random(d * d),
            b1: random(d),
            w2: random(d * d),
            b2: random(d),
        })
        .collect();
    let (seq_indptr, seq_items) = marquee_models::sasrec::sequences(&history);
    let sasrec = Sasrec {
        params,
        n_users: history.n_users(),
        n_items: history.n_items(),
        item_emb: random((history.n_items() + 1) * d),
        pos_emb: random(params.max_len * d),
        blocks,
        ln_gamma: vec![1.0; d],
        ln_beta: vec![0.0; d],
        seq_indptr,
        seq_items,
    };
    let mut artifact = Artifact::new(
        "bench",
        "v1",
        Model::Sasrec(sasrec.clone()),
        history,
        "bench",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    );
    let path = dir.join("sasrec");
    artifact.save(&path).unwrap();
    (Engine::open(&path, Vec::new()).unwrap(), sasrec)
}

criterion_group!(benches, bench, ease, sasrec);
criterion_main!(benches);
