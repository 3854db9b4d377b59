//! The popularity baseline: every user gets the items most users interacted with.

use crate::{Interactions, Row, Scorer};

/// Items scored by how many users interacted with them in training.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    pub scores: Vec<f32>,
}

impl Popularity {
    pub fn fit(train: &Interactions) -> Self {
        Self {
            scores: train.item_counts().into_iter().map(|c| c as f32).collect(),
        }
    }
}

impl Scorer for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score(&self, _user: usize, _history: Row<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}
