//! The users × items interaction matrix in compressed sparse row form.

use std::collections::HashMap;

/// Dense indices for external string ids, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// The index of `id`, adding it if new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub fn id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn from_ids(ids: Vec<String>) -> Self {
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        Self { ids, index }
    }
}

/// One user's row: item indices (ascending) and their values.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub items: &'a [u32],
    pub values: &'a [f32],
}

impl Row<'_> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.items
            .iter()
            .map(|&i| i as usize)
            .zip(self.values.iter().copied())
    }
}

/// Users × items confidence weights (CSR, f32), with the id maps of both axes, and for every
/// stored pair the time of its latest interaction (Unix milliseconds; 0 when unknown), which
/// temporal splits and the trending baseline use.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    pub users: IdMap,
    pub items: IdMap,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    times: Vec<i64>,
}

impl Interactions {
    /// Builds the matrix from (user, item, weight) triplets; repeated pairs are summed and
    /// pairs whose summed weight is not positive are dropped (a cancelled purchase cancels).
    pub fn from_triplets<'a>(triplets: impl IntoIterator<Item = (&'a str, &'a str, f32)>) -> Self {
        Self::from_timed_triplets(triplets.into_iter().map(|(u, i, w)| (u, i, w, 0)))
    }

    /// Builds the matrix from (user, item, weight, time) quadruplets; weights of repeated
    /// pairs are summed, their times reduced to the latest, and pairs whose summed weight is
    /// not positive are dropped.
    pub fn from_timed_triplets<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str, f32, i64)>,
    ) -> Self {
        let mut users = IdMap::default();
        let mut items = IdMap::default();
        let mut coo: Vec<(u32, u32, f32, i64)> = Vec::new();
        for (u, i, w, t) in rows {
            coo.push((users.intern(u), items.intern(i), w, t));
        }
        Self::from_timed_coo(users, items, coo)
    }

    /// Builds the matrix from indexed triplets over given id maps.
    pub fn from_coo(users: IdMap, items: IdMap, coo: Vec<(u32, u32, f32)>) -> Self {
        let coo = coo.into_iter().map(|(u, i, w)| (u, i, w, 0)).collect();
        Self::from_timed_coo(users, items, coo)
    }

    /// Builds the matrix from indexed (user, item, weight, time) rows over given id maps.
    pub fn from_timed_coo(users: IdMap, items: IdMap, mut coo: Vec<(u32, u32, f32, i64)>) -> Self {
        coo.sort_unstable_by_key(|&(u, i, _, _)| (u, i));
        let mut merged: Vec<(u32, u32, f32, i64)> = Vec::with_capacity(coo.len());
        for (u, i, w, t) in coo {
            match merged.last_mut() {
                Some(last) if last.0 == u && last.1 == i => {
                    last.2 += w;
                    last.3 = last.3.max(t);
                }
                _ => merged.push((u, i, w, t)),
            }
        }
        merged.retain(|&(_, _, w, _)| w > 0.0 && w.is_finite());
        let mut indptr = vec![0usize; users.len() + 1];
        for &(u, ..) in &merged {
            indptr[u as usize + 1] += 1;
        }
        for u in 0..users.len() {
            indptr[u + 1] += indptr[u];
        }
        Self {
            users,
            items,
            indptr,
            indices: merged.iter().map(|m| m.1).collect(),
            values: merged.iter().map(|m| m.2).collect(),
            times: merged.iter().map(|m| m.3).collect(),
        }
    }

    /// Rebuilds a matrix from its raw CSR parts (as stored in a model artifact), checking
    /// that they are consistent.
    pub fn from_parts(
        users: IdMap,
        items: IdMap,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
        times: Vec<i64>,
    ) -> Result<Self, String> {
        if indptr.len() != users.len() + 1 || indptr.first() != Some(&0) {
            return Err(format!(
                "indptr has {} entries for {} users",
                indptr.len(),
                users.len()
            ));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) || indptr.last() != Some(&indices.len()) {
            return Err("indptr is not non-decreasing up to the number of entries".into());
        }
        if values.len() != indices.len() || times.len() != indices.len() {
            return Err("indices, values and times differ in length".into());
        }
        if indices.iter().any(|&i| i as usize >= items.len()) {
            return Err("an item index is out of range".into());
        }
        Ok(Self {
            users,
            items,
            indptr,
            indices,
            values,
            times,
        })
    }

    /// The raw CSR arrays: row pointers, item indices, values, times.
    pub fn parts(&self) -> (&[usize], &[u32], &[f32], &[i64]) {
        (&self.indptr, &self.indices, &self.values, &self.times)
    }

    /// Whether any pair carries a time.
    pub fn has_times(&self) -> bool {
        self.times.iter().any(|&t| t != 0)
    }

    /// The latest interaction time of each pair of a user's row, aligned with [`Row::items`].
    pub fn row_times(&self, user: usize) -> &[i64] {
        &self.times[self.indptr[user]..self.indptr[user + 1]]
    }

    /// Every stored pair as (user, item, value, time).
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32, f32, i64)> + '_ {
        (0..self.n_users()).flat_map(move |u| {
            let (a, b) = (self.indptr[u], self.indptr[u + 1]);
            (a..b).map(move |k| (u as u32, self.indices[k], self.values[k], self.times[k]))
        })
    }

    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Number of stored (user, item) pairs.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, user: usize) -> Row<'_> {
        let (a, b) = (self.indptr[user], self.indptr[user + 1]);
        Row {
            items: &self.indices[a..b],
            values: &self.values[a..b],
        }
    }

    /// The items × users matrix (same values), for item-side sweeps.
    pub fn transpose(&self) -> Self {
        let coo = self.entries().map(|(u, i, w, t)| (i, u, w, t)).collect();
        Self::from_timed_coo(self.items.clone(), self.users.clone(), coo)
    }

    /// The same matrix with every value mapped (e.g. to 1 for binary models).
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Self {
        let mut out = self.clone();
        for v in &mut out.values {
            *v = f(*v);
        }
        out
    }

    /// Number of users with at least one interaction per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_items()];
        for &i in &self.indices {
            counts[i as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_are_summed_and_non_positive_pairs_dropped() {
        let m = Interactions::from_triplets([
            ("u1", "a", 1.0),
            ("u2", "b", 2.0),
            ("u1", "b", 3.0),
            ("u1", "a", 4.0),
            ("u2", "c", 5.0),
            ("u2", "c", -5.0),
        ]);
        assert_eq!((m.n_users(), m.n_items(), m.nnz()), (2, 3, 3));
        let r = m.row(0);
        assert_eq!(r.iter().collect::<Vec<_>>(), [(0, 5.0), (1, 3.0)]);
        assert_eq!(m.row(1).iter().collect::<Vec<_>>(), [(1, 2.0)]);
        let t = m.transpose();
        assert_eq!(t.row(1).iter().collect::<Vec<_>>(), [(0, 3.0), (1, 2.0)]);
        assert_eq!(m.item_counts(), [1, 2, 0]);
    }
}
