//! Hyper-parameter search on a validation split cut from the training data, so the test split
//! is never used to choose a model.

use crate::features::FeatureList;
use crate::metrics::{Metrics, evaluate};
use crate::split::{Split, per_user_random};
use crate::{
    Als, AlsParams, Ease, EaseParams, Error, Interactions, ItemKnn, ItemKnnParams, Model,
    Popularity, Result, Trending, TrendingParams,
};
use crate::{BprParams, SasrecParams, TwoTowerParams};

/// One model with its parameters, to be tried.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Candidate {
    Popularity,
    Trending(TrendingParams),
    Als(AlsParams),
    Ease(EaseParams),
    ItemKnn(ItemKnnParams),
    /// Fitted by `marquee_neural` (burn).
    Bpr(BprParams),
    /// Fitted by `marquee_neural` (burn), with the items' content features.
    TwoTower(TwoTowerParams),
    /// Fitted by `marquee_neural` (burn): the next-item sequence model.
    Sasrec(SasrecParams),
}

impl Candidate {
    /// Fits the candidate on `train`; `on_iteration(done, total)` is called after every ALS
    /// sweep and may return false to stop early. BPR and the two-tower model are trained with
    /// burn, which this crate does not link: `marquee_neural::fit` fits every candidate.
    pub fn fit_with(
        &self,
        train: &Interactions,
        mut on_iteration: impl FnMut(usize, usize) -> bool,
    ) -> Result<Model> {
        Ok(match *self {
            Self::Popularity => Model::Popularity(Popularity::fit(train)),
            Self::Trending(p) => Model::Trending(Trending::fit(train, p)?),
            Self::Als(p) => Model::Als(Als::fit(train, p, &mut on_iteration)?),
            Self::Ease(p) => Model::Ease(Ease::fit(train, p)?),
            Self::ItemKnn(p) => Model::ItemKnn(ItemKnn::fit(train, p)?),
            Self::Bpr(_) | Self::TwoTower(_) | Self::Sasrec(_) => {
                return Err(Error::Unsupported(format!(
                    "{} is trained with burn: fit it with marquee_neural::fit (the `train` binary does)",
                    self.kind()
                )));
            }
        })
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
            Self::Sasrec(_) => "sasrec",
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

/// How a candidate is fitted: `(candidate, train, content features, on_iteration)` to the
/// model and its per-epoch training loss (empty for models without epochs).
/// [`plain_fit`] fits the models of this crate; `marquee_neural::fit` fits every candidate.
pub type Fit<'a> = dyn Fn(
        &Candidate,
        &Interactions,
        Option<&[FeatureList]>,
        &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(Model, Vec<f32>)>
    + Sync
    + 'a;

/// Fits the models of this crate (every candidate but BPR and the two-tower model).
pub fn plain_fit(
    candidate: &Candidate,
    train: &Interactions,
    _features: Option<&[FeatureList]>,
    on_iteration: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(Model, Vec<f32>)> {
    Ok((candidate.fit_with(train, on_iteration)?, Vec::new()))
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
    validate_with(split, None, candidates, k, &plain_fit, keep_going)
}

/// [`validate`] with a fitting function of the caller's (`marquee_neural::fit` for the burn
/// models) and the items' content features, for the two-tower model.
pub fn validate_with(
    split: &Split,
    features: Option<&[FeatureList]>,
    candidates: &[Candidate],
    k: usize,
    fit: &Fit<'_>,
    mut keep_going: impl FnMut(Progress<'_>) -> bool,
) -> Result<Vec<Trial>> {
    let mut trials = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let mut stopped = false;
        let (model, _) = fit(candidate, &split.train, features, &mut |done, total| {
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
