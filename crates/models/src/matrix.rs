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

/// Users × items confidence weights (CSR, f32), with the id maps of both axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    pub users: IdMap,
    pub items: IdMap,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Interactions {
    /// Builds the matrix from (user, item, weight) triplets; repeated pairs are summed and
    /// pairs whose summed weight is not positive are dropped (a cancelled purchase cancels).
    pub fn from_triplets<'a>(triplets: impl IntoIterator<Item = (&'a str, &'a str, f32)>) -> Self {
        let mut users = IdMap::default();
        let mut items = IdMap::default();
        let mut coo: Vec<(u32, u32, f32)> = Vec::new();
        for (u, i, w) in triplets {
            coo.push((users.intern(u), items.intern(i), w));
        }
        Self::from_coo(users, items, coo)
    }

    /// Builds the matrix from indexed triplets over given id maps.
    pub fn from_coo(users: IdMap, items: IdMap, mut coo: Vec<(u32, u32, f32)>) -> Self {
        coo.sort_unstable_by_key(|&(u, i, _)| (u, i));
        let mut indptr = vec![0usize; users.len() + 1];
        let mut indices = Vec::with_capacity(coo.len());
        let mut values: Vec<f32> = Vec::with_capacity(coo.len());
        let mut rows: Vec<u32> = Vec::with_capacity(coo.len());
        for (u, i, w) in coo {
            if rows.last() == Some(&u) && indices.last() == Some(&i) {
                if let Some(v) = values.last_mut() {
                    *v += w;
                }
            } else {
                rows.push(u);
                indices.push(i);
                values.push(w);
            }
        }
        let mut kept_indices = Vec::with_capacity(indices.len());
        let mut kept_values = Vec::with_capacity(values.len());
        for ((u, i), w) in rows.into_iter().zip(indices).zip(values) {
            if w > 0.0 && w.is_finite() {
                indptr[u as usize + 1] += 1;
                kept_indices.push(i);
                kept_values.push(w);
            }
        }
        for u in 0..users.len() {
            indptr[u + 1] += indptr[u];
        }
        Self {
            users,
            items,
            indptr,
            indices: kept_indices,
            values: kept_values,
        }
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
        let mut coo = Vec::with_capacity(self.nnz());
        for u in 0..self.n_users() {
            for (i, w) in self.row(u).iter() {
                coo.push((i as u32, u as u32, w));
            }
        }
        Self::from_coo(self.items.clone(), self.users.clone(), coo)
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
