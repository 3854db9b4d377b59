//! Hyper-parameter search on a validation split cut from the training data, so the test split
//! is never used to choose a model.

use crate::features::FeatureList;
use crate::metrics::{Metrics, evaluate};
use crate::split::{Split, per_user_random};
use crate::{
    Als, AlsParams, Ease, EaseParams, Error, Interactions, ItemKnn, ItemKnnParams, Model,
    Popularity, Result, Trending, TrendingParams,
};
use crate::{BprParams, TwoTowerParams};

/// One model with its parameters, to be tried.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Candidate {
    Popularity,
    Trending(TrendingParams),
    Als(AlsParams),
    Ease(EaseParams),
    ItemKnn(ItemKnnParams),
    /// Needs the `neural` feature to be fitted.
    Bpr(BprParams),
    /// Needs the `neural` feature and the items' content features to be fitted.
    TwoTower(TwoTowerParams),
}

impl Candidate {
    /// Fits the candidate on `train`; `on_iteration(done, total)` is called after every ALS
    /// sweep and may return false to stop early.
    pub fn fit_with(
        &self,
        train: &Interactions,
        on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<Model> {
        self.fit_full(train, None, on_iteration).map(|(m, _)| m)
    }

    /// Fits the candidate on `train` with the items' content features (the two-tower model
    /// needs them; `features[i]` belongs to item `i` of `train`). `on_iteration(done, total)`
    /// is called after every ALS sweep or neural epoch and may return false to stop early.
    /// Also returns the training loss of every epoch of a neural model (empty otherwise).
    pub fn fit_full(
        &self,
        train: &Interactions,
        features: Option<&[FeatureList]>,
        mut on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<(Model, Vec<f32>)> {
        #[cfg(not(feature = "neural"))]
        let _ = features;
        let model = match *self {
            Self::Popularity => Model::Popularity(Popularity::fit(train)),
            Self::Trending(p) => Model::Trending(Trending::fit(train, p)?),
            Self::Als(p) => Model::Als(Als::fit(train, p, &mut on_iteration)?),
            Self::Ease(p) => Model::Ease(Ease::fit(train, p)?),
            Self::ItemKnn(p) => Model::ItemKnn(ItemKnn::fit(train, p)?),
            #[cfg(feature = "neural")]
            Self::Bpr(p) => {
                let (m, curve) =
                    crate::neural::fit_bpr(train, p, |e| on_iteration(e.epoch, p.epochs))?;
                return Ok((Model::Bpr(m), curve.iter().map(|e| e.loss).collect()));
            }
            #[cfg(feature = "neural")]
            Self::TwoTower(p) => {
                let features = features.ok_or_else(|| Error::Parameter {
                    name: "features",
                    message: "the two-tower model needs the items' content features".into(),
                })?;
                let (m, curve) = crate::neural::fit_two_tower(train, features, p, |e| {
                    on_iteration(e.epoch, p.epochs)
                })?;
                return Ok((Model::TwoTower(m), curve.iter().map(|e| e.loss).collect()));
            }
            #[cfg(not(feature = "neural"))]
            Self::Bpr(_) | Self::TwoTower(_) => {
                return Err(Error::Unsupported(format!(
                    "{} is trained with burn: build with the `neural` feature of marquee-models",
                    self.kind()
                )));
            }
        };
        Ok((model, Vec::new()))
    }

    /// Fits the candidate on `train`.
    pub fn fit(&self, train: &Interactions) -> Result<Model> {
        self.fit_with(train, |_, _| true)
    }

    /// The model kind this candidate fits (`popularity`, `trending`, `als`, `ease`,
    /// `item_knn`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Popularity => "popularity",
            Self::Trending(_) => "trending",
            Self::Als(_) => "als",
            Self::Ease(_) => "ease",
            Self::ItemKnn(_) => "item_knn",
            Self::Bpr(_) => "bpr",
            Self::TwoTower(_) => "two_tower",
        }
    }
}

/// A candidate and its validation metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub candidate: Candidate,
    pub validation: Metrics,
}

/// What [`validate`] reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// An ALS sweep of the current candidate finished.
    Iteration { done: usize, total: usize },
    /// A candidate was fitted and scored.
    Trial(&'a Trial),
}

/// Fits each candidate on `split.train` and scores it on `split.test` (a validation split cut
/// from training), best validation nDCG@k first. `keep_going` hears of every step; returning
/// false stops the search, which then returns [`Error::Interrupted`].
pub fn validate(
    split: &Split,
    candidates: &[Candidate],
    k: usize,
    keep_going: impl FnMut(Progress<'_>) -> bool,
) -> Result<Vec<Trial>> {
    validate_with(split, None, candidates, k, keep_going)
}

/// [`validate`] with the items' content features, for the two-tower model.
pub fn validate_with(
    split: &Split,
    features: Option<&[FeatureList]>,
    candidates: &[Candidate],
    k: usize,
    mut keep_going: impl FnMut(Progress<'_>) -> bool,
) -> Result<Vec<Trial>> {
    let mut trials = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let mut stopped = false;
        let (model, _) = candidate.fit_full(&split.train, features, |done, total| {
            stopped = !keep_going(Progress::Iteration { done, total });
            !stopped
        })?;
        if stopped {
            return Err(Error::Interrupted);
        }
        let trial = Trial {
            candidate: *candidate,
            validation: evaluate(&model, &split.train, &split.test, k),
        };
        if !keep_going(Progress::Trial(&trial)) {
            return Err(Error::Interrupted);
        }
        trials.push(trial);
    }
    trials.sort_by(|a, b| b.validation.ndcg.total_cmp(&a.validation.ndcg));
    Ok(trials)
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
    validate(&split, candidates, k, |_| true)
}
