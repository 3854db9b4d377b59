//! The serving core, without HTTP: it holds the active model artifact and the catalog facts
//! the business rules need, and answers recommendation requests.
//!
//! - [`Engine::open`] loads the artifact a path names (a version folder, or a model folder's
//!   `latest`); [`Engine::swap`] loads another one completely and only then replaces the
//!   active one atomically (requests in flight finish on the model they started with); a
//!   damaged artifact is refused and the old one keeps serving.
//! - [`Engine::activate`] swaps a version in and records it in the model folder's `active`
//!   file; [`Engine::follow_active`], called regularly, swaps in what another replica activated.
//! - [`Engine::recommend`]: the user's training history plus the events that arrived after
//!   training (weighted with the model's own [`EventWeights`]) are scored: ALS folds them into
//!   a fresh user vector (an exact solve of the user's least-squares problem against the item
//!   factors), EASE and item-kNN score the combined history directly. Items the user already
//!   has, hidden items and out-of-stock items are left out (the first two unless asked), and
//!   the filters (category, price range, explicit exclusions) apply. A user with no history
//!   gets trending items (cold start).
//!   BPR folds fresh events in the same way (against its item vectors); the two-tower model
//!   runs its user tower (exported weights, plain Rust) over the combined history. With a
//!   two-tower model, catalog items it was not trained on are placed by their content
//!   features (vectors computed when the catalog changes) and compete in personal answers.
//!   Factor-model (ALS, BPR, two-tower) catalogs of 4,096 items or more are scored in two
//!   passes: int8 factors for every item, exact f32 for the best k + 16, kept only when
//!   provably the exact answer (else every item is scored exactly). EASE and item-kNN models
//!   of up to 2,048 items score over dense rows.
//! - [`Engine::session`]: an anonymous visitor's recent items, scored through item-kNN.
//! - [`Engine::similar`]: an item's nearest items (cosine over co-occurrence in the history).
//! - [`Engine::home`]: Netflix-style rows: top picks, "because you watched X", "New in
//!   <category>" (the newest catalog items of the category of the user's latest item, known
//!   to the model or not), trending.
//! - Every answer names the model version that produced it, and personal recommendations say
//!   which of the user's items they come from ("because you watched X").
//!
//! Modules: `answer` (what is answered, filters, explanations), `loaded` (a loaded model and
//! the catalog facts), `swap` (open, swap, activate, follow), `rank` (scoring and top k),
//! `home` (rows), `fold` (least-squares fold-in).
//!
//! Ids are the domain's [`UserId`] and [`ItemId`]: the caller validates what it received once,
//! at its edge.
//!
//! Threading: the engine is `Send + Sync`; readers never block writers or each other.

mod answer;
mod facts;
mod fold;
mod home;
mod loaded;
mod placement;
mod purchases;
mod rank;
mod rules;
mod swap;

pub use answer::{Answer, Basis, CompactString, Filters, HomeRow, Reason, Recommendation};
/// The manifest of a model artifact (for listings of model versions).
pub use marquee_models::Manifest;
pub use placement::{
    Boost, Diversity, PlaceRequest, PlacementSpec, Promotion, Rotation, SpecError, Strategy,
};

use arc_swap::ArcSwap;
use loaded::State;
use marquee_domain::Item;
#[cfg(doc)]
use marquee_domain::{ItemId, UserId};
use marquee_models::ArtifactError;
use std::path::PathBuf;

/// The largest `k` a request may ask for.
pub const MAX_K: usize = 1_000;

/// Why a request or a model change was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("model {path}: its event weights are unreadable: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    #[error("k must be between 1 and {MAX_K}, not {0}")]
    BadK(usize),
    #[error("the active-version file {path}: {message}")]
    Pointer { path: PathBuf, message: String },
    #[error("no placement is named {0:?}")]
    UnknownPlacement(String),
    #[error("placement {name:?} no longer fits the catalog: {error}; save it again")]
    BrokenPlacement { name: String, error: SpecError },
    #[error("the {strategy} strategy needs {needs}")]
    MissingInput {
        strategy: &'static str,
        needs: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The serving engine.
pub struct Engine {
    pub(crate) state: ArcSwap<State>,
    /// The catalog the item facts were last built from, kept for model swaps.
    pub(crate) catalog: ArcSwap<Vec<Item>>,
    /// The `active` file contents and modification time last acted on; held while
    /// activating, so following and activating never interleave.
    pub(crate) followed: std::sync::Mutex<Option<(String, std::time::SystemTime)>>,
    /// The placements served, compiled for the current state.
    pub(crate) placements: ArcSwap<placement::Placements>,
    /// Co-purchases and repeat purchases from orders.
    pub(crate) purchases: ArcSwap<std::sync::RwLock<purchases::Purchases>>,
}
