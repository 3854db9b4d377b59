//! Hold-out splits for evaluation.
//!
//! - [`per_user_random`]: every user's interactions are shuffled with a seeded generator and a
//!   fraction of them is held out.
//! - [`per_user_temporal`]: every user's most recent interactions (by the time of their latest
//!   interaction with the item; ties broken by item index) are held out, so the model is
//!   judged on predicting what came next.
//! - [`leave_last_out`]: every user's single newest interaction is held out (the next-item
//!   protocol of the sequence-model literature: SASRec, gSASRec); cut twice, the newest is the
//!   test item and the one before it the validation item.
//!
//! In both, the held-out count is `round(n × fraction)`, at least one for users with two or
//! more interactions, never all of them (a user keeps at least one training interaction, and
//! users with a single interaction are kept whole in training). Both halves keep the full id
//! maps, so row and column indices agree, and carry the pairs' values and times.

use crate::Interactions;
use marquee_domain::rng::SeededRng;

/// A training matrix and the held-out interactions to evaluate against.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Interactions,
    pub test: Interactions,
}

/// How many of `n` interactions to hold out.
fn held_out(n: usize, fraction: f64) -> usize {
    if n < 2 {
        0
    } else {
        ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
    }
}

/// Splits every row, holding out the first `held_out` positions of `order(user, row_len)`.
fn split_rows(
    data: &Interactions,
    fraction: f64,
    mut order: impl FnMut(usize, &mut Vec<usize>),
) -> Split {
    let mut train = Vec::with_capacity(data.nnz());
    let mut test = Vec::new();
    let mut positions: Vec<usize> = Vec::new();
    for u in 0..data.n_users() {
        let row = data.row(u);
        let times = data.row_times(u);
        positions.clear();
        positions.extend(0..row.len());
        order(u, &mut positions);
        let held = held_out(row.len(), fraction);
        // Each part back in item order (a row's positions are), so the matrices below are
        // built from sorted entries: sorting a row is cheaper than sorting all of them.
        let (out, kept) = positions.split_at_mut(held);
        out.sort_unstable();
        kept.sort_unstable();
        for (rank, &j) in positions.iter().enumerate() {
            let entry = (u as u32, row.items[j], row.values[j], times[j]);
            if rank < held {
                test.push(entry);
            } else {
                train.push(entry);
            }
        }
    }
    Split {
        train: Interactions::from_timed_coo(data.users.clone(), data.items.clone(), train),
        test: Interactions::from_timed_coo(data.users.clone(), data.items.clone(), test),
    }
}

/// Holds out a random `fraction` of each user's interactions (seeded).
pub fn per_user_random(data: &Interactions, fraction: f64, seed: u64) -> Split {
    let mut rng = SeededRng::new(seed);
    split_rows(data, fraction, |_, positions| rng.shuffle(positions))
}

/// Holds out the most recent `fraction` of each user's interactions.
pub fn per_user_temporal(data: &Interactions, fraction: f64) -> Split {
    split_rows(data, fraction, |u, positions| {
        let times = data.row_times(u);
        // Newest first; on equal times the higher index first, so the order is total.
        positions.sort_unstable_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    })
}

/// Holds out each user's newest interaction (ties: the higher item index is newer), for users
/// with two or more.
pub fn leave_last_out(data: &Interactions) -> Split {
    let mut train = Vec::with_capacity(data.nnz());
    let mut test = Vec::with_capacity(data.n_users());
    for u in 0..data.n_users() {
        let row = data.row(u);
        let times = data.row_times(u);
        let newest = (0..row.len()).max_by(|&a, &b| times[a].cmp(&times[b]).then(a.cmp(&b)));
        for (j, &time) in times.iter().enumerate() {
            let entry = (u as u32, row.items[j], row.values[j], time);
            if row.len() >= 2 && Some(j) == newest {
                test.push(entry);
            } else {
                train.push(entry);
            }
        }
    }
    Split {
        train: Interactions::from_timed_coo(data.users.clone(), data.items.clone(), train),
        test: Interactions::from_timed_coo(data.users.clone(), data.items.clone(), test),
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

    #[test]
    fn leave_last_out_holds_out_the_newest_then_the_one_before() {
        let data = Interactions::from_timed_triplets(vec![
            ("a", "x", 1.0, 10),
            ("a", "y", 1.0, 30),
            ("a", "z", 1.0, 20),
            ("b", "x", 1.0, 5),
        ]);
        let test = leave_last_out(&data);
        let name = |s: &Split, u: usize| -> Vec<String> {
            s.test
                .row(u)
                .items
                .iter()
                .map(|&i| data.items.id(i as usize).to_owned())
                .collect()
        };
        assert_eq!(name(&test, 0), ["y"]);
        assert!(
            test.test.row(1).is_empty(),
            "a single interaction stays in training"
        );
        assert_eq!(test.train.row(0).len(), 2);
        let validation = leave_last_out(&test.train);
        assert_eq!(name(&validation, 0), ["z"]);
        assert_eq!(validation.train.row(0).len(), 1);
    }

    #[test]
    fn temporal_holds_out_the_newest() {
        let data = Interactions::from_timed_triplets([
            ("a", "old", 1.0, 100),
            ("a", "new", 1.0, 300),
            ("a", "mid", 1.0, 200),
            ("a", "newest", 2.0, 400),
            ("a", "new", 1.0, 50),
            ("b", "old", 1.0, 999),
        ]);
        let s = per_user_temporal(&data, 0.5);
        let ids = |m: &Interactions, u: usize| -> Vec<String> {
            m.row(u)
                .iter()
                .map(|(i, _)| m.items.id(i).to_owned())
                .collect()
        };
        // "new" was seen at 50 and 300: its time is the latest, 300, and its weight 2.
        let mut test = ids(&s.test, 0);
        test.sort();
        assert_eq!(test, ["new", "newest"]);
        assert_eq!(s.test.row_times(0).iter().max(), Some(&400));
        assert_eq!(ids(&s.train, 0), ["old", "mid"]);
        assert_eq!(ids(&s.train, 1), ["old"]);
        assert!(s.test.row(1).is_empty());
    }
}
