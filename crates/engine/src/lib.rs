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
//! Threading: the engine is `Send + Sync`; readers never block writers or each other.

mod fold;

/// The manifest of a model artifact (for listings of model versions).
pub use marquee_models::Manifest;

use arc_swap::ArcSwap;
pub use compact_str::CompactString;
use marquee_domain::{Event, EventWeights, Item};
use marquee_models::{
    Artifact, ArtifactError, ItemKnn, ItemKnnParams, Model, Row, Scorer, Trending, TrendingParams,
    top_k,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Business filters of a request. The default leaves out hidden and out-of-stock items and
/// what the user already has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Only items of this category.
    pub category: Option<String>,
    /// Lowest and highest price in minor units (items without a price pass).
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Items never to return.
    pub exclude: Vec<String>,
    /// Also return items the user already interacted with.
    pub include_seen: bool,
    /// Also return out-of-stock items (hidden items are never returned).
    pub include_out_of_stock: bool,
}

/// One recommended item. Ids are compact strings: up to 24 bytes (most item ids) they sit in
/// place, so an answer of ten items costs no allocation per id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recommendation {
    pub item: CompactString,
    pub score: f32,
    /// The item of the user's history this one is most similar to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<CompactString>,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The user's own history (and events since training).
    Personal,
    /// Nothing known of the user: trending items.
    ColdStart,
    /// An anonymous session's recent items.
    Session,
    /// Items similar to one item.
    Similar,
}

/// An answer: the items, best first, and the model version that produced them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Answer {
    pub model_version: String,
    pub basis: Basis,
    pub items: Vec<Recommendation>,
}

/// One row of the home page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HomeRow {
    /// `top_picks`, `because_you_watched`, `new_in_category` or `trending`.
    pub id: &'static str,
    pub title: String,
    /// What the row is about: the watched item (`because_you_watched`) or the category
    /// (`new_in_category`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    pub items: Vec<Recommendation>,
}

/// Catalog facts of one model item.
#[derive(Debug, Clone, Copy)]
struct ItemMeta {
    category: u32,
    price_minor: Option<i64>,
}

const NO_CATEGORY: u32 = u32::MAX;

/// A loaded model with what serving derives from it once.
struct Loaded {
    artifact: Artifact,
    dir: PathBuf,
    weights: EventWeights,
    /// Newest interaction time in the training data (Unix ms): later events are new.
    trained_until: i64,
    /// Users per item in the training data.
    popular: Vec<f32>,
    /// Cold-start ranking: trending over the last 7 days if the data has times, else popular.
    trending: Vec<f32>,
    /// Co-occurrence neighbours, for similar items, sessions and explanations.
    knn: ItemKnn,
    /// ALS and BPR: `YᵀY + λI` (f × f, f64) for the fold-in.
    gram: Option<Vec<f64>>,
    /// EASE and item-kNN with a small, dense item-item matrix: its dense rows and whether
    /// scores weight the history ([`DENSE_MAX_ITEMS`]); the same scores, vectorised.
    dense: Option<(Vec<f32>, bool)>,
    /// Factor models (ALS, BPR, two-tower) with at least [`QUANT_MIN_ITEMS`] items: the item
    /// factors in 8 bits, for a first pass whose best candidates are then scored exactly.
    quant: Option<marquee_models::QuantizedFactors>,
}

/// The fold-in space of a model that folds users in by least squares (ALS, BPR).
fn fold_space(model: &Model) -> Option<fold::FoldSpace<'_>> {
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
const QUANT_MIN_ITEMS: usize = 4_096;

/// Item-item models of at most this many items are scored over dense rows when dense enough
/// (at most 16 MiB of rows).
const DENSE_MAX_ITEMS: usize = 2_048;

impl Loaded {
    fn load(path: &Path) -> Result<Self> {
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
        })
    }

    fn n_items(&self) -> usize {
        self.artifact.history.n_items()
    }
}

