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

    /// The matrix as dense rows (`n × n`, row-major), when it is dense enough to be worth it
    /// and small enough to hold: at most `max_items` items and at least one entry in eight
    /// present. Scoring with [`ItemItem::score_dense`] then runs over contiguous rows (the
    /// compiler vectorises it) and gives exactly the sums of [`ItemItem::score`].
    pub fn to_dense(&self, max_items: usize) -> Option<Vec<f32>> {
        let n = self.n_items();
        if n == 0 || n > max_items || self.neighbors.len() * 8 < n * n {
            return None;
        }
        let mut dense = vec![0.0_f32; n * n];
        for i in 0..n {
            let row = &mut dense[i * n..(i + 1) * n];
            for (j, s) in self.neighbors_of(i) {
                row[j] += s;
            }
        }
        Some(dense)
    }

    /// [`ItemItem::score`] over the dense rows of [`ItemItem::to_dense`] (the widest SIMD the
    /// CPU has, chosen at run time; a multiply then an add, as the sparse sum rounds).
    pub fn score_dense(dense: &[f32], history: Row<'_>, weighted: bool, out: &mut [f32]) {
        out.fill(0.0);
        pulp::Arch::new().dispatch(DenseSum {
            dense,
            history,
            weighted,
            out,
        });
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

/// `out += w(i) · row(i)` over the history's rows, element by element.
struct DenseSum<'a> {
    dense: &'a [f32],
    history: Row<'a>,
    weighted: bool,
    out: &'a mut [f32],
}

impl pulp::WithSimd for DenseSum<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let n = self.out.len();
        for (i, w) in self.history.iter() {
            let w = if self.weighted { w } else { 1.0 };
            let Some(row) = self.dense.get(i * n..(i + 1) * n) else {
                continue;
            };
            let (out, out_tail) = S::as_mut_simd_f32s(self.out);
            let (row, row_tail) = S::as_simd_f32s(row);
            let wv = simd.splat_f32s(w);
            for (o, r) in out.iter_mut().zip(row) {
                *o = simd.add_f32s(*o, simd.mul_f32s(wv, *r));
            }
            for (o, r) in out_tail.iter_mut().zip(row_tail) {
                *o += w * r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_scores_are_exactly_the_sparse_ones() {
        // 30 items, each with neighbours at varying offsets and signed weights.
        let lists: Vec<Vec<(u32, f32)>> = (0..30u32)
            .map(|i| {
                (1..12u32)
                    .map(|d| ((i + d * 7) % 30, (i as f32 - d as f32) / 13.0))
                    .filter(|&(j, _)| j != i)
                    .collect()
            })
            .collect();
        let graph = ItemItem::from_lists(lists);
        let dense = graph.to_dense(100).expect("dense enough");
        let items = [2u32, 5, 17, 29];
        let values = [1.0, 0.5, -2.0, 3.25];
        let history = Row {
            items: &items,
            values: &values,
        };
        for weighted in [false, true] {
            let mut sparse = vec![0.0; 30];
            let mut fast = vec![1.0; 30];
            graph.score(history, weighted, &mut sparse);
            ItemItem::score_dense(&dense, history, weighted, &mut fast);
            assert_eq!(sparse, fast, "weighted {weighted}");
        }
        assert!(graph.to_dense(29).is_none(), "over the size limit");
        // A catalog of many SIMD vectors and a tail, a score filled with NaN beforehand: every
        // element is the sum of its terms in history order, the same bits as adding one row at
        // a time; a history item past the matrix adds nothing.
        let n = 403;
        let mut state = 17_u64;
        let dense: Vec<f32> = (0..n * n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let items: Vec<u32> = (0..23)
            .map(|k| (k * 37 % n) as u32)
            .chain([n as u32 + 5])
            .collect();
        let values: Vec<f32> = (0..items.len()).map(|k| 0.25 + k as f32 / 7.0).collect();
        let history = Row {
            items: &items,
            values: &values,
        };
        for weighted in [false, true] {
            let mut want = vec![0.0_f32; n];
            for (&i, &v) in items
                .iter()
                .zip(&values)
                .filter(|(i, _)| (**i as usize) < n)
            {
                let w = if weighted { v } else { 1.0 };
                for (o, r) in want
                    .iter_mut()
                    .zip(&dense[i as usize * n..(i as usize + 1) * n])
                {
                    *o += w * r;
                }
            }
            let mut got = vec![f32::NAN; n];
            ItemItem::score_dense(&dense, history, weighted, &mut got);
            assert_eq!(got, want, "weighted {weighted}");
        }
        let sparse_graph = ItemItem::from_lists(vec![vec![(1, 1.0)]; 30]);
        assert!(
            sparse_graph.to_dense(100).is_none(),
            "too sparse to be worth it"
        );
    }
}
