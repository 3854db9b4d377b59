//! Hold-out splits for evaluation.
//!
//! [`per_user_random`]: every user's interactions are shuffled with a seeded generator and a
//! fraction of them (rounded, at least one for users with two or more interactions, never all)
//! is held out. Both halves keep the full id maps, so row and column indices agree.

use crate::Interactions;
use marquee_domain::rng::SeededRng;

/// A training matrix and the held-out interactions to evaluate against.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Interactions,
    pub test: Interactions,
}

/// Holds out `fraction` of each user's interactions (seeded).
pub fn per_user_random(data: &Interactions, fraction: f64, seed: u64) -> Split {
    let mut rng = SeededRng::new(seed);
    let mut train = Vec::with_capacity(data.nnz());
    let mut test = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    for u in 0..data.n_users() {
        let row = data.row(u);
        order.clear();
        order.extend(0..row.len());
        rng.shuffle(&mut order);
        let n = row.len();
        let held = if n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        for (rank, &j) in order.iter().enumerate() {
            let triple = (u as u32, row.items[j], row.values[j]);
            if rank < held {
                test.push(triple);
            } else {
                train.push(triple);
            }
        }
    }
    Split {
        train: Interactions::from_coo(data.users.clone(), data.items.clone(), train),
        test: Interactions::from_coo(data.users.clone(), data.items.clone(), test),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_per_user_and_determinism() {
        let mut triplets = Vec::new();
        let names: Vec<String> = (0..20).map(|i| format!("i{i}")).collect();
        for name in &names[..10] {
            triplets.push(("a", name.as_str(), 1.0));
        }
        triplets.push(("b", "i0", 1.0));
        let data = Interactions::from_triplets(triplets);
        let s = per_user_random(&data, 0.2, 42);
        assert_eq!((s.train.row(0).len(), s.test.row(0).len()), (8, 2));
        assert_eq!((s.train.row(1).len(), s.test.row(1).len()), (1, 0));
        let again = per_user_random(&data, 0.2, 42);
        assert_eq!(s.test, again.test);
        assert_ne!(per_user_random(&data, 0.2, 7).test, s.test);
    }
}
