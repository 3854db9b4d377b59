//! Cold-start report of the two-tower model: a share of the items is held out of training
//! entirely ([`marquee_models::cold`]), and the model ranks them for the users who
//! interacted with them from their content features alone, against a genre-popularity
//! baseline and a random ranking.

use crate::Result;
use marquee_models::Interactions;
use marquee_models::cold::{cold_recall, genre_popularity, hold_out_items};

/// What [`two_tower_report`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdReport {
    pub k: usize,
    pub cold_items: usize,
    pub users: usize,
    /// Recall@k over the cold items of the two-tower model (cold vectors from features).
    pub two_tower: f64,
    /// Of the genre-popularity baseline.
    pub genre_popularity: f64,
    /// Expected recall@k of a random ranking: k / cold items.
    pub random: f64,
    pub epochs: Vec<crate::Epoch>,
}

/// Holds out `fraction` of the items of `data`, fits the two-tower model on the rest with the
/// catalog's features, and measures recall@k over the cold items against the baselines.
pub fn two_tower_report(
    data: &Interactions,
    catalog: &[marquee_domain::Item],
    fraction: f64,
    params: marquee_models::TwoTowerParams,
    k: usize,
) -> Result<ColdReport> {
    use marquee_models::features::{FeatureList, features_of_unknown, item_features};
    use std::collections::HashMap;
    let split = hold_out_items(data, fraction, params.seed);
    let by_id: HashMap<&str, &marquee_domain::Item> =
        catalog.iter().map(|i| (i.id.as_str(), i)).collect();
    let features_of = |id: &str| -> FeatureList {
        by_id.get(id).map_or_else(
            || features_of_unknown(params.buckets),
            |item| item_features(item, params.buckets),
        )
    };
    let features: Vec<FeatureList> = split
        .train
        .items
        .ids()
        .iter()
        .map(|id| features_of(id))
        .collect();
    let (model, epochs) = crate::fit_two_tower(&split.train, &features, params, |_| true)?;
    let d = params.dim;
    let cold_vectors: Vec<Vec<f32>> = split
        .cold_items
        .iter()
        .map(|id| model.item_vector_from_features(&features_of(id)))
        .collect();
    let (two_tower, users) = cold_recall(&split, k, |u, out| {
        let x = &model.user_factors[u * d..(u + 1) * d];
        for (o, v) in out.iter_mut().zip(&cold_vectors) {
            *o = v.iter().zip(x).map(|(a, b)| a * b).sum();
        }
    });
    let genres = |id: &str| -> Vec<String> {
        let Some(item) = by_id.get(id) else {
            return Vec::new();
        };
        let mut g: Vec<String> = std::iter::once(&item.category)
            .chain(&item.genres)
            .map(|g| g.trim().to_lowercase())
            .filter(|g| !g.is_empty())
            .collect();
        g.sort_unstable();
        g.dedup();
        g
    };
    let (genre_popularity, _) = cold_recall(&split, k, genre_popularity(&split, genres));
    Ok(ColdReport {
        k,
        cold_items: split.cold_items.len(),
        users,
        two_tower,
        genre_popularity,
        random: (k as f64 / split.cold_items.len().max(1) as f64).min(1.0),
        epochs,
    })
}
