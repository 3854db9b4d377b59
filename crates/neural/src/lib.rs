//! Training of the models that need burn: BPR (pairwise matrix factorisation) and the
//! two-tower model (a user tower over recent items, an item tower over id and content
//! features), on burn's pure-Rust `flex` CPU backend with autodiff and Adam.
//!
//! What a fit produces is plain vectors and tower weights ([`marquee_models::Bpr`],
//! [`marquee_models::TwoTower`]) in the usual artifact format, so serving them needs no burn.
//! This crate is used by the command-line tools only; nothing the server links depends on it
//! (cargo would otherwise compile burn into `serve`).
//!
//! - [`fit`]: fits any grid-search candidate, the burn models here and the rest through
//!   [`marquee_models::search::plain_fit`]; pass it to [`marquee_models::search::validate_with`].
//! - [`fit_bpr`], [`fit_two_tower`], [`fit_sasrec`]: the training loops, with a loss per epoch;
//!   [`burn_next_scores`]: burn's SASRec forward pass for exported weights, the reference of
//!   the plain-Rust one.
//! - [`cold`]: the two-tower model on items held out of training entirely.
//!
//! Threading: burn's CPU backend parallelises tensor operations itself; the functions here
//! are synchronous and run on the caller's thread. Errors are [`marquee_models::Error`]: a fit
//! fails the way every model's fit does.

pub mod cold;
mod train;

pub use marquee_models::{Error, Result};
pub use train::{Epoch, burn_next_scores, fit_bpr, fit_sasrec, fit_two_tower};

use marquee_models::features::FeatureList;
use marquee_models::search::{Candidate, plain_fit};
use marquee_models::{Interactions, Model};

/// Fits `candidate` on `train`: BPR and the two-tower model with burn, every other candidate
/// as [`plain_fit`] does. `features[i]` are the content features of item `i` of `train` (the
/// two-tower model needs them). `on_iteration(done, total)` hears of every ALS sweep or
/// neural epoch and may return false to stop early. Returns the model and the training loss
/// of every epoch of a neural model (empty otherwise).
pub fn fit(
    candidate: &Candidate,
    train: &Interactions,
    features: Option<&[FeatureList]>,
    on_iteration: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(Model, Vec<f32>)> {
    let losses = |curve: Vec<Epoch>| curve.iter().map(|e| e.loss).collect();
    match *candidate {
        Candidate::Bpr(p) => {
            let (m, curve) = fit_bpr(train, p, |e| on_iteration(e.epoch, p.epochs))?;
            Ok((Model::Bpr(m), losses(curve)))
        }
        Candidate::TwoTower(p) => {
            let features = features.ok_or_else(|| Error::Parameter {
                name: "features",
                message: "the two-tower model needs the items' content features".into(),
            })?;
            let (m, curve) =
                fit_two_tower(train, features, p, |e| on_iteration(e.epoch, p.epochs))?;
            Ok((Model::TwoTower(m), losses(curve)))
        }
        Candidate::Sasrec(p) => {
            let (m, curve) = fit_sasrec(train, p, |e| on_iteration(e.epoch, p.epochs))?;
            Ok((Model::Sasrec(m), losses(curve)))
        }
        _ => plain_fit(candidate, train, features, on_iteration),
    }
}
