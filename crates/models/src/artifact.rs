//! A fitted model on disk, as DESIGN.md lays it out:
//!
//! ```text
//! models/<name>/<version>/
//!   manifest.json       kind, version, created_at, data fingerprint, parameters, metrics,
//!                       event weights, schema version, and the SHA-256 of every other file
//!   model.safetensors   the tensors (readable from Python with `safetensors.numpy.load_file`)
//!   users.json          user ids, in row order (JSON array of strings)
//!   items.json          item ids, in column order
//! ```
//!
//! Tensors: the training matrix the model was fitted on (`history.indptr` i64, `history.indices`
//! u32, `history.values` f32, `history.times` i64 — what a user has already seen, and the
//! history item-based models score from), and per kind: `scores` f32 `[items]` (popularity,
//! trending); `user_factors` f32 `[users, f]` and `item_factors` f32 `[items, f]` (ALS);
//! `offsets` i64 `[items + 1]`, `neighbors` u32 and `weights` f32 (EASE, item-kNN);
//! `user_factors` `[users, f + 1]` and `item_factors` `[items, f + 1]` (BPR; the last column
//! is 1 for users and the bias for items); for the two-tower model `user_factors`
//! `[users, d]`, `item_factors` `[items, d]`, and the towers' weights `context` `[items, d]`,
//! `tower.w1` `[d, hidden]`, `tower.b1` `[hidden]`, `tower.w2` `[hidden, d]`, `tower.b2`
//! `[d]`, `features` `[buckets, d]`.
//!
//! [`Artifact::save`] writes into a hidden sibling folder and renames it into place, so a
//! reader never sees half an artifact. [`Artifact::load`] refuses an artifact whose schema
//! version differs from [`SCHEMA_VERSION`], whose files do not match their checksums, or whose
//! tensors do not fit together, naming the file and what is wrong.

use crate::{
    Als, AlsParams, Ease, EaseParams, IdMap, Interactions, ItemItem, ItemKnn, ItemKnnParams,
    Popularity, Row, Scorer, Trending, TrendingParams,
};
use crate::{Bpr, BprParams, Sasrec, SasrecBlock, SasrecParams, TwoTower, TwoTowerParams};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest layout this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const MANIFEST: &str = "manifest.json";
/// The file of a model name folder naming the version activated through the admin API; it
/// wins over `latest`, and serving replicas follow it.
pub const ACTIVE: &str = "active";
const TENSORS: &str = "model.safetensors";
const USERS: &str = "users.json";
const ITEMS: &str = "items.json";

/// Why an artifact could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("model artifact {}: {message}", path.display())]
pub struct ArtifactError {
    pub path: PathBuf,
    pub message: String,
}

fn fail(path: &Path, message: impl Into<String>) -> ArtifactError {
    ArtifactError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// SHA-256 over the training matrix and its id maps ([`fingerprint`]).
    pub fingerprint: String,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// Where the data came from (a store URL without credentials, or a file).
    pub source: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub name: String,
    /// `popularity`, `trending`, `als`, `ease`, `item_knn`, `bpr` or `two_tower`.
    pub kind: String,
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub data: DataInfo,
    /// The model's hyper-parameters (the fields of its params struct).
    pub parameters: serde_json::Value,
    /// Held-out metrics, as the trainer measured them.
    pub metrics: serde_json::Value,
    /// The event weights the interactions were built with; serving folds events in with them.
    pub event_weights: serde_json::Value,
    /// SHA-256 (hex) of every other file of the artifact.
    pub files: BTreeMap<String, String>,
}

/// A fitted model of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Popularity(Popularity),
    Trending(Trending),
    Als(Als),
    Ease(Ease),
    ItemKnn(ItemKnn),
    Bpr(Bpr),
    TwoTower(TwoTower),
    Sasrec(Sasrec),
}

impl Model {
    fn scorer(&self) -> &dyn Scorer {
        match self {
            Self::Popularity(m) => m,
            Self::Trending(m) => m,
            Self::Als(m) => m,
            Self::Ease(m) => m,
            Self::ItemKnn(m) => m,
            Self::Bpr(m) => m,
            Self::TwoTower(m) => m,
            Self::Sasrec(m) => m,
        }
    }