/// The active model and the catalog facts aligned with its items.
struct State {
    model: Arc<Loaded>,
    meta: Vec<ItemMeta>,
    categories: HashMap<String, u32>,
    /// Hidden items, and out-of-stock items (model indices).
    hidden: Vec<u32>,
    out_of_stock: Vec<u32>,
    /// Category names by index (the inverse of `categories`).
    category_names: Vec<String>,
    /// Per category, its newest visible in-stock catalog items (known to the model or not),
    /// newest first, at most [`NEWEST_PER_CATEGORY`].
    newest: HashMap<String, Vec<String>>,
    /// Two-tower models: the visible, in-stock catalog items the model was not trained on,
    /// with their vectors from content features alone (computed here, when the catalog or
    /// the model changes, never per request).
    cold: Vec<ColdItem>,
}

/// A catalog item unknown to the model, placed by the two-tower item tower's features.
struct ColdItem {
    id: String,
    category: String,
    price_minor: Option<i64>,
    vector: Vec<f32>,
}

impl ColdItem {
    fn passes(&self, filters: &Filters) -> bool {
        let price = self.price_minor;
        filters
            .category
            .as_ref()
            .is_none_or(|c| *c == self.category)
            && !matches!((filters.min_price, price), (Some(lo), Some(p)) if p < lo)
            && !matches!((filters.max_price, price), (Some(hi), Some(p)) if p > hi)
            && !filters.exclude.contains(&self.id)
    }
}

