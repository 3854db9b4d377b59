//! What the API tests share: a small shop with two taste groups (users u0..u19; even users
//! take items a0..a7, odd users b0..b7), an EASE model of it saved as `<dir>/models/shop/v1`
//! (with a `latest` pointer), and a store at `<dir>/s.db` holding the catalog.

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
    let x = Interactions::from_timed_triplets(rows);
    let fitted = Candidate::Ease(EaseParams {
        lambda: 5.0,
        ..EaseParams::default()
    })
    .fit(&x)
    .unwrap();
    let model = dir.path().join("models/shop");
    Artifact::new(
        "shop",
        "v1",
        fitted,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    )
    .save(&model.join("v1"))
    .unwrap();
    std::fs::write(model.join("latest"), "v1\n").unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
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
