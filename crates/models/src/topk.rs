//! Top-k selection over a score vector.
//!
//! One pass: the scores between two excluded indices are scanned as a plain slice, and a
//! score is looked at further only when it beats the current k-th best (a single, well
//! predicted comparison for almost every item). The k best are kept sorted in a small vector.

/// The `k` best (index, score) pairs, best first, skipping `excluded` indices (sorted
/// ascending) and non-finite scores. Ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    let mut threshold = f32::NEG_INFINITY;
    let mut start = 0usize;
    let ends = excluded
        .iter()
        .map(|&e| e as usize)
        .chain(std::iter::once(scores.len()));
    for end in ends {
        let end = end.min(scores.len());
        if end < start {
            continue;
        }
        for (offset, &s) in scores[start..end].iter().enumerate() {
            // NaN and −∞ never pass; +∞ is left out explicitly.
            if s > threshold && s < f32::INFINITY {
                let i = (start + offset) as u32;
                // Scanning by ascending index, an equal score goes after those kept.
                let at = best.partition_point(|&(_, b)| b >= s);
                best.insert(at, (i, s));
                if best.len() > k {
                    best.pop();
                }
                if best.len() == k {
                    threshold = best[k - 1].1;
                }
            }
        }
        start = end + 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_with_exclusions_and_ties() {
        let scores = [0.5, 0.9, f32::NAN, 0.9, 0.1, 0.7];
        assert_eq!(top_k(&scores, 3, &[]), [(1, 0.9), (3, 0.9), (5, 0.7)]);
        assert_eq!(top_k(&scores, 2, &[1, 5]), [(3, 0.9), (0, 0.5)]);
        assert_eq!(top_k(&scores, 10, &[0, 1, 3, 4, 5]), []);
        assert!(top_k(&scores, 0, &[]).is_empty());
        assert_eq!(
            top_k(&[1.0, f32::INFINITY, 2.0], 5, &[9]),
            [(2, 2.0), (0, 1.0)]
        );
    }

    /// The same answer as sorting everything, on random scores with many ties and random
    /// exclusions.
    #[test]
    fn equals_a_full_sort() {
        let mut rng = marquee_domain::rng::SeededRng::new(11);
        for round in 0..200 {
            let n = 1 + rng.index(300);
            let scores: Vec<f32> = (0..n).map(|_| rng.index(20) as f32 / 4.0 - 2.0).collect();
            let mut excluded: Vec<u32> =
                (0..rng.index(n)).map(|_| rng.index(n + 3) as u32).collect();
            excluded.sort_unstable();
            excluded.dedup();
            let k = 1 + rng.index(40);
            let mut want: Vec<(u32, f32)> = scores
                .iter()
                .enumerate()
                .filter(|(i, _)| excluded.binary_search(&(*i as u32)).is_err())
                .map(|(i, &s)| (i as u32, s))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            want.truncate(k);
            assert_eq!(top_k(&scores, k, &excluded), want, "round {round}");
        }
    }
}