fn cold_items(model: &Loaded, catalog: &[Item]) -> Vec<ColdItem> {
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
const NEWEST_PER_CATEGORY: usize = 200;

impl State {
    fn new(model: Arc<Loaded>, catalog: &[Item]) -> Self {
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
        Self {
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

/// Per-thread buffers reused by every request, so that a request allocates only its answer
/// (and, for an ALS fold-in, the solve).
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    pairs: Vec<(u32, f32)>,
    items: Vec<u32>,
    values: Vec<f32>,
    blocked: Vec<u32>,
    /// The int8 first pass of a two-pass request.
    quant: marquee_models::QuantScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The serving engine.
pub struct Engine {
    state: ArcSwap<State>,
    /// The catalog the item facts were last built from, kept for model swaps.
    catalog: ArcSwap<Vec<Item>>,
    /// The `active` file contents and modification time last acted on; held while
    /// activating, so following and activating never interleave.
    followed: std::sync::Mutex<Option<(String, std::time::SystemTime)>>,
}

impl Engine {
    /// Loads the model `path` names, with the catalog's facts.
    pub fn open(path: &Path, catalog: Vec<Item>) -> Result<Self> {
        let model = Arc::new(Loaded::load(path)?);
        let state = State::new(model, &catalog);
        Ok(Self {
            state: ArcSwap::from_pointee(state),
            catalog: ArcSwap::from_pointee(catalog),
            followed: std::sync::Mutex::default(),
        })
    }

    /// Swaps in the model version folder `dir` (see [`Engine::swap`]) and records its name in
    /// the model folder's `active` file (written beside it and renamed), so that a restart and
    /// every replica following the folder serve it too. Returns the new version.
    pub fn activate(&self, dir: &Path) -> Result<String> {
        let mut followed = self.followed.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.swap(dir)?;
        let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(Error::Pointer {
                path: dir.to_owned(),
                message: "a model version folder must sit in a model folder".into(),
            });
        };
        let pointer = root.join(marquee_models::artifact::ACTIVE);
        let fail = |e: std::io::Error| Error::Pointer {
            path: pointer.clone(),
            message: format!("cannot write it: {e}; this replica serves {version}, others do not"),
        };
        let tmp = root.join(format!(".active.{}", std::process::id()));
        std::fs::write(&tmp, name.as_encoded_bytes())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &pointer))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                fail(e)
            })?;
        let modified = std::fs::metadata(&pointer)
            .and_then(|m| m.modified())
            .map_err(fail)?;
        *followed = Some((name.to_string_lossy().into_owned(), modified));
        Ok(version)
    }

    /// Swaps in the version the model folder's `active` file names when it changed since the
    /// last look and differs from the one served: how a replica learns of an activation made
    /// through another. Returns the new version when it swapped; a version that fails to load
    /// is reported once (until the file is written again) and the current one keeps serving.
    pub fn follow_active(&self) -> Result<Option<String>> {
        let dir = self.model_dir();
        let Some(root) = dir.parent() else {
            return Ok(None);
        };
        let pointer = root.join(marquee_models::artifact::ACTIVE);
        let fail = |e: std::io::Error| Error::Pointer {
            path: pointer.clone(),
            message: format!("cannot read it: {e}"),
        };
        let modified = match std::fs::metadata(&pointer) {
            Ok(m) => m.modified().map_err(fail)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let mut followed = self.followed.lock().unwrap_or_else(|p| p.into_inner());
        let name = std::fs::read_to_string(&pointer)
            .map_err(fail)?
            .trim()
            .to_owned();
        if followed.as_ref() == Some(&(name.clone(), modified)) {
            return Ok(None);
        }
        *followed = Some((name.clone(), modified));
        if dir
            .file_name()
            .is_some_and(|served| served == name.as_str())
        {
            return Ok(None);
        }
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(Error::Pointer {
                path: pointer.clone(),
                message: format!("{name:?} is not a version name"),
            });
        }
        self.swap(&root.join(&name)).map(Some)
    }

    /// Loads the model `path` names and makes it the active one; on any error the current
    /// model stays active. Returns the new version.
    pub fn swap(&self, path: &Path) -> Result<String> {
        let model = Arc::new(Loaded::load(path)?);
        let version = model.artifact.manifest.version.clone();
        let catalog = self.catalog.load_full();
        self.state.store(Arc::new(State::new(model, &catalog)));
        tracing::info!(%version, "model swapped in");
        Ok(version)
    }

    /// Replaces the catalog facts (stock, visibility, categories, prices).
    pub fn set_catalog(&self, catalog: Vec<Item>) {
        let model = self.state.load().model.clone();
        let state = State::new(model, &catalog);
        self.catalog.store(Arc::new(catalog));
        self.state.store(Arc::new(state));
    }

    /// The active model's version.
    pub fn version(&self) -> String {
        self.state.load().model.artifact.manifest.version.clone()
    }

    /// The active model's kind (`ease`, `als`, ...).
    pub fn kind(&self) -> String {
        self.state.load().model.artifact.manifest.kind.clone()
    }

    /// The active model's folder.
    pub fn model_dir(&self) -> PathBuf {
        self.state.load().model.dir.clone()
    }

    /// The time of the newest interaction the active model was trained on: only events after
    /// it change an answer.
    pub fn trained_until(&self) -> marquee_domain::Timestamp {
        let ms = self.state.load().model.trained_until;
        marquee_domain::Timestamp::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// Whether the active model knows the item.
    pub fn knows_item(&self, item: &str) -> bool {
        self.state
            .load()
            .model
            .artifact
            .history
            .items
            .get(item)
            .is_some()
    }

    /// Recommendations for a user (`None`: an anonymous visitor), with the events the store
    /// holds for them (those newer than the training data count; older ones are already in
    /// the model).
    pub fn recommend(
        &self,
        user: Option<&str>,
        recent: &[Event],
        k: usize,
        filters: &Filters,
    ) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let history = &m.artifact.history;
        let row = user.and_then(|u| history.users.get(u)).map(|u| u as usize);
        let is_fresh = |e: &&Event| e.timestamp.timestamp_millis() > m.trained_until;
        let any_fresh = recent.iter().any(|e| is_fresh(&e));
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores,
                pairs,
                items,
                values,
                blocked,
                quant,
            } = s;
            combine_history(m, row, recent.iter().filter(is_fresh), pairs, items, values);
            if items.is_empty() {
                scores.clone_from(&m.trending);
                let out = rank(&state, scores, &[], k, filters, None, blocked)?;
                return Ok(answer(m, Basis::ColdStart, out));
            }
            let now = Row { items, values };
            scores.resize(m.n_items(), 0.0);
            let seen: &[u32] = if filters.include_seen { &[] } else { items };
            let model = &m.artifact.model;
            if let Some((factors, width)) = model.item_factors() {
                let stored = row
                    .filter(|_| !any_fresh)
                    .and_then(|u| model.user_vector(u));
                let x = match stored {
                    Some(x) => std::borrow::Cow::Borrowed(x),
                    None => std::borrow::Cow::Owned(fresh_user_vector(m, now)),
                };
                let ask = Ask {
                    k,
                    filters,
                    seen,
                    history: now,
                };
                let two_pass = rank_two_pass(&state, &x, &ask, pairs, blocked, quant);
                let out = match two_pass {
                    Some(out) => out,
                    None => {
                        marquee_models::factor_scores(factors, width, &x, scores);
                        rank(&state, scores, seen, k, filters, Some(now), blocked)?
                    }
                };
                let out = with_cold_items(&state, &x, out, k, filters, recent);
                return Ok(answer(m, Basis::Personal, out));
            }
            match &m.dense {
                Some((dense, weighted)) => {
                    marquee_models::ItemItem::score_dense(dense, now, *weighted, scores);
                }
                None => model.score(row.unwrap_or(0), now, scores),
            }
            let out = rank(&state, scores, seen, k, filters, Some(now), blocked)?;
            Ok(answer(m, Basis::Personal, out))
        })
    }

    /// Recommendations for an anonymous session from the items it just viewed.
    pub fn session(&self, recent_items: &[String], k: usize, filters: &Filters) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let known: Vec<u32> = {
            let mut v: Vec<u32> = recent_items
                .iter()
                .filter_map(|i| m.artifact.history.items.get(i))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores,
                values,
                blocked,
                ..
            } = s;
            if known.is_empty() {
                scores.clone_from(&m.trending);
                let items = rank(&state, scores, &[], k, filters, None, blocked)?;
                return Ok(answer(m, Basis::ColdStart, items));
            }
            values.clear();
            values.resize(known.len(), 1.0);
            let now = Row {
                items: &known,
                values,
            };
            scores.resize(m.n_items(), 0.0);
            m.knn.score(0, now, scores);
            // Break ties (and fill empty neighbourhoods) by popularity, a little.
            let top = m.popular.iter().copied().fold(1.0, f32::max);
            for (s, p) in scores.iter_mut().zip(&m.popular) {
                *s += 1e-3 * p / top;
            }
            let seen: &[u32] = if filters.include_seen { &[] } else { &known };
            let items = rank(&state, scores, seen, k, filters, Some(now), blocked)?;
            Ok(answer(m, Basis::Session, items))
        })
    }

    /// The items most similar to `item`.
    pub fn similar(&self, item: &str, k: usize, filters: &Filters) -> Result<Answer> {
        check_k(k)?;
        let state = self.state.load();
        let m = &state.model;
        let i = m
            .artifact
            .history
            .items
            .get(item)
            .ok_or_else(|| Error::UnknownItem(item.to_owned()))?;
        SCRATCH.with_borrow_mut(|s| {
            let Scratch {
                scores, blocked, ..
            } = s;
            scores.resize(m.n_items(), 0.0);
            scores.fill(f32::NAN);
            for (j, s) in m.knn.neighbors_of(i as usize) {
                scores[j] = s;
            }
            let items = rank(&state, scores, &[i], k, filters, None, blocked)?;
            Ok(answer(m, Basis::Similar, items))
        })
    }

    /// The home page: top picks, "because you watched" the user's latest item, and trending.
    pub fn home(&self, user: Option<&str>, recent: &[Event], k: usize) -> Result<Vec<HomeRow>> {
        check_k(k)?;
        let filters = Filters::default();
        let mut rows = Vec::new();
        let picks = self.recommend(user, recent, k, &filters)?;
        if picks.basis == Basis::Personal {
            rows.push(HomeRow {
                id: "top_picks",
                title: "Top picks for you".into(),
                about: None,
                items: picks.items,
            });
        }
        let latest = self.latest_item(user, recent);
        if let Some(latest) = &latest {
            let mut exclude = self.seen_items(user, recent);
            exclude.push(latest.clone());
            let similar = self.similar(
                latest,
                k,
                &Filters {
                    exclude,
                    ..Filters::default()
                },
            )?;
            if !similar.items.is_empty() {
                rows.push(HomeRow {
                    id: "because_you_watched",
                    title: format!("Because you watched {latest}"),
                    about: Some(latest.clone()),
                    items: similar.items,
                });
            }
        }
        let state = self.state.load();
        let m = &state.model;
        if let Some(row) = latest.and_then(|l| new_in_category(&state, &l, user, recent, k, self)) {
            rows.push(row);
        }
        let trending = SCRATCH.with_borrow_mut(|s| {
            s.scores.clone_from(&m.trending);
            rank(
                &state,
                &mut s.scores,
                &[],
                k,
                &filters,
                None,
                &mut s.blocked,
            )
        })?;
        rows.push(HomeRow {
            id: "trending",
            title: "Trending now".into(),
            about: None,
            items: trending,
        });
        Ok(rows)
    }

    /// The user's most recent item: from events since training, else their training history.
    fn latest_item(&self, user: Option<&str>, recent: &[Event]) -> Option<String> {
        let state = self.state.load();
        let m = &state.model;
        let history = &m.artifact.history;
        if let Some(e) = recent
            .iter()
            .filter(|e| {
                e.item
                    .as_ref()
                    .is_some_and(|i| history.items.get(i.as_str()).is_some())
            })
            .max_by_key(|e| e.timestamp)
        {
            return e.item.as_ref().map(|i| i.as_str().to_owned());
        }
        let u = history.users.get(user?)? as usize;
        let row = history.row(u);
        let times = history.row_times(u);
        let at = (0..row.len()).max_by_key(|&j| (times[j], row.items[j]))?;
        Some(history.items.id(row.items[at] as usize).to_owned())
    }

    fn seen_items(&self, user: Option<&str>, recent: &[Event]) -> Vec<String> {
        let state = self.state.load();
        let history = &state.model.artifact.history;
        let mut out: Vec<String> = recent
            .iter()
            .filter_map(|e| e.item.as_ref().map(|i| i.as_str().to_owned()))
            .collect();
        if let Some(u) = user.and_then(|u| history.users.get(u)) {
            out.extend(
                history
                    .row(u as usize)
                    .items
                    .iter()
                    .map(|&i| history.items.id(i as usize).to_owned()),
            );
        }
        out
    }
}

