//! A loaded model with what serving derives from it once ([`Loaded`]: event weights, training
//! horizon, popularity and trending, item neighbours, fold-in Gram matrix, dense rows, int8
//! factors), and the catalog facts the business rules read per item ([`State`]: category,
//! price, stock, hidden; items the model never saw, placed by their features).

use crate::answer::Filters;
use crate::{Error, Result, fold};
use marquee_domain::{EventWeights, Item};
use marquee_models::{Artifact, ItemKnn, ItemKnnParams, Model, Trending, TrendingParams};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Catalog facts of one model item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemMeta {
    pub(crate) category: u32,
    pub(crate) price_minor: Option<i64>,
}

pub(crate) const NO_CATEGORY: u32 = u32::MAX;

/// A loaded model with what serving derives from it once.
pub(crate) struct Loaded {
    pub(crate) artifact: Artifact,
    pub(crate) dir: PathBuf,
    pub(crate) weights: EventWeights,
    /// Newest interaction time in the training data (Unix ms): later events are new.
    pub(crate) trained_until: i64,
    /// Users per item in the training data.
    pub(crate) popular: Vec<f32>,
    /// Cold-start ranking: trending over the last 7 days if the data has times, else popular.
    pub(crate) trending: Vec<f32>,
    /// Co-occurrence neighbours, for similar items, sessions and explanations.
    pub(crate) knn: ItemKnn,
    /// ALS and BPR: `YᵀY + λI` (f × f, f64) for the fold-in.
    pub(crate) gram: Option<Vec<f64>>,
    /// EASE and item-kNN with a small, dense item-item matrix: its dense rows and whether
    /// scores weight the history ([`DENSE_MAX_ITEMS`]); the same scores, vectorised.
    pub(crate) dense: Option<(Vec<f32>, bool)>,
    /// Factor models (ALS, BPR, two-tower) with at least [`QUANT_MIN_ITEMS`] items: the item
    /// factors in 8 bits, for a first pass whose best candidates are then scored exactly.
    pub(crate) quant: Option<marquee_models::QuantizedFactors>,
    /// The users of each item (the history's transpose), built when first needed
    /// (`also_viewed`).
    pub(crate) users_of: std::sync::OnceLock<(Vec<u32>, Vec<u32>)>,
}

/// The fold-in space of a model that folds users in by least squares (ALS, BPR).
pub(crate) fn fold_space(model: &Model) -> Option<fold::FoldSpace<'_>> {
    match model {
        Model::Als(als) => Some(fold::FoldSpace {
            factors: &als.item_factors,
            width: als.params.factors,
            regularization: als.params.regularization,
            alpha: als.params.alpha,
        }),
        Model::Bpr(bpr) => Some(fold::FoldSpace {
            factors: &bpr.item_factors,
            width: bpr.width(),
            regularization: fold::BPR_FOLD.0,
            alpha: fold::BPR_FOLD.1,
        }),
        _ => None,
    }
}

/// Factor models (ALS, BPR, two-tower) of at least this many items score in two passes (int8
/// for every item, f32 for the candidates within the int8 error bound of the best); smaller
/// ones in one f32 pass.
pub(crate) const QUANT_MIN_ITEMS: usize = 4_096;

/// Item-item models of at most this many items are scored over dense rows when dense enough
/// (at most 16 MiB of rows).
pub(crate) const DENSE_MAX_ITEMS: usize = 2_048;

