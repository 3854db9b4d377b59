//! Cold-start evaluation: a share of the items is held out of training entirely (every one of
//! their interactions goes to the test side), and a model must rank these unseen items for
//! the users who interacted with them, from whatever it knows without their history (content
//! features, for the two-tower model).
//!
//! Metric: recall@k over the cold items only (each user's candidates are the cold items;
//! relevant: the cold items the user interacted with), averaged over training users with at
//! least one cold item. A random ranking scores k / (number of cold items) in expectation.

use crate::metrics::rank_metrics;
use crate::{Interactions, top_k};
use marquee_domain::rng::SeededRng;

/// A split with held-out items.
#[derive(Debug, Clone)]
pub struct ColdSplit {
    /// The interactions with the warm items (the cold items are not among its columns).
    pub train: Interactions,
    /// The held-out item ids.
    pub cold_items: Vec<String>,
    /// Per row of `train`: indices into `cold_items` of the user's cold items (sorted).
    pub relevant: Vec<Vec<u32>>,
}

/// Holds out `fraction` of the items of `data` (drawn with `seed`).
pub fn hold_out_items(data: &Interactions, fraction: f64, seed: u64) -> ColdSplit {
    let n = data.n_items();
    let mut order: Vec<usize> = (0..n).collect();
    SeededRng::new(seed).shuffle(&mut order);
    let n_cold = ((n as f64 * fraction).round() as usize).min(n);
    // Position in `cold_items` of each cold item of `data`.
    let mut cold_index = vec![u32::MAX; n];
    let mut cold_items = Vec::with_capacity(n_cold);
    let mut picked: Vec<usize> = order[..n_cold].to_vec();
    picked.sort_unstable();
    for i in picked {
        cold_index[i] = cold_items.len() as u32;
        cold_items.push(data.items.id(i).to_owned());
    }
    let warm: Vec<(&str, &str, f32, i64)> = data
        .entries()
        .filter(|&(_, i, _, _)| cold_index[i as usize] == u32::MAX)
        .map(|(u, i, w, t)| (data.users.id(u as usize), data.items.id(i as usize), w, t))
        .collect();
    let train = Interactions::from_timed_triplets(warm);
    let mut relevant = vec![Vec::new(); train.n_users()];
    for (u, i, _, _) in data.entries() {
        let c = cold_index[i as usize];
        if c == u32::MAX {
            continue;
        }
        if let Some(row) = train.users.get(data.users.id(u as usize)) {
            relevant[row as usize].push(c);
        }
    }
    for r in &mut relevant {
        r.sort_unstable();
        r.dedup();
    }
    ColdSplit {
        train,
        cold_items,
        relevant,
    }
}

/// Mean recall@k over the cold items, with `score(user, out)` writing a score for every cold
/// item (in `cold_items` order) for training user `user`; and the number of users evaluated.
pub fn cold_recall(
    split: &ColdSplit,
    k: usize,
    mut score: impl FnMut(usize, &mut [f32]),
) -> (f64, usize) {
    let mut out = vec![0f32; split.cold_items.len()];
    let (mut total, mut users) = (0.0, 0usize);
    for (u, relevant) in split.relevant.iter().enumerate() {
        if relevant.is_empty() {
            continue;
        }
        score(u, &mut out);
        let ranked: Vec<u32> = top_k(&out, k, &[]).into_iter().map(|(i, _)| i).collect();
        total += rank_metrics(&ranked, relevant, k).1;
        users += 1;
    }
    (total / users.max(1) as f64, users)
}

/// The genre-popularity baseline: a cold item scores the sum, over its genres, of the share
/// of the user's training items that have the genre, plus a thousandth of the genre's share of
/// all training interactions (so users without a matching genre still get the popular
/// genres first). `genres(id)` names an item's genres (its category among them).
pub fn genre_popularity<'a>(
    split: &'a ColdSplit,
    genres: impl Fn(&str) -> Vec<String>,
) -> impl FnMut(usize, &mut [f32]) + 'a {
    use std::collections::HashMap;
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut intern = |g: String| {
        let n = ids.len();
        *ids.entry(g).or_insert(n)
    };
    let item_genres: Vec<Vec<usize>> = split
        .train
        .items
        .ids()
        .iter()
        .map(|id| genres(id).into_iter().map(&mut intern).collect())
        .collect();
    let cold_genres: Vec<Vec<usize>> = split
        .cold_items
        .iter()
        .map(|id| genres(id).into_iter().map(&mut intern).collect())
        .collect();
    let n_genres = ids.len();
    let mut global = vec![0f32; n_genres];
    for u in 0..split.train.n_users() {
        for &i in split.train.row(u).items {
            for &g in &item_genres[i as usize] {
                global[g] += 1.0;
            }
        }
    }
    let total = global.iter().sum::<f32>().max(1.0);
    global.iter_mut().for_each(|g| *g /= total);
    let mut profile = vec![0f32; n_genres];
    move |u, out| {
        profile.fill(0.0);
        let row = split.train.row(u).items;
        for &i in row {
            for &g in &item_genres[i as usize] {
                profile[g] += 1.0 / row.len().max(1) as f32;
            }
        }
        for (o, gs) in out.iter_mut().zip(&cold_genres) {
            *o = gs.iter().map(|&g| profile[g] + 1e-3 * global[g]).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_items_are_absent_from_training_and_all_their_pairs_are_relevant() {
        let rows: Vec<(String, String)> = (0..20)
            .flat_map(|u| {
                (0..10)
                    .filter(move |i| (u + i) % 3 != 0)
                    .map(move |i| (format!("u{u}"), format!("i{i}")))
            })
            .collect();
        let data =
            Interactions::from_triplets(rows.iter().map(|(u, i)| (u.as_str(), i.as_str(), 1.0)));
        let split = hold_out_items(&data, 0.3, 7);
        assert_eq!(split.cold_items.len(), 3);
        for c in &split.cold_items {
            assert!(
                split.train.items.get(c).is_none(),
                "{c} leaked into training"
            );
        }
        let pairs: usize = split.relevant.iter().map(Vec::len).sum();
        let expected = rows
            .iter()
            .filter(|(_, i)| split.cold_items.contains(i))
            .count();
        assert_eq!(pairs, expected);
        assert_eq!(pairs + split.train.nnz(), data.nnz());
        // A scorer that knows the answer finds every cold item.
        let (perfect, users) = cold_recall(&split, 3, |u, out| {
            for (c, o) in out.iter_mut().enumerate() {
                *o = if split.relevant[u].contains(&(c as u32)) {
                    1.0
                } else {
                    0.0
                };
            }
        });
        assert_eq!(perfect, 1.0);
        assert!(users > 0);
    }
}
