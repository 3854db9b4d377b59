//! Top-k selection over a score vector.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    // A min-heap on score (ties: the higher index is "smaller", so lower indices win).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

/// The `k` best (index, score) pairs, best first, skipping `excluded` indices (sorted
/// ascending) and non-finite scores. Ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
    let mut skip = excluded.iter().peekable();
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        while skip.peek().is_some_and(|&&e| e < i) {
            skip.next();
        }
        if skip.peek() == Some(&&i) || !s.is_finite() {
            continue;
        }
        if heap.len() < k {
            heap.push(Entry(s, i));
        } else if let Some(worst) = heap.peek()
            && (s > worst.0 || (s == worst.0 && i < worst.1))
        {
            heap.pop();
            heap.push(Entry(s, i));
        }
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|Entry(s, i)| (i, s)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
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
    }
}