impl Loaded {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let dir = Artifact::resolve(path)?;
        let artifact = Artifact::load(&dir)?;
        let weights: EventWeights = serde_json::from_value(artifact.manifest.event_weights.clone())
            .map_err(|e| Error::Weights {
                path: dir.clone(),
                message: e.to_string(),
            })?;
        let history = &artifact.history;
        let trained_until = history.parts().3.iter().copied().max().unwrap_or(0);
        let popular: Vec<f32> = history
            .item_counts()
            .into_iter()
            .map(|c| c as f32)
            .collect();
        let trending = match Trending::fit(history, TrendingParams::default()) {
            Ok(t) if t.scores.iter().any(|&s| s > 0.0) => t.scores,
            _ => popular.clone(),
        };
        let knn = ItemKnn::fit(
            history,
            ItemKnnParams {
                neighbors: 50,
                weighted: false,
            },
        )
        .unwrap_or(ItemKnn {
            params: ItemKnnParams::default(),
            graph: marquee_models::ItemItem::from_lists(vec![Vec::new(); history.n_items()]),
        });
        let gram = fold_space(&artifact.model).map(|space| fold::gram(&space));
        let quant = match artifact.model.item_factors() {
            Some((factors, width)) if factors.len() / width.max(1) >= QUANT_MIN_ITEMS => Some(
                marquee_models::QuantizedFactors::new(factors, factors.len() / width, width),
            ),
            _ => None,
        };
        let dense = match &artifact.model {
            Model::Ease(e) => e
                .graph
                .to_dense(DENSE_MAX_ITEMS)
                .map(|d| (d, e.params.weighted)),
            Model::ItemKnn(k) => k
                .graph
                .to_dense(DENSE_MAX_ITEMS)
                .map(|d| (d, k.params.weighted)),
            _ => None,
        };
        Ok(Self {
            artifact,
            dir,
            weights,
            trained_until,
            popular,
            trending,
            knn,
            gram,
            dense,
            quant,
            users_of: std::sync::OnceLock::new(),
        })
    }

    /// For item `i`: the other items of its users, with how many of its users have each.
    pub(crate) fn co_counts(&self, i: usize) -> HashMap<u32, u32> {
        let history = &self.artifact.history;
        let (offsets, users) = self.users_of.get_or_init(|| {
            let n = history.n_items();
            let mut counts = vec![0u32; n + 1];
            for u in 0..history.n_users() {
                for &j in history.row(u).items {
                    counts[j as usize + 1] += 1;
                }
            }
            for j in 0..n {
                counts[j + 1] += counts[j];
            }
            let mut fill = counts.clone();
            let mut users = vec![0u32; counts[n] as usize];
            for u in 0..history.n_users() {
                for &j in history.row(u).items {
                    users[fill[j as usize] as usize] = u as u32;
                    fill[j as usize] += 1;
                }
            }
            (counts, users)
        });
        let mut out: HashMap<u32, u32> = HashMap::new();
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        for &u in &users[a..b] {
            for &j in history.row(u as usize).items {
                if j as usize != i {
                    *out.entry(j).or_default() += 1;
                }
            }
        }
        out
    }

    pub(crate) fn n_items(&self) -> usize {
        self.artifact.history.n_items()
    }
}