/// "New in <category>": the newest catalog items of the category of `latest` (the user's
/// latest item) that the user has not seen yet; `None` when there are none.
fn new_in_category(
    state: &State,
    latest: &str,
    user: Option<&str>,
    recent: &[Event],
    k: usize,
    engine: &Engine,
) -> Option<HomeRow> {
    let i = state.model.artifact.history.items.get(latest)?;
    let c = state.meta[i as usize].category;
    let category = state.category_names.get(c as usize)?;
    let seen: std::collections::HashSet<String> =
        engine.seen_items(user, recent).into_iter().collect();
    let items: Vec<Recommendation> = state
        .newest
        .get(category)?
        .iter()
        .filter(|id| !seen.contains(*id))
        .take(k)
        .map(|id| Recommendation {
            item: id.as_str().into(),
            score: 0.0,
            because: None,
        })
        .collect();
    (!items.is_empty()).then(|| HomeRow {
        id: "new_in_category",
        title: format!("New in {category}"),
        about: Some(category.clone()),
        items,
    })
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_K {
        return Err(Error::BadK(k));
    }
    Ok(())
}

fn answer(m: &Loaded, basis: Basis, items: Vec<Recommendation>) -> Answer {
    Answer {
        model_version: m.artifact.manifest.version.clone(),
        basis,
        items,
    }
}

