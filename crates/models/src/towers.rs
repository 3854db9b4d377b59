//! The fitted forms of the models trained with burn (crate `marquee-neural`), as plain vectors:
//! serving and evaluation use these and never burn.
//!
//! - [`Bpr`]: matrix factorisation trained with the BPR pairwise loss (Rendle et al. 2009).
//!   The item bias is stored as a last factor column whose user side is 1, so a score is one
//!   dot product, the same top-k path as ALS.
//! - [`TwoTower`]: the user tower is the mean of context embeddings of the user's items passed
//!   through a residual two-layer perceptron; the item tower adds an id embedding and the
//!   hashed content features ([`crate::features`]). An item never seen in training gets its
//!   vector from its features alone ([`TwoTower::item_vector_from_features`]).

use crate::als::factor_scores as scores_for;
use crate::features::FeatureList;
use crate::{Row, Scorer};

/// BPR hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BprParams {
    pub factors: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty on the vectors of each sampled triple.
    pub regularization: f32,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for BprParams {
    fn default() -> Self {
        Self {
            factors: 64,
            epochs: 100,
            learning_rate: 0.005,
            regularization: 1e-3,
            batch_size: 1024,
            seed: 42,
        }
    }
}

/// A fitted BPR model.
#[derive(Debug, Clone, PartialEq)]
pub struct Bpr {
    pub params: BprParams,
    pub n_users: usize,
    pub n_items: usize,
    /// Row-major `n_users × (factors + 1)`; the last column is 1.
    pub user_factors: Vec<f32>,
    /// Row-major `n_items × (factors + 1)`; the last column is the item bias.
    pub item_factors: Vec<f32>,
}

impl Bpr {
    /// Width of a stored vector: the factors and the bias column.
    pub fn width(&self) -> usize {
        self.params.factors + 1
    }
}

impl Scorer for Bpr {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score(&self, user: usize, _history: Row<'_>, out: &mut [f32]) {
        let w = self.width();
        if user < self.n_users {
            scores_for(
                &self.item_factors,
                w,
                &self.user_factors[user * w..(user + 1) * w],
                out,
            );
        } else {
            out.fill(0.0);
        }
    }
}

/// Two-tower hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TwoTowerParams {
    /// Width of user and item vectors.
    pub dim: usize,
    /// Hidden width of the user tower's perceptron.
    pub hidden: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    pub batch_size: usize,
    /// Uniformly sampled negatives shared by a batch (besides the other rows' positives).
    pub negatives: usize,
    /// At most this many of the user's other items feed the user tower in training.
    pub history: usize,
    /// Share of a batch's items whose id embedding is dropped, so the content features learn
    /// to place items alone (what a new item has).
    pub id_dropout: f32,
    /// Hash buckets of the content features.
    pub buckets: u32,
    /// Softmax temperature.
    pub temperature: f32,
    pub seed: u64,
}

impl Default for TwoTowerParams {
    fn default() -> Self {
        Self {
            dim: 64,
            hidden: 128,
            epochs: 20,
            learning_rate: 0.005,
            batch_size: 512,
            negatives: 512,
            history: 32,
            id_dropout: 0.5,
            buckets: 4096,
            temperature: 0.1,
            seed: 42,
        }
    }
}

/// A fitted two-tower model: every weight the towers need, so that serving computes user
/// vectors (from any history) and new items' vectors (from their features) in plain Rust.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoTower {
    pub params: TwoTowerParams,
    pub n_users: usize,
    pub n_items: usize,
    /// Row-major `n_users × dim`: the user tower over each user's training history.
    pub user_factors: Vec<f32>,
    /// Row-major `n_items × dim`: the item tower of every training item (id + features).
    pub item_factors: Vec<f32>,
    /// Row-major `n_items × dim`: item embeddings as the user tower's input.
    pub context: Vec<f32>,
    /// User tower: `h = relu(m W1 + b1)`, `u = m + h W2 + b2`; `W1` is `dim × hidden` and
    /// `W2` `hidden × dim`, row-major.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    /// Row-major `buckets × dim`: the content feature embeddings.
    pub features: Vec<f32>,
}

impl TwoTower {
    /// The user tower over `items` (indices of training items): the mean of their context
    /// embeddings through the perceptron. No items: the tower of the zero vector.
    pub fn user_vector_from(&self, items: impl IntoIterator<Item = usize>) -> Vec<f32> {
        let d = self.params.dim;
        let mut m = vec![0f32; d];
        let mut n = 0usize;
        for i in items {
            if let Some(c) = self.context.get(i * d..(i + 1) * d) {
                for (a, b) in m.iter_mut().zip(c) {
                    *a += b;
                }
                n += 1;
            }
        }
        if n > 0 {
            let inv = 1.0 / n as f32;
            m.iter_mut().for_each(|v| *v *= inv);
        }
        self.tower(&m)
    }

    /// The perceptron of the user tower on a mean context vector `m`.
    pub fn tower(&self, m: &[f32]) -> Vec<f32> {
        let (d, h) = (self.params.dim, self.params.hidden);
        let mut hidden = self.b1.clone();
        for (a, row) in m.iter().zip(self.w1.chunks_exact(h)) {
            for (o, w) in hidden.iter_mut().zip(row) {
                *o += a * w;
            }
        }
        let mut u: Vec<f32> = m.iter().zip(&self.b2).map(|(a, b)| a + b).collect();
        for (a, row) in hidden.iter().zip(self.w2.chunks_exact(d)) {
            let a = a.max(0.0);
            if a != 0.0 {
                for (o, w) in u.iter_mut().zip(row) {
                    *o += a * w;
                }
            }
        }
        u
    }

    /// The item tower for an item known only by its content features (no id embedding).
    pub fn item_vector_from_features(&self, features: &FeatureList) -> Vec<f32> {
        let d = self.params.dim;
        let mut v = vec![0f32; d];
        for &(b, w) in features {
            if let Some(e) = self.features.get(b as usize * d..(b as usize + 1) * d) {
                for (o, x) in v.iter_mut().zip(e) {
                    *o += w * x;
                }
            }
        }
        v
    }
}

impl Scorer for TwoTower {
    fn name(&self) -> &'static str {
        "two_tower"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score(&self, user: usize, history: Row<'_>, out: &mut [f32]) {
        let d = self.params.dim;
        if user < self.n_users {
            scores_for(
                &self.item_factors,
                d,
                &self.user_factors[user * d..(user + 1) * d],
                out,
            );
        } else {
            let u = self.user_vector_from(history.items.iter().map(|&i| i as usize));
            scores_for(&self.item_factors, d, &u, out);
        }
    }
}
