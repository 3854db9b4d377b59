//! What the API tests share: a small shop with two taste groups (users u0..u19; even users
//! take items a0..a7, odd users b0..b7), an EASE model of it saved as `<dir>/models/shop/v1`
//! (with a `latest` pointer), and a store at `<dir>/s.db` (or a given database) holding the
//! catalog.

use marquee_domain::{EventWeights, Item, ItemId};
use marquee_models::search::Candidate;
use marquee_models::{Artifact, EaseParams, Interactions};
use marquee_store::Store;
use std::path::PathBuf;

pub struct Shop {
    /// Keeps the folder alive for the test's duration.
    pub _dir: tempfile::TempDir,
    pub model: PathBuf,
    pub url: String,
    /// The catalog (not every test needs it).
    #[allow(dead_code)]
    pub catalog: Vec<Item>,
}

pub async fn shop() -> Shop {
    shop_in(None).await
}

/// [`shop`] with its store in the database `url` names (`None`: a SQLite file in the folder).
pub async fn shop_in(url: Option<&str>) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let users: Vec<String> = (0..20).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|g| (0..8).map(move |i| format!("{g}{i}")))
        .collect();
    let mut rows = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for k in 0..4 {
            let i = (u % 2) * 8 + (u / 2 + k * 3) % 8;
            rows.push((user.as_str(), items[i].as_str(), 1.0, t0.timestamp_millis()));
        }
    }
    let model = dir.path().join("models/shop");
    save_version(&model, "v1", &rows);
    std::fs::write(model.join("latest"), "v1\n").unwrap();
    let url = url.map_or_else(
        || format!("sqlite://{}", dir.path().join("s.db").display()),
        str::to_owned,
    );
    let store = Store::open(&url).await.unwrap();
    let catalog: Vec<Item> = items
        .iter()
        .map(|i| Item::new(ItemId::new(i.as_str()).unwrap(), i.as_str(), &i[..1], t0))
        .collect();
    store.upsert_items(&catalog).await.unwrap();
    Shop {
        _dir: dir,
        model,
        url,
        catalog,
    }
}

/// Fits EASE on `rows` and saves it as version `version` of the model folder `model`.
pub fn save_version(model: &std::path::Path, version: &str, rows: &[(&str, &str, f32, i64)]) {
    let x = Interactions::from_timed_triplets(rows.to_vec());
    let fitted = Candidate::Ease(EaseParams {
        lambda: 5.0,
        ..EaseParams::default()
    })
    .fit(&x)
    .unwrap();
    Artifact::new(
        "shop",
        version,
        fitted,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    )
    .save(&model.join(version))
    .unwrap();
}