/// The user's training row plus the weights of new events, summed per item, pairs at or
/// below zero dropped, sorted by item, into `items` and `values`.
fn combine_history<'e>(
    m: &Loaded,
    row: Option<usize>,
    fresh: impl Iterator<Item = &'e Event>,
    pairs: &mut Vec<(u32, f32)>,
    items: &mut Vec<u32>,
    values: &mut Vec<f32>,
) {
    let history = &m.artifact.history;
    pairs.clear();
    if let Some(u) = row {
        pairs.extend(history.row(u).iter().map(|(i, w)| (i as u32, w)));
    }
    for e in fresh {
        let Some(i) = e.item.as_ref().and_then(|i| history.items.get(i.as_str())) else {
            continue;
        };
        pairs.push((i, m.weights.weight(e.kind, e.value)));
    }
    // A training row is sorted already; only new events need the sort.
    if !pairs.is_sorted_by_key(|&(i, _)| i) {
        pairs.sort_unstable_by_key(|&(i, _)| i);
    }
    items.clear();
    values.clear();
    for &(i, w) in pairs.iter() {
        if items.last() == Some(&i) {
            if let Some(v) = values.last_mut() {
                *v += w;
            }
        } else {
            items.push(i);
            values.push(w);
        }
    }
    let mut keep = 0;
    for n in 0..items.len() {
        if values[n] > 0.0 && values[n].is_finite() {
            items[keep] = items[n];
            values[keep] = values[n];
            keep += 1;
        }
    }
    items.truncate(keep);
    values.truncate(keep);
}

