//! Recommendation models over a CSR interaction matrix, the splits they are evaluated on and
//! the ranking metrics they are judged by.
//!
//! - [`Interactions`]: users × items confidence matrix (CSR, f32) with its id maps.
//! - [`split`]: per-user random (seeded) and per-user temporal hold-out.
//! - [`metrics`]: precision, recall, nDCG (log2 discount), MAP at k, and catalog coverage, with
//!   items seen in training excluded, binary relevance, averaged over test users.
//! - Models: [`Popularity`], [`Trending`], implicit ALS ([`Als`], Hu-Koren-Volinsky with a conjugate-gradient
//!   solver), [`Ease`] (Steck 2019, dense solve with faer), [`ItemKnn`] (cosine). Every model
//!   implements [`Scorer`].
//! - [`Bpr`] (pairwise matrix factorisation) and [`TwoTower`] (user tower over recent items,
//!   item tower over id and content [`features`], so new items get vectors): their plain-Rust
//!   scoring and artifacts. They are trained with burn in the `marquee-neural` crate, which
//!   this one does not link, so the server never compiles burn.
//!
//! - [`artifact`]: a fitted model on disk (manifest.json, safetensors, id maps, checksums).
//! - [`cold`]: cold-start evaluation on items held out of training entirely.
//! - [`search`]: grid search on a validation split cut from training (never the test split).
//!
//! This crate knows nothing of storage, HTTP, Polars, burn or linfa, and has no optional
//! features: cargo unifies features across a workspace build, so a heavy feature here would
//! reach `serve`. Threading: fitting and evaluation use
//! rayon's global pool; fitted models are immutable and `Send + Sync`.

mod als;
pub mod artifact;
pub mod cold;
mod ease;
pub mod features;
mod item_item;
mod knn;
mod matrix;
pub mod metrics;
mod popularity;
mod quant;
pub mod sasrec;
pub mod search;
pub mod split;
mod topk;
mod towers;

pub use als::{Als, AlsParams, dot, factor_scores};
pub use artifact::{Artifact, ArtifactError, Manifest, Model};
pub use ease::{Ease, EaseParams, MAX_EASE_ITEMS};
pub use item_item::ItemItem;
pub use knn::{ItemKnn, ItemKnnParams};
pub use matrix::{IdMap, Interactions, Row};
pub use popularity::{Popularity, Trending, TrendingParams};
pub use quant::{QuantScratch, QuantizedFactors};
pub use sasrec::{Sasrec, SasrecBlock, SasrecLoss, SasrecParams};
pub use topk::top_k;
pub use towers::{Bpr, BprParams, TwoTower, TwoTowerParams};

/// What went wrong while fitting or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid parameter {name}: {message}")]
    Parameter { name: &'static str, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("the numeric solve failed: {0}")]
    Numeric(String),
    #[error("the interaction matrix is empty")]
    Empty,
    #[error("the interactions carry no timestamps, which this model needs")]
    NoTimes,
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Unsupported(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fitted model that scores every item for a user.
pub trait Scorer: Send + Sync {
    /// A short name (`popularity`, `als`, `ease`).
    fn name(&self) -> &'static str;
    /// Number of items scored.
    fn n_items(&self) -> usize;
    /// Writes a score for every item into `out` (length [`Scorer::n_items`]) for the user with
    /// row index `user` in the training matrix, whose training interactions are `history`.
    fn score(&self, user: usize, history: Row<'_>, out: &mut [f32]);
    /// Scores several users at once: `out` holds one row of [`Scorer::n_items`] scores per
    /// entry of `users` (row indices of `train`, whose rows are their histories). One by one
    /// here; factor models override it with one matrix product, which reads the item
    /// vectors once for all the users instead of once per user.
    fn score_many(&self, users: &[usize], train: &Interactions, out: &mut [f32]) {
        let n = self.n_items();
        for (&u, row) in users.iter().zip(out.chunks_exact_mut(n.max(1))) {
            self.score(u, train.row(u), row);
        }
    }
}
