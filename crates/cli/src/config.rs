//! The training configuration: a TOML file (`training/*.toml`) with `--set key=value`
//! overrides on top. Every field has a default, so an empty file (or none) is a valid
//! configuration; unknown keys are refused with the list of known ones.

use anyhow::{Context, Result, bail};
use marquee_models::search::Candidate;
use marquee_models::{
    AlsParams, BprParams, EaseParams, ItemKnnParams, SasrecLoss, SasrecParams, TrendingParams,
    TwoTowerParams,
};
use marquee_pipelines::{EventWeights, InteractionSettings};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A value or a grid of values: `64`, `[32, 64]`, or (from `--set`) `"32,64"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct List<T>(pub Vec<T>);

impl<'de, T> Deserialize<'de> for List<T>
where
    T: Deserialize<'de> + FromStr,
    T::Err: std::fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<T> {
            Many(Vec<T>),
            Text(String),
            One(T),
        }
        let values = match Raw::<T>::deserialize(d)? {
            Raw::Many(v) => v,
            Raw::One(v) => vec![v],
            Raw::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<T>()
                        .map_err(|e| serde::de::Error::custom(format!("{p:?}: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        if values.is_empty() {
            return Err(serde::de::Error::custom("needs at least one value"));
        }
        Ok(Self(values))
    }
}

/// Where the training data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The store at `DATABASE_URL` (events and orders).
    #[default]
    Store,
    /// A MovieLens folder.
    Movielens,
    /// A CSV or Parquet file with `user,item[,rating,timestamp]`.
    Interactions,
    /// UCI Online Retail (.parquet or .csv).
    OnlineRetail,
    /// OTTO sessions (.jsonl or events.csv).
    Otto,
    /// A store folder of this project (e.g. notebooks-data/demo-store).
    StoreDir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    /// The file or folder, for every kind but `store`; relative paths are taken from the
    /// current directory.
    pub path: Option<PathBuf>,
}

/// How interactions are built from events and orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    pub weights: EventWeights,
    /// Age at which a behaviour counts half; 0 for no decay.
    pub half_life_days: f64,
    pub use_orders: bool,
    /// Treat every (user, item) pair as 1, whatever its weight.
    pub binary: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            weights: EventWeights::default(),
            half_life_days: 0.0,
            use_orders: true,
            binary: false,
        }
    }
}

impl Features {
    pub fn settings(&self) -> InteractionSettings {
        InteractionSettings {
            weights: self.weights,
            half_life_days: (self.half_life_days > 0.0).then_some(self.half_life_days),
            use_orders: self.use_orders,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    /// Per user, a seeded random fraction is held out.
    #[default]
    Random,
    /// Per user, the most recent fraction is held out.
    Temporal,
    /// Per user, the newest interaction is the test item and the one before it the
    /// validation item (the fractions do not apply).
    LeaveLastOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub method: SplitMethod,
    /// Fraction of each user's interactions held out for the test.
    pub test_fraction: f64,
    /// Fraction of each user's training interactions held out to choose parameters.
    pub validation_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            method: SplitMethod::Random,
            test_fraction: 0.2,
            validation_fraction: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendingGrid {
    pub window_days: List<f64>,
}

impl Default for TrendingGrid {
    fn default() -> Self {
        Self {
            window_days: List(vec![7.0]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsGrid {
    pub factors: List<usize>,
    pub iterations: List<usize>,
    pub regularization: List<f32>,
    pub alpha: List<f32>,
    pub cg_steps: List<usize>,
    /// Sweeps of the refit on all data when ALS is chosen, started from the factors of the
    /// model fitted on the training split (a warm start); 0: a cold refit with `iterations`.
    pub refit_iterations: usize,
}

impl Default for AlsGrid {
    fn default() -> Self {
        Self {
            factors: List(vec![64]),
            iterations: List(vec![15]),
            regularization: List(vec![5.0, 20.0]),
            alpha: List(vec![1.0, 2.0]),
            cg_steps: List(vec![3]),
            refit_iterations: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseGrid {
    pub lambda: List<f64>,
    pub neighbors: List<usize>,
    pub weighted: bool,
}

impl Default for EaseGrid {
    fn default() -> Self {
        Self {
            lambda: List(vec![100.0, 250.0, 500.0]),
            neighbors: List(vec![500]),
            weighted: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnGrid {
    pub neighbors: List<usize>,
    pub weighted: bool,
}

impl Default for KnnGrid {
    fn default() -> Self {
        Self {
            neighbors: List(vec![50, 200]),
            weighted: false,
        }
    }
}

/// BPR (trained with burn): every combination of the lists is tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BprGrid {
    pub factors: List<usize>,
    pub epochs: List<usize>,
    pub learning_rate: List<f32>,
    pub regularization: List<f32>,
    pub batch_size: usize,
}

impl Default for BprGrid {
    fn default() -> Self {
        let d = BprParams::default();
        Self {
            factors: List(vec![d.factors]),
            epochs: List(vec![d.epochs]),
            learning_rate: List(vec![d.learning_rate]),
            regularization: List(vec![d.regularization]),
            batch_size: d.batch_size,
        }
    }
}

/// The two-tower model (trained with burn): every combination of the lists is tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwoTowerGrid {
    pub dim: List<usize>,
    pub epochs: List<usize>,
    pub learning_rate: List<f32>,
    pub temperature: List<f32>,
    pub hidden: usize,
    pub batch_size: usize,
    pub negatives: usize,
    pub history: usize,
    pub id_dropout: f32,
    pub buckets: u32,
}

impl Default for TwoTowerGrid {
    fn default() -> Self {
        let d = TwoTowerParams::default();
        Self {
            dim: List(vec![d.dim]),
            epochs: List(vec![d.epochs]),
            learning_rate: List(vec![d.learning_rate]),
            temperature: List(vec![d.temperature]),
            hidden: d.hidden,
            batch_size: d.batch_size,
            negatives: d.negatives,
            history: d.history,
            id_dropout: d.id_dropout,
            buckets: d.buckets,
        }
    }
}

/// SASRec (trained with burn): every combination of the lists is tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SasrecGrid {
    pub dim: List<usize>,
    pub blocks: List<usize>,
    pub epochs: List<usize>,
    pub learning_rate: List<f32>,
    pub dropout: List<f32>,
    pub heads: usize,
    pub max_len: usize,
    pub batch_size: usize,
    pub negatives: usize,
    pub calibration: f32,
    pub loss: SasrecLoss,
}

impl Default for SasrecGrid {
    fn default() -> Self {
        let d = SasrecParams::default();
        Self {
            dim: List(vec![d.dim]),
            blocks: List(vec![d.blocks]),
            epochs: List(vec![d.epochs]),
            learning_rate: List(vec![d.learning_rate]),
            dropout: List(vec![d.dropout]),
            heads: d.heads,
            max_len: d.max_len,
            batch_size: d.batch_size,
            negatives: d.negatives,
            calibration: d.calibration,
            loss: d.loss,
        }
    }
}

/// The model kinds fitted when the config names none: the neural ones (minutes on a CPU for
/// MovieLens-sized data) are asked for by name.
pub const DEFAULT_MODELS: [&str; 5] = ["popularity", "trending", "item_knn", "ease", "als"];

/// Model kinds the trainer knows, in the order they are fitted.
pub const MODEL_KINDS: [&str; 8] = [
    "popularity",
    "trending",
    "item_knn",
    "ease",
    "als",
    "bpr",
    "two_tower",
    "sasrec",
];

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The artifact name: models are written to `<output_dir>/<name>/<version>/`.
    pub name: String,
    pub output_dir: PathBuf,
    pub source: Source,
    pub features: Features,
    pub split: SplitConfig,
    /// Model kinds to fit (popularity is always fitted, as the baseline).
    pub models: List<String>,
    /// Refit and save this kind instead of the one with the best validation nDCG.
    pub select: Option<String>,
    /// Refit the chosen model on all the data before saving (false: save the model fitted on
    /// the training split).
    pub refit: bool,
    /// The cut-off of the headline metrics.
    pub k: usize,
    pub seed: u64,
    /// Write report.html next to the model.
    pub report: bool,
    pub trending: TrendingGrid,
    pub als: AlsGrid,
    pub ease: EaseGrid,
    pub item_knn: KnnGrid,
    pub bpr: BprGrid,
    pub two_tower: TwoTowerGrid,
    pub sasrec: SasrecGrid,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            output_dir: PathBuf::from("models"),
            source: Source::default(),
            features: Features::default(),
            split: SplitConfig::default(),
            models: List(DEFAULT_MODELS.iter().map(|&s| s.to_owned()).collect()),
            select: None,
            refit: true,
            k: 10,
            seed: 42,
            report: true,
            trending: TrendingGrid::default(),
            als: AlsGrid::default(),
            ease: EaseGrid::default(),
            item_knn: KnnGrid::default(),
            bpr: BprGrid::default(),
            two_tower: TwoTowerGrid::default(),
            sasrec: SasrecGrid::default(),
        }
    }
}

/// Parses one `--set` value: TOML if it parses (numbers, booleans, arrays, quoted strings),
/// else the text as a string.
fn parse_value(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.into())),
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

/// Applies `key.path=value` to a TOML table.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, value)) = assignment.split_once('=') else {
        bail!("--set {assignment:?}: expected key=value, e.g. --set als.factors=64");
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment:?}: the key {key:?} has an empty part");
    }
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("--set {assignment:?}: {part:?} is a value, not a section"),
        };
    }
    node.insert(parts[parts.len() - 1].to_owned(), parse_value(value.trim()));
    Ok(())
}

impl TrainConfig {
    /// Reads `path` (if any), applies the overrides, and checks the result.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the training config {}", p.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("{} is not valid TOML", p.display()))?
            }
            None => toml::Table::new(),
        };
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let what = path.map_or_else(
            || "the default config".to_owned(),
            |p| p.display().to_string(),
        );
        let config: Self = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("{what} (with the --set overrides)"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        for m in &self.models.0 {
            if !MODEL_KINDS.contains(&m.as_str()) {
                bail!(
                    "models: unknown model {m:?}; known models are {}",
                    MODEL_KINDS.join(", ")
                );
            }
        }
        if let Some(s) = &self.select
            && !self.models.0.contains(s)
            && s != "popularity"
        {
            bail!(
                "select = {s:?} is not one of the fitted models ({})",
                self.models.0.join(", ")
            );
        }
        for (name, f) in [
            ("split.test_fraction", self.split.test_fraction),
            ("split.validation_fraction", self.split.validation_fraction),
        ] {
            if !(f > 0.0 && f < 1.0) {
                bail!("{name} = {f} must be between 0 and 1 (exclusive)");
            }
        }
        if self.k == 0 {
            bail!("k must be at least 1");
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.name.starts_with('.')
        {
            bail!(
                "name = {:?}: use letters, digits, '-', '_' and '.' (it becomes a folder name)",
                self.name
            );
        }
        if self.source.kind != SourceKind::Store && self.source.path.is_none() {
            bail!(
                "source.path is required for source.kind = {:?}",
                self.source.kind
            );
        }
        Ok(())
    }

    /// The models to fit, popularity first.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds = vec!["popularity"];
        for m in &self.models.0 {
            if !kinds.contains(&m.as_str()) {
                kinds.push(m);
            }
        }
        kinds
    }

    /// Every parameter combination of one model kind.
    pub fn candidates(&self, kind: &str) -> Vec<Candidate> {
        let mut out = Vec::new();
        match kind {
            "popularity" => out.push(Candidate::Popularity),
            "trending" => {
                for &window_days in &self.trending.window_days.0 {
                    out.push(Candidate::Trending(TrendingParams { window_days }));
                }
            }
            "als" => {
                let g = &self.als;
                for &factors in &g.factors.0 {
                    for &iterations in &g.iterations.0 {
                        for &regularization in &g.regularization.0 {
                            for &alpha in &g.alpha.0 {
                                for &cg_steps in &g.cg_steps.0 {
                                    out.push(Candidate::Als(AlsParams {
                                        factors,
                                        iterations,
                                        regularization,
                                        alpha,
                                        cg_steps,
                                        seed: self.seed,
                                    }));
                                }
                            }
                        }
                    }
                }
            }
            "ease" => {
                for &lambda in &self.ease.lambda.0 {
                    for &neighbors in &self.ease.neighbors.0 {
                        out.push(Candidate::Ease(EaseParams {
                            lambda,
                            weighted: self.ease.weighted,
                            neighbors,
                        }));
                    }
                }
            }
            "item_knn" => {
                for &neighbors in &self.item_knn.neighbors.0 {
                    out.push(Candidate::ItemKnn(ItemKnnParams {
                        neighbors,
                        weighted: self.item_knn.weighted,
                    }));
                }
            }
            "bpr" => {
                let g = &self.bpr;
                for &factors in &g.factors.0 {
                    for &epochs in &g.epochs.0 {
                        for &learning_rate in &g.learning_rate.0 {
                            for &regularization in &g.regularization.0 {
                                out.push(Candidate::Bpr(BprParams {
                                    factors,
                                    epochs,
                                    learning_rate,
                                    regularization,
                                    batch_size: g.batch_size,
                                    seed: self.seed,
                                }));
                            }
                        }
                    }
                }
            }
            "two_tower" => {
                let g = &self.two_tower;
                for &dim in &g.dim.0 {
                    for &epochs in &g.epochs.0 {
                        for &learning_rate in &g.learning_rate.0 {
                            for &temperature in &g.temperature.0 {
                                out.push(Candidate::TwoTower(TwoTowerParams {
                                    dim,
                                    hidden: g.hidden,
                                    epochs,
                                    learning_rate,
                                    batch_size: g.batch_size,
                                    negatives: g.negatives,
                                    history: g.history,
                                    id_dropout: g.id_dropout,
                                    buckets: g.buckets,
                                    temperature,
                                    seed: self.seed,
                                }));
                            }
                        }
                    }
                }
            }
            "sasrec" => {
                let g = &self.sasrec;
                for &dim in &g.dim.0 {
                    for &blocks in &g.blocks.0 {
                        for &epochs in &g.epochs.0 {
                            for &learning_rate in &g.learning_rate.0 {
                                for &dropout in &g.dropout.0 {
                                    out.push(Candidate::Sasrec(SasrecParams {
                                        dim,
                                        blocks,
                                        heads: g.heads,
                                        max_len: g.max_len,
                                        epochs,
                                        learning_rate,
                                        batch_size: g.batch_size,
                                        negatives: g.negatives,
                                        calibration: g.calibration,
                                        loss: g.loss,
                                        dropout,
                                        seed: self.seed,
                                    }));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_any_value_and_unknown_keys_are_refused() {
        let c = TrainConfig::load(
            None,
            &[
                "models=als,ease".into(),
                "als.factors=32".into(),
                "ease.lambda=[10, 20]".into(),
                "item_knn.neighbors=5,6".into(),
                "refit=false".into(),
                "source.kind=movielens".into(),
                "source.path=../shared/data/movielens-latest-small".into(),
                "output_dir=/tmp/x".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.models.0, ["als", "ease"]);
        assert_eq!(c.kinds(), ["popularity", "als", "ease"]);
        assert_eq!(c.als.factors.0, [32]);
        assert_eq!(c.ease.lambda.0, [10.0, 20.0]);
        assert_eq!(c.item_knn.neighbors.0, [5, 6]);
        assert!(!c.refit);
        assert_eq!(c.source.kind, SourceKind::Movielens);
        assert_eq!(c.output_dir, PathBuf::from("/tmp/x"));
        // 1 factor × 1 iteration count × 2 λ × 2 α × 1 step count.
        assert_eq!(c.candidates("als").len(), 4);

        let s = TrainConfig::load(
            None,
            &[
                "models=sasrec".into(),
                "split.method=leave_last_out".into(),
                "sasrec.dim=[32, 64]".into(),
                "sasrec.max_len=20".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.kinds(), ["popularity", "sasrec"]);
        assert_eq!(s.split.method, SplitMethod::LeaveLastOut);
        let sasrec = s.candidates("sasrec");
        assert_eq!(sasrec.len(), 2);
        assert!(matches!(sasrec[1], Candidate::Sasrec(p) if p.dim == 64 && p.max_len == 20));
        // The table shows the parameters as set, not their f64 widening.
        let shown = crate::train::params_text(&sasrec[1]);
        assert!(
            shown.contains("dropout=0.2 ") && shown.contains("learning_rate=0.001 "),
            "{shown}"
        );

        let err = |set: &str| format!("{:#}", TrainConfig::load(None, &[set.into()]).unwrap_err());
        assert!(err("als.factor=3").contains("unknown field `factor`"));
        assert!(err("models=als,svd").contains("unknown model \"svd\""));
        assert!(err("als.factors=many").contains("\"many\""));
        assert!(err("split.test_fraction=1.5").contains("split.test_fraction"));
        assert!(err("nokey").contains("key=value"));
        assert!(err("source.kind=movielens").contains("source.path is required"));
        assert!(err("name=../escape").contains("name"));
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../training");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                TrainConfig::load(Some(&path), &[]).unwrap();
                seen += 1;
            }
        }
        assert!(
            seen >= 4,
            "expected default.toml and one config per shared data set"
        );
    }
}
