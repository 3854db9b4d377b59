//! A sparse item × item weight matrix: for every item, a short list of other items and the
//! weight each gets when the first is in a user's history. Item-kNN (cosine similarities) and
//! EASE (the largest entries of each row of B) both score through it.

use crate::Row;

/// Item `i`'s neighbours are `neighbors[offsets[i]..offsets[i + 1]]`, largest weight first.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemItem {
    pub offsets: Vec<usize>,
    pub neighbors: Vec<u32>,
    pub weights: Vec<f32>,
}

impl ItemItem {
    /// Builds the matrix from one list of (neighbour, weight) per item.
    pub fn from_lists(lists: Vec<Vec<(u32, f32)>>) -> Self {
        let total = lists.iter().map(Vec::len).sum();
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut neighbors = Vec::with_capacity(total);
        let mut weights = Vec::with_capacity(total);
        offsets.push(0);
        for list in lists {
            for (j, w) in list {
                neighbors.push(j);
                weights.push(w);
            }
            offsets.push(neighbors.len());
        }
        Self {
            offsets,
            neighbors,
            weights,
        }
    }

    /// Rebuilds the matrix from stored parts, checking that they are consistent.
    pub fn from_parts(
        n_items: usize,
        offsets: Vec<usize>,
        neighbors: Vec<u32>,
        weights: Vec<f32>,
    ) -> Result<Self, String> {
        if offsets.len() != n_items + 1
            || offsets.first() != Some(&0)
            || offsets.last() != Some(&neighbors.len())
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err("neighbour offsets do not match the item count".into());
        }
        if weights.len() != neighbors.len() || neighbors.iter().any(|&j| j as usize >= n_items) {
            return Err("neighbour lists are inconsistent or out of range".into());
        }
        Ok(Self {
            offsets,
            neighbors,
            weights,
        })
    }

    pub fn n_items(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The neighbours of one item, largest weight first.
    pub fn neighbors_of(&self, item: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (a, b) = (self.offsets[item], self.offsets[item + 1]);
        self.neighbors[a..b]
            .iter()
            .map(|&j| j as usize)
            .zip(self.weights[a..b].iter().copied())
    }

    /// `out[j] = Σ over history items i of value(i) · W[i, j]`, where value is the interaction
    /// weight if `weighted`, else 1.
    pub fn score(&self, history: Row<'_>, weighted: bool, out: &mut [f32]) {
        out.fill(0.0);
        for (i, w) in history.iter() {
            let w = if weighted { w } else { 1.0 };
            for (j, s) in self.neighbors_of(i) {
                out[j] += w * s;
            }
        }
    }
}