/// Applies the filters to `scores` (a copy when the scores are shared), takes the top k and
/// explains them from `history`.
fn rank(
    state: &State,
    scores: &mut [f32],
    seen: &[u32],
    k: usize,
    filters: &Filters,
    history: Option<Row<'_>>,
    blocked: &mut Vec<u32>,
) -> Result<Vec<Recommendation>> {
    blocked_items(state, seen, filters, blocked);
    // Left out by score (−∞ never ranks), so the top k runs over one unbroken slice and the
    // list needs no sorting.
    for &b in blocked.iter() {
        if let Some(s) = scores.get_mut(b as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
    let top = top_k(scores, k, &[]);
    Ok(recommendations(&state.model, &top, history))
}

/// Into `blocked` (in no order, maybe repeated): the items an answer must leave out — `seen`, hidden
/// items, out-of-stock items unless allowed, the explicit exclusions, and items the category
/// and price filters rule out.
fn blocked_items(state: &State, seen: &[u32], filters: &Filters, blocked: &mut Vec<u32>) {
    let items = &state.model.artifact.history.items;
    blocked.clear();
    blocked.extend_from_slice(seen);
    blocked.extend_from_slice(&state.hidden);
    if !filters.include_out_of_stock {
        blocked.extend_from_slice(&state.out_of_stock);
    }
    blocked.extend(filters.exclude.iter().filter_map(|id| items.get(id)));
    // An unknown category matches no item (NO_CATEGORY − 1 is never assigned).
    let category = filters
        .category
        .as_ref()
        .map(|c| state.categories.get(c).copied().unwrap_or(NO_CATEGORY - 1));
    if category.is_some() || filters.min_price.is_some() || filters.max_price.is_some() {
        for (i, meta) in state.meta.iter().enumerate() {
            let wrong_category = category.is_some_and(|c| meta.category != c);
            let price = meta.price_minor;
            let too_cheap = matches!((filters.min_price, price), (Some(lo), Some(p)) if p < lo);
            let too_dear = matches!((filters.max_price, price), (Some(hi), Some(p)) if p > hi);
            if wrong_category || too_cheap || too_dear {
                blocked.push(i as u32);
            }
        }
    }
}

/// The answer for `top` (model indices and scores, best first), explained from `history`.
fn recommendations(
    m: &Loaded,
    top: &[(u32, f32)],
    history: Option<Row<'_>>,
) -> Vec<Recommendation> {
    let items = &m.artifact.history.items;
    let because = match history {
        Some(h) => explain(m, h, top),
        None => vec![None; top.len()],
    };
    top.iter()
        .zip(because)
        .map(|(&(i, score), because)| Recommendation {
            item: items.id(i as usize).into(),
            score,
            because: because.map(|h| items.id(h as usize).into()),
        })
        .collect()
}

/// The user vector of a factor model for a history it has no stored vector for (a user with
/// events since training, or unknown to the model): ALS and BPR fold it in by least squares,
/// the two-tower model runs its user tower.
fn fresh_user_vector(m: &Loaded, history: Row<'_>) -> Vec<f32> {
    match (&m.artifact.model, fold_space(&m.artifact.model)) {
        (Model::TwoTower(tower), _) => {
            tower.user_vector_from(history.items.iter().map(|&i| i as usize))
        }
        (_, Some(space)) => fold::fold_in(&space, m.gram.as_deref().unwrap_or(&[]), history),
        _ => Vec::new(),
    }
}

/// Merges the catalog items the model was not trained on (two-tower only: placed by their
/// content features) into a personal answer, by the same dot-product score.
fn with_cold_items(
    state: &State,
    x: &[f32],
    mut out: Vec<Recommendation>,
    k: usize,
    filters: &Filters,
    recent: &[Event],
) -> Vec<Recommendation> {
    if state.cold.is_empty() {
        return out;
    }
    let floor = if out.len() < k {
        f32::NEG_INFINITY
    } else {
        out.last().map_or(f32::NEG_INFINITY, |r| r.score)
    };
    let recent_items: std::collections::HashSet<&str> = if filters.include_seen {
        std::collections::HashSet::new()
    } else {
        recent
            .iter()
            .filter_map(|e| e.item.as_ref().map(|i| i.as_str()))
            .collect()
    };
    let seen = |id: &str| recent_items.contains(id);
    let mut added = false;
    for c in &state.cold {
        let score: f32 = c.vector.iter().zip(x).map(|(a, b)| a * b).sum();
        if score > floor && score.is_finite() && c.passes(filters) && !seen(&c.id) {
            out.push(Recommendation {
                item: c.id.as_str().into(),
                score,
                because: None,
            });
            added = true;
        }
    }
    if added {
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.item.cmp(&b.item))
        });
        out.truncate(k);
    }
    out
}

