//! Top-k selection over a score vector.
//!
//! One pass: the scores between two excluded indices are scanned as a plain slice, eight at
//! a time, and a score is looked at further only when it beats the current k-th best (one
//! well predicted branch per eight scores for almost every chunk). The k best are kept
//! sorted in a small vector.

/// The `k` best (index, score) pairs, best first, skipping `excluded` indices (sorted
/// ascending) and non-finite scores. Ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k);
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
        let (chunks, tail) = scores[start..end].as_chunks::<8>();
        for (c, chunk) in chunks.iter().enumerate() {
            // Eight comparisons without a branch (the compiler makes them one vector
            // comparison); most chunks have no score above the k-th best.
            let hit = chunk.iter().fold(false, |hit, &s| hit | (s > threshold));
            if hit {
                threshold = consider(&mut best, k, threshold, start + c * 8, chunk);
            }
        }
        threshold = consider(&mut best, k, threshold, end - tail.len(), tail);
        start = end + 1;
    }
    best
}

/// Every score of `scores` (indices from `first`) above `threshold` into `best`; returns the
/// threshold from then on (the k-th best once there are `k`).
fn consider(
    best: &mut Vec<(u32, f32)>,
    k: usize,
    mut threshold: f32,
    first: usize,
    scores: &[f32],
) -> f32 {
    for (offset, &s) in scores.iter().enumerate() {
        // NaN and −∞ never pass; +∞ is left out explicitly.
        if s > threshold && s < f32::INFINITY {
            insert(best, k, ((first + offset) as u32, s));
            if best.len() == k {
                threshold = best[k - 1].1;
            }
        }
    }
    threshold
}

/// Puts `new` into `best` (sorted best first, at most `k` long) after every score at least
/// as high (scanning by ascending index, an equal score goes after those kept), dropping the
/// last when full. Moved one slot at a time from the end: `k` is small, and a call into
/// `memmove` for a few bytes costs more than the moves.
#[inline]
fn insert(best: &mut Vec<(u32, f32)>, k: usize, new: (u32, f32)) {
    let mut at = best.len();
    if at < k {
        best.push(new);
    } else {
        at -= 1;
    }
    while at > 0 && best[at - 1].1 < new.1 {
        best[at] = best[at - 1];
        at -= 1;
    }
    best[at] = new;
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

    /// Scores rising or falling along the index (every score a new best, or none after
    /// the first k), with ties, give the same answer as a full sort.
    #[test]
    fn ordered_scores() {
        for n in [5, 70, 75, 400, 3_000] {
            let rising: Vec<f32> = (0..n).map(|i| (i / 3) as f32).collect();
            let falling: Vec<f32> = rising.iter().rev().copied().collect();
            for (scores, k) in [(&rising, 10), (&falling, 10), (&rising, 1), (&falling, 64)] {
                let mut want: Vec<(u32, f32)> = (0..n as u32).zip(scores.iter().copied()).collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                want.truncate(k);
                assert_eq!(top_k(scores, k, &[]), want, "n {n}, k {k}");
            }
        }
    }

    /// The same answer as sorting everything, on random scores with many ties and random
    /// exclusions.
    #[test]
    fn equals_a_full_sort() {
        let mut rng = marquee_domain::rng::SeededRng::new(11);
        for round in 0..300 {
            // Every third round: long runs between few exclusions, and finer scores.
            let long = round % 3 == 0;
            let n = 1 + rng.index(if long { 3_000 } else { 300 });
            let levels = if long { 2_000 } else { 20 };
            let scores: Vec<f32> = (0..n)
                .map(|_| rng.index(levels) as f32 / 4.0 - 2.0)
                .collect();
            let excluded_count = if long { rng.index(5) } else { rng.index(n) };
            let mut excluded: Vec<u32> = (0..excluded_count)
                .map(|_| rng.index(n + 3) as u32)
                .collect();
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