    /// The hyper-parameters as JSON (null for popularity).
    pub fn parameters(&self) -> serde_json::Value {
        let value = match self {
            Self::Popularity(_) => Ok(serde_json::Value::Null),
            Self::Trending(m) => serde_json::to_value(m.params),
            Self::Als(m) => serde_json::to_value(m.params),
            Self::Ease(m) => serde_json::to_value(m.params),
            Self::ItemKnn(m) => serde_json::to_value(m.params),
            Self::Bpr(m) => serde_json::to_value(m.params),
            Self::TwoTower(m) => serde_json::to_value(m.params),
            Self::Sasrec(m) => serde_json::to_value(m.params),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Whether `user` (a row of the training matrix) can be scored by this model. ALS and
    /// BPR need a per-user vector; the others score from the history alone.
    pub fn knows_user(&self, user: usize) -> bool {
        match self {
            Self::Als(m) => user < m.n_users,
            Self::Bpr(m) => user < m.n_users,
            _ => true,
        }
    }

    /// For models that score by one dot product per item (ALS, BPR, two-tower): the item
    /// factors (row-major) and their width.
    pub fn item_factors(&self) -> Option<(&[f32], usize)> {
        match self {
            Self::Als(m) => Some((&m.item_factors, m.params.factors)),
            Self::Bpr(m) => Some((&m.item_factors, m.width())),
            Self::TwoTower(m) => Some((&m.item_factors, m.params.dim)),
            _ => None,
        }
    }

    /// The stored vector of training user `user`, for the factor models.
    pub fn user_vector(&self, user: usize) -> Option<&[f32]> {
        let (factors, w) = match self {
            Self::Als(m) => (&m.user_factors, m.params.factors),
            Self::Bpr(m) => (&m.user_factors, m.width()),
            Self::TwoTower(m) => (&m.user_factors, m.params.dim),
            _ => return None,
        };
        factors.get(user * w..(user + 1) * w)
    }
}

impl Scorer for Model {
    fn name(&self) -> &'static str {
        self.scorer().name()
    }

    fn n_items(&self) -> usize {
        self.scorer().n_items()
    }

    fn score(&self, user: usize, history: Row<'_>, out: &mut [f32]) {
        self.scorer().score(user, history, out);
    }

    fn score_many(&self, users: &[usize], train: &Interactions, out: &mut [f32]) {
        self.scorer().score_many(users, train, out);
    }
}

fn params_err(path: &Path, what: &str) -> ArtifactError {
    fail(path, format!("parameters do not fit a {what} model"))
}

/// SHA-256 (hex) over a matrix: its id maps, shape and every stored pair.
pub fn fingerprint(data: &Interactions) -> String {
    let mut h = Sha256::new();
    for ids in [data.users.ids(), data.items.ids()] {
        h.update((ids.len() as u64).to_le_bytes());
        for id in ids {
            h.update((id.len() as u64).to_le_bytes());
            h.update(id.as_bytes());
        }
    }
    let (indptr, indices, values, times) = data.parts();
    for &p in indptr {
        h.update((p as u64).to_le_bytes());
    }
    for ((&i, &v), &t) in indices.iter().zip(values).zip(times) {
        h.update(i.to_le_bytes());
        h.update(v.to_le_bytes());
        h.update(t.to_le_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A tensor to be written: name, dtype, shape, little-endian bytes.
struct Tensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32s(name: impl Into<String>, shape: Vec<usize>, v: &[f32]) -> Tensor {
    Tensor {
        name: name.into(),
        dtype: Dtype::F32,
        shape,
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn u32s(name: impl Into<String>, v: &[u32]) -> Tensor {
    Tensor {
        name: name.into(),
        dtype: Dtype::U32,
        shape: vec![v.len()],
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn i64s(name: impl Into<String>, v: impl ExactSizeIterator<Item = i64>) -> Tensor {
    let shape = vec![v.len()];
    Tensor {
        name: name.into(),
        dtype: Dtype::I64,
        shape,
        bytes: v.flat_map(i64::to_le_bytes).collect(),
    }
}

fn graph_tensors(g: &ItemItem) -> Vec<Tensor> {
    vec![
        i64s("offsets", g.offsets.iter().map(|&o| o as i64)),
        u32s("neighbors", &g.neighbors),
        f32s("weights", vec![g.weights.len()], &g.weights),
    ]
}

/// A model with its manifest and the training matrix it was fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub manifest: Manifest,
    pub model: Model,
    /// The training interactions (rows are the model's users, columns its items).
    pub history: Interactions,
}

impl Artifact {
    /// Wraps a fitted model and its training matrix; the manifest's data section, kind,
    /// parameters and checksums are derived here and on [`Artifact::save`].
    pub fn new(
        name: &str,
        version: &str,
        model: Model,
        history: Interactions,
        source: &str,
        metrics: serde_json::Value,
        event_weights: serde_json::Value,
    ) -> Self {
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            name: name.to_owned(),
            kind: model.name().to_owned(),
            version: version.to_owned(),
            created_at: chrono::Utc::now(),
            data: DataInfo {
                fingerprint: fingerprint(&history),
                users: history.n_users(),
                items: history.n_items(),
                interactions: history.nnz(),
                source: source.to_owned(),
            },
            parameters: model.parameters(),
            metrics,
            event_weights,
            files: BTreeMap::new(),
        };
        Self {
            manifest,
            model,
            history,
        }
    }

    fn tensors(&self) -> Vec<Tensor> {
        let (indptr, indices, values, times) = self.history.parts();
        let mut t = vec![
            i64s("history.indptr", indptr.iter().map(|&p| p as i64)),
            u32s("history.indices", indices),
            f32s("history.values", vec![values.len()], values),
            i64s("history.times", times.iter().copied()),
        ];
        match &self.model {
            Model::Popularity(m) => t.push(f32s("scores", vec![m.scores.len()], &m.scores)),
            Model::Trending(m) => t.push(f32s("scores", vec![m.scores.len()], &m.scores)),
            Model::Als(m) => {
                let f = m.params.factors;
                t.push(f32s("user_factors", vec![m.n_users, f], &m.user_factors));
                t.push(f32s("item_factors", vec![m.n_items, f], &m.item_factors));
            }
            Model::Ease(m) => t.extend(graph_tensors(&m.graph)),
            Model::ItemKnn(m) => t.extend(graph_tensors(&m.graph)),
            Model::Bpr(m) => {
                let w = m.width();
                t.push(f32s("user_factors", vec![m.n_users, w], &m.user_factors));
                t.push(f32s("item_factors", vec![m.n_items, w], &m.item_factors));
            }
            Model::TwoTower(m) => {
                let (d, h) = (m.params.dim, m.params.hidden);
                let b = m.params.buckets as usize;
                t.push(f32s("user_factors", vec![m.n_users, d], &m.user_factors));
                t.push(f32s("item_factors", vec![m.n_items, d], &m.item_factors));
                t.push(f32s("context", vec![m.n_items, d], &m.context));
                t.push(f32s("tower.w1", vec![d, h], &m.w1));
                t.push(f32s("tower.b1", vec![h], &m.b1));
                t.push(f32s("tower.w2", vec![h, d], &m.w2));
                t.push(f32s("tower.b2", vec![d], &m.b2));
                t.push(f32s("features", vec![b, d], &m.features));
            }
            Model::Sasrec(m) => {
                let (d, n) = (m.params.dim, m.params.max_len);
                t.push(f32s("item_emb", vec![m.n_items + 1, d], &m.item_emb));
                t.push(f32s("pos_emb", vec![n, d], &m.pos_emb));
                for (b, block) in m.blocks.iter().enumerate() {
                    for (name, shape, values) in block.parts(d) {
                        t.push(f32s(format!("block{b}.{name}"), shape, values));
                    }
                }
                t.push(f32s("ln.gamma", vec![d], &m.ln_gamma));
                t.push(f32s("ln.beta", vec![d], &m.ln_beta));
            }
        }
        t
    }

    /// Writes the artifact to `dir`, which must not exist yet. The checksums and kind in the
    /// manifest are filled in here.
    pub fn save(&mut self, dir: &Path) -> Result<(), ArtifactError> {
        if dir.exists() {
            return Err(fail(dir, "already exists; artifacts are never overwritten"));
        }
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(parent, format!("cannot create the folder: {e}")))?;
        let leaf = dir
            .file_name()
            .map_or_else(|| "artifact".into(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{leaf}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let result = self.write_files(&staging).and_then(|()| {
            std::fs::rename(&staging, dir)
                .map_err(|e| fail(dir, format!("cannot move the artifact into place: {e}")))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn write_files(&mut self, dir: &Path) -> Result<(), ArtifactError> {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, format!("cannot create: {e}")))?;
        let tensors = self.tensors();
        let views = tensors
            .iter()
            .map(|t| {
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .map(|v| (t.name.as_str(), v))
                    .map_err(|e| fail(dir, format!("tensor {}: {e}", t.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tensor_bytes = safetensors::serialize(views, None)
            .map_err(|e| fail(dir, format!("cannot encode the tensors: {e}")))?;
        let json = |ids: &[String]| serde_json::to_vec(ids).unwrap_or_default();
        let files = [
            (TENSORS, tensor_bytes),
            (USERS, json(self.history.users.ids())),
            (ITEMS, json(self.history.items.ids())),
        ];
        self.manifest.schema_version = SCHEMA_VERSION;
        self.manifest.kind = self.model.name().to_owned();
        self.manifest.parameters = self.model.parameters();
        self.manifest.data.users = self.history.n_users();
        self.manifest.data.items = self.history.n_items();
        self.manifest.data.interactions = self.history.nnz();
        self.manifest.files.clear();
        for (name, bytes) in &files {
            write_synced(&dir.join(name), bytes)?;
            self.manifest
                .files
                .insert((*name).to_owned(), sha256_hex(bytes));
        }
        let manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| fail(dir, format!("cannot encode the manifest: {e}")))?;
        write_synced(&dir.join(MANIFEST), &manifest)
    }

    /// Reads and checks the artifact in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ArtifactError> {
        let manifest_path = dir.join(MANIFEST);
        let bytes = std::fs::read(&manifest_path)
            .map_err(|e| fail(&manifest_path, format!("cannot read: {e}")))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| fail(&manifest_path, format!("not a valid manifest: {e}")))?;
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(fail(
                &manifest_path,
                format!(
                    "schema version {} is not the version this build reads ({SCHEMA_VERSION}); retrain the model",
                    manifest.schema_version
                ),
            ));
        }
        let mut contents = BTreeMap::new();
        for name in [TENSORS, USERS, ITEMS] {
            let path = dir.join(name);
            let bytes =
                std::fs::read(&path).map_err(|e| fail(&path, format!("cannot read: {e}")))?;
            let expected = manifest
                .files
                .get(name)
                .ok_or_else(|| fail(&manifest_path, format!("has no checksum for {name}")))?;
            if sha256_hex(&bytes) != *expected {
                return Err(fail(
                    &path,
                    "checksum does not match the manifest: the file was changed or damaged after training",
                ));
            }
            contents.insert(name, bytes);
        }
        let ids = |name: &str| -> Result<IdMap, ArtifactError> {
            let ids: Vec<String> = serde_json::from_slice(&contents[name])
                .map_err(|e| fail(&dir.join(name), format!("not a JSON array of ids: {e}")))?;
            let map = IdMap::from_ids(ids);
            if has_duplicates(&map) {
                return Err(fail(&dir.join(name), "contains a repeated id"));
            }
            Ok(map)
        };
        let users = ids(USERS)?;
        let items = ids(ITEMS)?;
        let tensor_path = dir.join(TENSORS);
        let st = SafeTensors::deserialize(&contents[TENSORS])
            .map_err(|e| fail(&tensor_path, format!("not a safetensors file: {e}")))?;
        let reader = Reader {
            st: &st,
            path: &tensor_path,
        };
        let (n_users, n_items) = (users.len(), items.len());
        let history = Interactions::from_parts(
            users,
            items,
            reader.usizes("history.indptr")?,
            reader.u32s("history.indices")?,
            reader.f32s("history.values")?,
            reader.i64s("history.times")?,
        )
        .map_err(|e| fail(&tensor_path, format!("history: {e}")))?;
        let params = |what: &str| -> ArtifactError {
            fail(
                &manifest_path,
                format!("parameters do not fit a {what} model"),
            )
        };
        let p = manifest.parameters.clone();
        let model = match manifest.kind.as_str() {
            "popularity" => Model::Popularity(Popularity {
                scores: reader.f32s_of_len("scores", n_items)?,
            }),
            "trending" => Model::Trending(Trending {
                params: serde_json::from_value::<TrendingParams>(p)
                    .map_err(|_| params("trending"))?,
                scores: reader.f32s_of_len("scores", n_items)?,
            }),
            "als" => {
                let params: AlsParams = serde_json::from_value(p).map_err(|_| params("als"))?;
                let f = params.factors;
                Model::Als(Als {
                    params,
                    n_users,
                    n_items,
                    user_factors: reader.f32s_of_len("user_factors", n_users * f)?,
                    item_factors: reader.f32s_of_len("item_factors", n_items * f)?,
                })
            }
            "ease" => Model::Ease(Ease {
                params: serde_json::from_value::<EaseParams>(p).map_err(|_| params("ease"))?,
                graph: reader.graph(n_items)?,
            }),
            "item_knn" => Model::ItemKnn(ItemKnn {
                params: serde_json::from_value::<ItemKnnParams>(p)
                    .map_err(|_| params("item_knn"))?,
                graph: reader.graph(n_items)?,
            }),
            "bpr" => {
                let params: BprParams = serde_json::from_value(p).map_err(|_| params("bpr"))?;
                let w = params.factors.saturating_add(1);
                Model::Bpr(Bpr {
                    params,
                    n_users,
                    n_items,
                    user_factors: reader.f32s_of_len("user_factors", n_users.saturating_mul(w))?,
                    item_factors: reader.f32s_of_len("item_factors", n_items.saturating_mul(w))?,
                })
            }
            "two_tower" => {
                let params: TwoTowerParams =
                    serde_json::from_value(p).map_err(|_| params("two_tower"))?;
                let (d, h) = (params.dim, params.hidden);
                Model::TwoTower(TwoTower {
                    params,
                    n_users,
                    n_items,
                    user_factors: reader.f32s_of_len("user_factors", n_users.saturating_mul(d))?,
                    item_factors: reader.f32s_of_len("item_factors", n_items.saturating_mul(d))?,
                    context: reader.f32s_of_len("context", n_items.saturating_mul(d))?,
                    w1: reader.f32s_of_len("tower.w1", d.saturating_mul(h))?,
                    b1: reader.f32s_of_len("tower.b1", h)?,
                    w2: reader.f32s_of_len("tower.w2", h.saturating_mul(d))?,
                    b2: reader.f32s_of_len("tower.b2", d)?,
                    features: reader
                        .f32s_of_len("features", (params.buckets as usize).saturating_mul(d))?,
                })
            }
            "sasrec" => {
                let params: SasrecParams =
                    serde_json::from_value(p).map_err(|_| params("sasrec"))?;
                let (d, n) = (params.dim, params.max_len);
                if d == 0
                    || n == 0
                    || params.heads == 0
                    || d % params.heads != 0
                    || params.blocks > 16
                {
                    return Err(params_err(&manifest_path, "sasrec"));
                }
                let read = |name: &str, len: usize| -> Result<Vec<f32>, ArtifactError> {
                    let v = reader.f32s_of_len(name, len)?;
                    if v.iter().any(|x| !x.is_finite()) {
                        return Err(fail(
                            &tensor_path,
                            format!("tensor {name} holds a value that is not finite"),
                        ));
                    }
                    Ok(v)
                };
                let mut blocks = Vec::with_capacity(params.blocks);
                for b in 0..params.blocks {
                    let parts = SasrecBlock::shapes(d)
                        .iter()
                        .map(|(name, len)| read(&format!("block{b}.{name}"), *len))
                        .collect::<Result<Vec<_>, _>>()?;
                    blocks.push(SasrecBlock::from_parts(parts));
                }
                let (seq_indptr, seq_items) = crate::sasrec::sequences(&history);
                Model::Sasrec(Sasrec {
                    params,
                    n_users,
                    n_items,
                    item_emb: read("item_emb", (n_items + 1).saturating_mul(d))?,
                    pos_emb: read("pos_emb", n.saturating_mul(d))?,
                    blocks,
                    ln_gamma: read("ln.gamma", d)?,
                    ln_beta: read("ln.beta", d)?,
                    seq_indptr,
                    seq_items,
                })
            }
            other => {
                return Err(fail(
                    &manifest_path,
                    format!("unknown model kind {other:?}"),
                ));
            }
        };
        Ok(Self {
            manifest,
            model,
            history,
        })
    }

    /// The artifact folder `path` names: a version folder (holding manifest.json), or a model
    /// name folder whose `active` file (the version activated through the admin API) or else
    /// `latest` file (the newest trained) names the version.
    pub fn resolve(path: &Path) -> Result<PathBuf, ArtifactError> {
        if path.join(MANIFEST).is_file() {
            return Ok(path.to_owned());
        }
        let active = path.join(ACTIVE);
        let latest = if active.is_file() {
            active
        } else {
            path.join("latest")
        };
        if latest.is_file() {
            let version = std::fs::read_to_string(&latest)
                .map_err(|e| fail(&latest, format!("cannot read: {e}")))?;
            let dir = path.join(version.trim());
            if dir.join(MANIFEST).is_file() {
                return Ok(dir);
            }
            return Err(fail(
                &latest,
                format!(
                    "names version {:?}, which has no manifest.json",
                    version.trim()
                ),
            ));
        }
        if !path.exists() {
            return Err(fail(
                path,
                "does not exist; train a model with `cargo run --release --bin train`",
            ));
        }
        Err(fail(
            path,
            "is neither a model version folder (with manifest.json) nor a model folder (with a `latest` file)",
        ))
    }

    /// Scores and ranks the top `k` items for the user with row `user` of the history,
    /// leaving out the items in their history when `exclude_seen`.
    pub fn recommend(
        &self,
        user: usize,
        k: usize,
        exclude_seen: bool,
        scratch: &mut Vec<f32>,
    ) -> Vec<(u32, f32)> {
        scratch.resize(self.model.n_items(), 0.0);
        let history = self.history.row(user);
        self.model.score(user, history, scratch);
        let excluded: &[u32] = if exclude_seen { history.items } else { &[] };
        crate::top_k(scratch, k, excluded)
    }
}

fn has_duplicates(map: &IdMap) -> bool {
    map.ids()
        .iter()
        .enumerate()
        .any(|(i, id)| map.get(id) != Some(i as u32))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).map_err(|e| fail(path, format!("cannot create: {e}")))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(path, format!("cannot write: {e}")))
}

struct Reader<'a> {
    st: &'a SafeTensors<'a>,
    path: &'a Path,
}

impl Reader<'_> {
    fn raw(&self, name: &str, dtype: Dtype, width: usize) -> Result<&[u8], ArtifactError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|e| fail(self.path, format!("tensor {name}: {e}")))?;
        if t.dtype() != dtype {
            return Err(fail(
                self.path,
                format!("tensor {name} is {:?}, expected {dtype:?}", t.dtype()),
            ));
        }
        let data = t.data();
        if data.len() % width != 0 {
            return Err(fail(
                self.path,
                format!("tensor {name} has a ragged length"),
            ));
        }
        Ok(data)
    }

    fn f32s(&self, name: &str) -> Result<Vec<f32>, ArtifactError> {
        Ok(self
            .raw(name, Dtype::F32, 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn f32s_of_len(&self, name: &str, len: usize) -> Result<Vec<f32>, ArtifactError> {
        let v = self.f32s(name)?;
        if v.len() != len {
            return Err(fail(
                self.path,
                format!("tensor {name} has {} values, expected {len}", v.len()),
            ));
        }
        Ok(v)
    }

    fn u32s(&self, name: &str) -> Result<Vec<u32>, ArtifactError> {
        Ok(self
            .raw(name, Dtype::U32, 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn i64s(&self, name: &str) -> Result<Vec<i64>, ArtifactError> {
        Ok(self
            .raw(name, Dtype::I64, 8)?
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    fn usizes(&self, name: &str) -> Result<Vec<usize>, ArtifactError> {
        self.i64s(name)?
            .into_iter()
            .map(|v| {
                usize::try_from(v)
                    .map_err(|_| fail(self.path, format!("tensor {name} has a negative entry")))
            })
            .collect()
    }

    fn graph(&self, n_items: usize) -> Result<ItemItem, ArtifactError> {
        ItemItem::from_parts(
            n_items,
            self.usizes("offsets")?,
            self.u32s("neighbors")?,
            self.f32s("weights")?,
        )
        .map_err(|e| fail(self.path, e))
    }
}