/// What a personal request asks for.
struct Ask<'a> {
    k: usize,
    filters: &'a Filters,
    seen: &'a [u32],
    history: Row<'a>,
}

/// Factor-model top-k in two passes: integer scores for every item from 7-bit factors, then
/// exact f32 scores for the items that could still be in the top k given the integer
/// scores' error bound ([`marquee_models::QuantizedFactors::candidates`]). The answer is the
/// exact top k. `None` (score every item exactly instead) when the user vector is not
/// finite.
fn rank_two_pass(
    state: &State,
    x: &[f32],
    ask: &Ask<'_>,
    pairs: &mut Vec<(u32, f32)>,
    blocked: &mut Vec<u32>,
    scratch: &mut marquee_models::QuantScratch,
) -> Option<Vec<Recommendation>> {
    let q = state.model.quant.as_ref()?;
    let (factors, f) = state.model.artifact.model.item_factors()?;
    blocked_items(state, ask.seen, ask.filters, blocked);
    let exact = |i: u32| marquee_models::dot(&factors[i as usize * f..(i as usize + 1) * f], x);
    q.candidates(x, ask.k, blocked, scratch, &mut { exact }, pairs)?;
    // Non-finite exact scores never answer (as in the one-pass top k).
    pairs.retain(|(_, s)| s.is_finite());
    let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if pairs.len() > ask.k {
        pairs.select_nth_unstable_by(ask.k - 1, by_score);
        pairs.truncate(ask.k);
    }
    pairs.sort_unstable_by(by_score);
    Some(recommendations(&state.model, pairs, Some(ask.history)))
}

thread_local! {
    /// Per item, whether it is in the history being explained; all false between requests.
    static MARKS: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

/// For each item of `top`, the history item most similar to it: the first of its item-kNN
/// neighbours (most similar first) that is in the history, if any.
fn explain(m: &Loaded, history: Row<'_>, top: &[(u32, f32)]) -> Vec<Option<u32>> {
    MARKS.with_borrow_mut(|marks| {
        marks.resize(m.n_items(), false);
        for &h in history.items {
            marks[h as usize] = true;
        }
        let because = top
            .iter()
            .map(|&(i, _)| {
                m.knn
                    .neighbors_of(i as usize)
                    .find(|&(j, _)| marks.get(j).copied().unwrap_or(false))
                    .map(|(j, _)| j as u32)
            })
            .collect();
        for &h in history.items {
            marks[h as usize] = false;
        }
        because
    })
}
