//! Hyper-parameter search on a validation split cut from the training data, so the test split
//! is never used to choose a model.

use crate::metrics::{Metrics, evaluate};
use crate::split::per_user_random;
use crate::{
    Als, AlsParams, Ease, EaseParams, Interactions, ItemKnn, ItemKnnParams, Popularity, Result,
    Scorer,
};

/// One model with its parameters, to be tried.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Candidate {
    Popularity,
    Als(AlsParams),
    Ease(EaseParams),
    ItemKnn(ItemKnnParams),
}

impl Candidate {
    /// Fits the candidate on `train`.
    pub fn fit(&self, train: &Interactions) -> Result<Box<dyn Scorer>> {
        Ok(match *self {
            Self::Popularity => Box::new(Popularity::fit(train)),
            Self::Als(p) => Box::new(Als::fit(train, p, |_, _| true)?),
            Self::Ease(p) => Box::new(Ease::fit(train, p)?),
            Self::ItemKnn(p) => Box::new(ItemKnn::fit(train, p)?),
        })
    }
}

/// A candidate and its validation metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub candidate: Candidate,
    pub validation: Metrics,
}

/// Cuts `validation_fraction` of every user's training interactions off (seeded), fits each
/// candidate on the rest, and ranks them by validation nDCG@k, best first.
pub fn grid_search(
    train: &Interactions,
    candidates: &[Candidate],
    validation_fraction: f64,
    seed: u64,
    k: usize,
) -> Result<Vec<Trial>> {
    let split = per_user_random(train, validation_fraction, seed);
    let mut trials = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let model = candidate.fit(&split.train)?;
        trials.push(Trial {
            candidate: *candidate,
            validation: evaluate(model.as_ref(), &split.train, &split.test, k),
        });
    }
    trials.sort_by(|a, b| b.validation.ndcg.total_cmp(&a.validation.ndcg));
    Ok(trials)
}
