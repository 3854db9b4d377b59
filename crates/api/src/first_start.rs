//! What `serve` does on the first start of the embedded default, so that a fresh clone serves
//! at once: an empty store is seeded from a store folder (`notebooks-data/demo-store`), and
//! when no model exists a first one is fitted from the store's events and orders and saved in
//! the artifact format. It is a starting point, not an evaluated model: `train` compares
//! models on held-out data and replaces it (the admin API's retrain job runs `train`).
//!
//! The first model is EASE for catalogs up to [`EASE_MAX_ITEMS`] items and ALS above, with
//! default parameters, on the same weighted pairs as training without time decay
//! ([`marquee_domain::PairWeights`]); neither Polars nor the pipelines are linked.

use anyhow::{Context, Result, bail};
use marquee_domain::{EventWeights, PairWeights};
use marquee_models::{Als, AlsParams, Artifact, Ease, EaseParams, Interactions, Model};
use marquee_store::Store;
use std::path::Path;

/// The largest catalog the first model fits with EASE (an items × items solve).
pub const EASE_MAX_ITEMS: usize = 5_000;

/// Rows written per statement batch while seeding.
const CHUNK: usize = 5_000;

/// Seeds an empty store (no items, users, orders or events) from the store folder `dir`, in
/// one transaction. Returns the rows written, or `None` when the store already had data.
pub async fn seed_if_empty(store: &Store, dir: &Path) -> Result<Option<u64>> {
    let c = store.counts().await?;
    if c.items + c.users + c.orders + c.events > 0 {
        return Ok(None);
    }
    let bundle = marquee_datasets::store_dir::read(dir)
        .with_context(|| format!("reading the seed data in {}", dir.display()))?;
    let mut import = store.begin_import().await?;
    let mut rows = 0u64;
    for chunk in bundle.items.chunks(CHUNK) {
        import.upsert_items(chunk).await?;
        rows += chunk.len() as u64;
    }
    for chunk in bundle.users.chunks(CHUNK) {
        import.upsert_users(chunk).await?;
        rows += chunk.len() as u64;
    }
    for chunk in bundle.orders.chunks(CHUNK / 4) {
        import.put_orders(chunk).await?;
        rows += chunk.len() as u64;
    }
    for chunk in bundle.events.chunks(CHUNK) {
        rows += import.insert_events(chunk).await?.inserted;
    }
    import.commit().await?;
    Ok(Some(rows))
}

/// True when `model` (a model folder or a version folder) holds no model at all: no manifest
/// and no `latest` pointer. A damaged model is not "missing": serving refuses it instead.
pub fn model_missing(model: &Path) -> bool {
    !model.join("manifest.json").exists() && !model.join("latest").exists()
}

/// Fits a first model on everything in the store and saves it as a new version of the model
/// folder `model` (with a `latest` pointer). Returns the version.
pub async fn fit_first_model(store: &Store, model: &Path) -> Result<String> {
    let weights = EventWeights::default();
    let mut pairs = PairWeights::new(weights);
    store
        .for_each_event(None, |e| {
            pairs.add_event(&e);
            Ok(())
        })
        .await?;
    store
        .for_each_order(|o| {
            pairs.add_order(&o);
            Ok(())
        })
        .await?;
    let rows = pairs.into_rows();
    if rows.is_empty() {
        bail!(
            "the store has no events or orders to learn from: import some first \
             (`cargo run --release --bin data -- import store notebooks-data/demo-store`)"
        );
    }
    let name = model
        .file_name()
        .and_then(|n| n.to_str())
        .context("the model path has no folder name")?
        .to_owned();
    let model = model.to_owned();
    tokio::task::spawn_blocking(move || -> Result<String> {
        let x = Interactions::from_timed_triplets(
            rows.iter()
                .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
        );
        // The fitters are called directly (not through `search::Candidate`, whose neural
        // branches would pull burn into this binary when a workspace build enables them).
        let fitted = if x.n_items() <= EASE_MAX_ITEMS {
            Model::Ease(Ease::fit(&x, EaseParams::default())?)
        } else {
            Model::Als(Als::fit(&x, AlsParams::default(), |_, _| true)?)
        };
        std::fs::create_dir_all(&model)
            .with_context(|| format!("creating the model folder {}", model.display()))?;
        let version = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        Artifact::new(
            &name,
            &version,
            fitted,
            x,
            "serve first start (all store data, no evaluation)",
            serde_json::Value::Null,
            serde_json::to_value(weights)?,
        )
        .save(&model.join(&version))?;
        let tmp = model.join(format!(".latest.{}", std::process::id()));
        std::fs::write(&tmp, format!("{version}\n"))
            .and_then(|()| std::fs::rename(&tmp, model.join("latest")))
            .with_context(|| format!("writing {}", model.join("latest").display()))?;
        Ok(version)
    })
    .await?
}
