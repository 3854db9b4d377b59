//! Item-kNN: cosine similarity between item columns of the interaction matrix, keeping each
//! item's `neighbors` most similar items; a user's score for an item is the sum of its
//! similarities to the items in the user's history.

use crate::{Error, Interactions, ItemItem, Result, Row, Scorer, top_k};
use rayon::prelude::*;

/// Item-kNN hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ItemKnnParams {
    /// Neighbours kept per item.
    pub neighbors: usize,
    /// Use the interaction weights (true) or 1 for every observed pair (false).
    pub weighted: bool,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        Self {
            neighbors: 100,
            weighted: false,
        }
    }
}

/// A fitted item-kNN model: for every item, its neighbours and their cosine similarities.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemKnn {
    pub params: ItemKnnParams,
    pub graph: ItemItem,
}

impl ItemKnn {
    pub fn fit(train: &Interactions, params: ItemKnnParams) -> Result<Self> {
        if params.neighbors == 0 {
            return Err(Error::Parameter {
                name: "knn.neighbors",
                message: "must be at least 1".into(),
            });
        }
        if train.nnz() == 0 {
            return Err(Error::Empty);
        }
        let value = |w: f32| if params.weighted { w } else { 1.0 };
        let n = train.n_items();
        let by_item = train.transpose();
        let norms: Vec<f32> = (0..n)
            .map(|i| {
                by_item
                    .row(i)
                    .iter()
                    .map(|(_, w)| value(w) * value(w))
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let lists: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0f32; n],
                |dots, i| {
                    dots.fill(0.0);
                    for (u, wi) in by_item.row(i).iter() {
                        for (j, wj) in train.row(u).iter() {
                            dots[j] += value(wi) * value(wj);
                        }
                    }
                    dots[i] = 0.0;
                    for (j, d) in dots.iter_mut().enumerate() {
                        let denom = norms[i] * norms[j];
                        *d = if *d > 0.0 && denom > 0.0 {
                            *d / denom
                        } else {
                            f32::NAN
                        };
                    }
                    top_k(dots, params.neighbors, &[])
                },
            )
            .collect();
        Ok(Self {
            params,
            graph: ItemItem::from_lists(lists),
        })
    }

    /// The neighbours of one item, most similar first.
    pub fn neighbors_of(&self, item: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.graph.neighbors_of(item)
    }
}

impl Scorer for ItemKnn {
    fn name(&self) -> &'static str {
        "item_knn"
    }

    fn n_items(&self) -> usize {
        self.graph.n_items()
    }

    fn score(&self, _user: usize, history: Row<'_>, out: &mut [f32]) {
        self.graph.score(history, self.params.weighted, out);
    }
}