/// The active model and the catalog facts aligned with its items.
pub(crate) struct State {
    pub(crate) model: Arc<Loaded>,
    pub(crate) meta: Vec<ItemMeta>,
    pub(crate) categories: HashMap<String, u32>,
    /// Hidden items, and out-of-stock items (model indices).
    pub(crate) hidden: Vec<u32>,
    pub(crate) out_of_stock: Vec<u32>,
    /// Category names by index (the inverse of `categories`).
    pub(crate) category_names: Vec<String>,
    /// Per category, its newest visible in-stock catalog items (known to the model or not),
    /// newest first, at most [`NEWEST_PER_CATEGORY`].
    pub(crate) newest: HashMap<String, Vec<String>>,
    /// Two-tower models: the visible, in-stock catalog items the model was not trained on,
    /// with their vectors from content features alone (computed here, when the catalog or
    /// the model changes, never per request).
    pub(crate) cold: Vec<ColdItem>,
    /// The catalog facts placement rules read, by fact index (model items first).
    pub(crate) facts: crate::facts::Facts,
    /// Distinguishes states: compiled placements are for one generation.
    pub(crate) generation: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A catalog item unknown to the model, placed by the two-tower item tower's features.
pub(crate) struct ColdItem {
    pub(crate) id: String,
    pub(crate) category: String,
    pub(crate) price_minor: Option<i64>,
    pub(crate) vector: Vec<f32>,
}

impl ColdItem {
    pub(crate) fn passes(&self, filters: &Filters) -> bool {
        let price = self.price_minor;
        filters
            .category
            .as_ref()
            .is_none_or(|c| *c == self.category)
            && !matches!((filters.min_price, price), (Some(lo), Some(p)) if p < lo)
            && !matches!((filters.max_price, price), (Some(hi), Some(p)) if p > hi)
            && !filters.exclude.iter().any(|e| e.as_str() == self.id)
    }
}

pub(crate) fn cold_items(model: &Loaded, catalog: &[Item]) -> Vec<ColdItem> {
    let Model::TwoTower(tower) = &model.artifact.model else {
        return Vec::new();
    };
    let known = &model.artifact.history.items;
    catalog
        .iter()
        .filter(|i| !i.hidden && i.in_stock && known.get(i.id.as_str()).is_none())
        .map(|item| ColdItem {
            id: item.id.as_str().to_owned(),
            category: item.category.clone(),
            price_minor: item.price.map(|p| p.minor),
            vector: tower.item_vector_from_features(&marquee_models::features::item_features(
                item,
                tower.params.buckets,
            )),
        })
        .collect()
}

/// How many of each category's newest items are kept for the "New in" row.
pub(crate) const NEWEST_PER_CATEGORY: usize = 200;

impl State {
    /// The fact index of an item id: its model index, else its place among the catalog
    /// items the model does not know.
    pub(crate) fn fact_index(&self, id: &str) -> Option<usize> {
        self.model
            .artifact
            .history
            .items
            .get(id)
            .or_else(|| self.facts.extra.get(id).copied())
            .map(|i| i as usize)
    }

    pub(crate) fn new(model: Arc<Loaded>, catalog: &[Item]) -> Self {
        let n = model.n_items();
        let mut meta = vec![
            ItemMeta {
                category: NO_CATEGORY,
                price_minor: None,
            };
            n
        ];
        let mut categories: HashMap<String, u32> = HashMap::new();
        let mut hidden = Vec::new();
        let mut out_of_stock = Vec::new();
        let items = &model.artifact.history.items;
        for item in catalog {
            let Some(i) = items.get(item.id.as_str()) else {
                continue;
            };
            let next = categories.len() as u32;
            let category = *categories.entry(item.category.clone()).or_insert(next);
            meta[i as usize] = ItemMeta {
                category,
                price_minor: item.price.map(|p| p.minor),
            };
            if item.hidden {
                hidden.push(i);
            }
            if !item.in_stock {
                out_of_stock.push(i);
            }
        }
        let mut category_names = vec![String::new(); categories.len()];
        for (name, &c) in &categories {
            category_names[c as usize] = name.clone();
        }
        let mut by_category: HashMap<&str, Vec<&Item>> = HashMap::new();
        for item in catalog.iter().filter(|i| !i.hidden && i.in_stock) {
            by_category.entry(&item.category).or_default().push(item);
        }
        let newest = by_category
            .into_iter()
            .map(|(category, mut items)| {
                let newest_first = |a: &&Item, b: &&Item| {
                    (b.created_at, a.id.as_str()).cmp(&(a.created_at, b.id.as_str()))
                };
                if items.len() > NEWEST_PER_CATEGORY {
                    items.select_nth_unstable_by(NEWEST_PER_CATEGORY - 1, newest_first);
                    items.truncate(NEWEST_PER_CATEGORY);
                }
                items.sort_unstable_by(newest_first);
                let ids = items.iter().map(|i| i.id.as_str().to_owned()).collect();
                (category.to_owned(), ids)
            })
            .collect();
        let cold = cold_items(&model, catalog);
        let facts = crate::facts::Facts::new(catalog, n, |id| items.get(id));
        Self {
            facts,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            model,
            meta,
            categories,
            hidden,
            out_of_stock,
            category_names,
            newest,
            cold,
        }
    }
}
