//! Top-k selection over a score vector.
//!
//! One pass: the scores between two excluded indices are scanned as a plain slice, eight at
//! a time, and a score is looked at further only when it beats the current k-th best (one
//! well predicted branch per eight scores for almost every chunk). The k best are kept
//! sorted in a small vector.
//!
//! With nothing excluded, the scan starts from a floor instead of −∞: the scores (a sample
//! of them) are dealt into `g ≥ k` interleaved lanes (index mod `g`) and the lowest of the
//! lanes' maxima is a score that `g` different items reach, so the k-th best is at least
//! that. Without it the
//! cost depended on the order of the scores: rising along the index, every score was a new
//! best and was inserted (10,000 rising scores took 131 µs against 7 µs in random order).

/// The `k` best (index, score) pairs, best first, skipping `excluded` indices (sorted
/// ascending) and non-finite scores. Ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k);
    // Strictly above the threshold passes: just under the floor lets the floor itself in.
    let mut threshold = if excluded.is_empty() {
        floor(scores, k).next_down()
    } else {
        f32::NEG_INFINITY
    };
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

/// A score that the k-th best of `scores` (finite ones) is at least: the lowest of the
/// maxima of `g` interleaved lanes, `g` the smallest of 8, 16, 32, 64 not below `k`. −∞ when
/// `k` is larger, or when there are too few scores for every lane to have a few.
fn floor(scores: &[f32], k: usize) -> f32 {
    match k {
        0..=8 => lane_floor::<8>(scores),
        9..=16 => lane_floor::<16>(scores),
        17..=32 => lane_floor::<32>(scores),
        33..=64 => lane_floor::<64>(scores),
        _ => f32::NEG_INFINITY,
    }
}

/// The lowest of the maxima of `G` lanes (score `i` in lane `i mod G`), counting finite
/// scores only, over up to [`SAMPLE`] whole chunks of `G` spread evenly from the first to the
/// last (the lanes are disjoint, so their maxima are `G` different items whichever chunks
/// are read). −∞ when a lane has none, or there are fewer than four chunks.
fn lane_floor<const G: usize>(scores: &[f32]) -> f32 {
    let (chunks, _) = scores.as_chunks::<G>();
    let c = chunks.len();
    if c < 4 {
        return f32::NEG_INFINITY;
    }
    let m = c.min(SAMPLE);
    let mut max = [f32::NEG_INFINITY; G];
    for j in 0..m {
        for (m, &s) in max.iter_mut().zip(&chunks[j * (c - 1) / (m - 1)]) {
            // +∞ and NaN never answer, so they set no floor. (Two selects, so that the
            // compiler makes them a vector comparison, a blend and a maximum.)
            let s = if s < f32::INFINITY {
                s
            } else {
                f32::NEG_INFINITY
            };
            *m = if s > *m { s } else { *m };
        }
    }
    max.into_iter().fold(f32::INFINITY, f32::min)
}

/// Chunks read for the floor: a full pass over 10,000 scores cost more than the scan it
/// saves in random order; four chunks spread out (the first and the last among them) keep
/// rising scores from being all inserted.
const SAMPLE: usize = 4;

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

    /// Scores that never answer set no floor: a lane whose largest score is +∞ or NaN still
    /// counts its finite ones.
    #[test]
    fn scores_that_never_answer_set_no_floor() {
        for bad in [f32::INFINITY, f32::NAN] {
            // Eight lanes of eight: lane 0 holds the bad score and zeros, lane j > 0 one
            // score of 10 + j and fives.
            let scores: Vec<f32> = (0..64)
                .map(|i| match (i % 8, i / 8) {
                    (0, 3) => bad,
                    (0, _) => 0.0,
                    (j, 5) => 10.0 + j as f32,
                    _ => 5.0,
                })
                .collect();
            let top = top_k(&scores, 8, &[]);
            let values: Vec<f32> = top.iter().map(|&(_, s)| s).collect();
            assert_eq!(values, [17.0, 16.0, 15.0, 14.0, 13.0, 12.0, 11.0, 5.0]);
            assert_eq!(top[7].0, 1, "the lowest index among the tied fives");
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
            let mut scores: Vec<f32> = (0..n)
                .map(|_| rng.index(levels) as f32 / 4.0 - 2.0)
                .collect();
            // Every other round a few scores that never answer, or always lose.
            if round % 2 == 0 {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    for _ in 0..1 + rng.index(4) {
                        scores[rng.index(n)] = bad;
                    }
                }
            }
            let excluded_count = if long { rng.index(5) } else { rng.index(n) };
            let mut excluded: Vec<u32> = (0..excluded_count)
                .map(|_| rng.index(n + 3) as u32)
                .collect();
            excluded.sort_unstable();
            excluded.dedup();
            let k = 1 + rng.index(70);
            for excluded in [&excluded[..], &[]] {
                let mut want: Vec<(u32, f32)> = scores
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| excluded.binary_search(&(*i as u32)).is_err())
                    .filter(|(_, s)| s.is_finite() || **s == f32::NEG_INFINITY)
                    .map(|(i, &s)| (i as u32, s))
                    .collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                want.retain(|&(_, s)| s > f32::NEG_INFINITY);
                want.truncate(k);
                assert_eq!(top_k(&scores, k, excluded), want, "round {round}");
            }
        }
    }
}
