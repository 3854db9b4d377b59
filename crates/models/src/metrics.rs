//! Ranking metrics, as DESIGN.md defines them: top-k with items seen in training excluded,
//! binary relevance (an item is relevant if it is in the user's test set), averaged over all
//! users with at least one test item.
//!
//! - precision@k = hits / k
//! - recall@k = hits / |relevant|
//! - nDCG@k = DCG / IDCG with gain 1 / log2(rank + 1), IDCG over min(k, |relevant|) hits
//! - MAP@k = (Σ over hit ranks r of precision@r) / min(k, |relevant|)
//! - coverage = distinct items recommended to anyone / items in the catalog

use crate::{Interactions, Scorer, top_k};
use rayon::prelude::*;

/// Averages over test users.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub k: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub coverage: f64,
    /// Users evaluated (those with at least one test item).
    pub users: usize,
}

/// Metrics of one ranked list against a sorted set of relevant items.
pub fn rank_metrics(ranked: &[u32], relevant: &[u32], k: usize) -> (f64, f64, f64, f64) {
    if relevant.is_empty() || k == 0 {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let mut hits = 0usize;
    let mut dcg = 0.0;
    let mut ap = 0.0;
    for (r, item) in ranked.iter().take(k).enumerate() {
        if relevant.binary_search(item).is_ok() {
            hits += 1;
            dcg += 1.0 / ((r + 2) as f64).log2();
            ap += hits as f64 / (r + 1) as f64;
        }
    }
    let ideal_hits = k.min(relevant.len());
    let idcg: f64 = (0..ideal_hits).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    (
        hits as f64 / k as f64,
        hits as f64 / relevant.len() as f64,
        dcg / idcg,
        ap / ideal_hits as f64,
    )
}

/// Evaluates a model: for every user with test items, scores all items, removes the user's
/// training items, takes the top `k` and compares with the test items.
pub fn evaluate(
    model: &dyn Scorer,
    train: &Interactions,
    test: &Interactions,
    k: usize,
) -> Metrics {
    evaluate_at(model, train, test, &[k])
        .pop()
        .unwrap_or_default()
}

/// [`evaluate`] at several cut-offs at once (one ranking of the largest `k` per user); the
/// result is in the order of `ks`.
pub fn evaluate_at(
    model: &dyn Scorer,
    train: &Interactions,
    test: &Interactions,
    ks: &[usize],
) -> Vec<Metrics> {
    let n_items = model.n_items();
    let k_max = ks.iter().copied().max().unwrap_or(0);
    let users: Vec<usize> = (0..test.n_users())
        .filter(|&u| !test.row(u).is_empty())
        .collect();
    // Users in blocks scored together (`Scorer::score_many`), each block's scores at most
    // about 16 MB.
    let block = (4_000_000 / n_items.max(1)).clamp(1, 32);
    let ranked: Vec<Vec<u32>> = users
        .par_chunks(block)
        .map_init(
            || vec![0f32; block * n_items],
            |scores, chunk| {
                let scores = &mut scores[..chunk.len() * n_items];
                model.score_many(chunk, train, scores);
                chunk
                    .iter()
                    .enumerate()
                    .map(|(j, &u)| {
                        let s = &scores[j * n_items..(j + 1) * n_items];
                        top_k(s, k_max, train.row(u).items)
                            .into_iter()
                            .map(|(i, _)| i)
                            .collect()
                    })
                    .collect::<Vec<Vec<u32>>>()
            },
        )
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    let count = users.len().max(1) as f64;
    ks.iter()
        .map(|&k| {
            let mut m = Metrics {
                k,
                users: users.len(),
                ..Metrics::default()
            };
            let mut seen = vec![false; n_items];
            for (&u, list) in users.iter().zip(&ranked) {
                let list = &list[..k.min(list.len())];
                let (p, r, n, a) = rank_metrics(list, test.row(u).items, k);
                m.precision += p;
                m.recall += r;
                m.ndcg += n;
                m.map += a;
                for &i in list {
                    seen[i as usize] = true;
                }
            }
            m.precision /= count;
            m.recall /= count;
            m.ndcg /= count;
            m.map /= count;
            m.coverage = seen.iter().filter(|&&s| s).count() as f64 / n_items.max(1) as f64;
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed_cases() {
        // Relevant {1, 4, 7}; ranked [1, 2, 4, 5] at k = 4: hits at ranks 1 and 3.
        let (p, r, n, m) = rank_metrics(&[1, 2, 4, 5], &[1, 4, 7], 4);
        close(p, 2.0 / 4.0);
        close(r, 2.0 / 3.0);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        close(n, dcg / idcg);
        close(m, (1.0 + 2.0 / 3.0) / 3.0);

        // A perfect list scores 1 on nDCG, MAP and recall.
        let (p, r, n, m) = rank_metrics(&[7, 4, 1], &[1, 4, 7], 3);
        close(p, 1.0);
        close(r, 1.0);
        close(n, 1.0);
        close(m, 1.0);

        // No hit scores 0; only the first k count.
        assert_eq!(rank_metrics(&[2, 3, 1], &[1], 2), (0.0, 0.0, 0.0, 0.0));

        // More relevant items than k: IDCG and MAP normalise by k.
        let (_, r, n, m) = rank_metrics(&[9], &[1, 2, 9], 1);
        close(r, 1.0 / 3.0);
        close(n, 1.0);
        close(m, 1.0);
    }
}
