//! A/B experiment simulation through the real HTTP API: does an experiment name the better
//! model, with an interval that holds the truth, and does an A/A experiment cry wolf only
//! about 5 % of the time?
//!
//! Per seed:
//! - A planted population: 8 taste groups; 480 items, 60 per group, each with a long-tailed
//!   popularity; 4,000 users, each in one group, with 12 past interactions drawn in
//!   proportion to popularity × (8 if the item is of the user's group, else 1).
//! - Two model versions fitted on that history and saved in a model folder: EASE
//!   (λ = 50, `trained`) and popularity (`popular`). `serve`'s routers listen on a local port,
//!   with a SQLite store holding the catalog.
//! - An experiment through `POST /v1/admin/experiments` on placement `feed`, metric `ctr`:
//!   `popular` (baseline) against `trained`, half each; for `--aa`, `trained` in both arms.
//! - Every visitor (a user, once) asks `GET /v1/recommendations?placement=feed&k=10` and
//!   reads the answer top-down, clicking item i with its planted probability
//!   p(u, i) = 0.01 + 0.02·q(i) + 0.12·[same group]·(0.5 + q(i)) (q: the item's popularity
//!   rank quantile, 1 the most popular) and stopping at the first click; a click is
//!   `POST /v1/events` with the answer's `recommendation_id`, and one click in four is
//!   followed by a purchase event.
//! - The truth: for every visitor, the chance of a click on each model's answer, computed from
//!   the planted probabilities (1 − Π(1 − p)) with the same models in process. The true lift
//!   is the ratio of the two means over the visitors, minus 1.
//! - The result: `GET /v1/admin/experiments/{name}`.
//!
//! ```text
//! cargo run --release -p marquee-api --example ab_simulation              # A/B, seeds 1..=10
//! cargo run --release -p marquee-api --example ab_simulation -- --aa --seeds 40
//! ```

use axum::body::Bytes;
use axum::http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use marquee_api::{AppState, admin_router, storefront_router};
use marquee_domain::rng::SeededRng;
use marquee_domain::{Currency, EventWeights, Item, ItemId, Money, UserId};
use marquee_engine::{Engine, Filters};
use marquee_models::search::Candidate;
use marquee_models::{Artifact, EaseParams, Interactions};
use marquee_store::{ApiKeyRole, Store};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const GROUPS: usize = 8;
const PER_GROUP: usize = 60;
const USERS: usize = 4_000;
const HISTORY: usize = 12;
const K: usize = 10;

struct World {
    group_of_user: Vec<usize>,
    group_of_item: Vec<usize>,
    /// Popularity rank quantile, 1 = the most popular.
    quantile: Vec<f64>,
}

impl World {
    fn new(rng: &mut SeededRng) -> Self {
        let items = GROUPS * PER_GROUP;
        let group_of_item: Vec<usize> = (0..items).map(|i| i % GROUPS).collect();
        let mut order: Vec<usize> = (0..items).collect();
        rng.shuffle(&mut order);
        let mut quantile = vec![0.0; items];
        for (rank, &i) in order.iter().enumerate() {
            quantile[i] = 1.0 - rank as f64 / items as f64;
        }
        let group_of_user = (0..USERS).map(|_| rng.index(GROUPS)).collect();
        Self {
            group_of_user,
            group_of_item,
            quantile,
        }
    }

    fn click(&self, user: usize, item: usize) -> f64 {
        let q = self.quantile[item];
        let same = f64::from(u8::from(
            self.group_of_user[user] == self.group_of_item[item],
        ));
        0.01 + 0.02 * q + 0.12 * same * (0.5 + q)
    }

    /// The chance that a visitor reading `list` top-down clicks something.
    fn answer_ctr(&self, user: usize, list: &[usize]) -> f64 {
        1.0 - list
            .iter()
            .map(|&i| 1.0 - self.click(user, i))
            .product::<f64>()
    }

    fn history(&self, rng: &mut SeededRng) -> Vec<(String, String, f32, i64)> {
        let items = self.quantile.len();
        let mut rows = Vec::new();
        let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
        for u in 0..USERS {
            let weights: Vec<f64> = (0..items)
                .map(|i| {
                    let pop = (1.0 + 20.0 * self.quantile[i]).powi(2);
                    let same = self.group_of_user[u] == self.group_of_item[i];
                    pop * if same { 8.0 } else { 1.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let mut taken = std::collections::HashSet::new();
            while taken.len() < HISTORY {
                let mut x = rng.f64() * total;
                let mut pick = items - 1;
                for (i, w) in weights.iter().enumerate() {
                    if x < *w {
                        pick = i;
                        break;
                    }
                    x -= w;
                }
                if taken.insert(pick) {
                    rows.push((format!("u{u}"), format!("i{pick}"), 1.0, t0));
                }
            }
        }
        rows
    }
}

fn save(root: &Path, version: &str, candidate: Candidate, x: &Interactions) {
    let fitted = candidate.fit(x).expect("fits");
    Artifact::new(
        "sim",
        version,
        fitted,
        x.clone(),
        "ab_simulation",
        Value::Null,
        serde_json::to_value(EventWeights::default()).expect("weights"),
    )
    .save(&root.join(version))
    .expect("saves");
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let res = self.client.request(req).await.expect("answer");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
}

async fn listen(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// One seed's experiment; returns (lift, ci_low, ci_high, p, winner, true lift).
async fn run(seed: u64, aa: bool) -> (f64, f64, f64, f64, Option<String>, f64) {
    let mut rng = SeededRng::new(seed);
    let world = World::new(&mut rng);
    let dir = tempfile::tempdir().expect("temp dir");
    let rows = world.history(&mut rng);
    let x = Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, v, t)| (u.as_str(), i.as_str(), *v, *t)),
    );
    let root = dir.path().join("models/sim");
    save(
        &root,
        "trained",
        Candidate::Ease(EaseParams {
            lambda: 50.0,
            ..EaseParams::default()
        }),
        &x,
    );
    save(&root, "popular", Candidate::Popularity, &x);
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.expect("store");
    let t0 = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let eur = Currency::new("EUR").expect("EUR");
    let catalog: Vec<Item> = (0..world.quantile.len())
        .map(|i| {
            let id = format!("i{i}");
            let mut item = Item::new(
                ItemId::new(id.as_str()).expect("id"),
                &id,
                format!("g{}", world.group_of_item[i]),
                t0,
            );
            item.price = Some(Money::new(1_000, eur));
            item
        })
        .collect();
    store.upsert_items(&catalog).await.expect("catalog");
    let key = store
        .create_api_key(ApiKeyRole::Storefront, "sim")
        .await
        .expect("key")
        .key;
    let admin = store
        .create_api_key(ApiKeyRole::Admin, "sim")
        .await
        .expect("key")
        .key;
    let engine = Arc::new(Engine::open(&root.join("popular"), catalog.clone()).expect("engine"));
    let state = AppState::new(engine, store.clone()).with_pages(false);
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: listen(storefront_router(state.clone())).await,
    };
    let admin_http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: listen(admin_router(state.clone())).await,
    };
    let arms = if aa {
        ["trained", "trained"]
    } else {
        ["popular", "trained"]
    };
    let name = format!("sim-{seed}");
    admin_http
        .call(
            &admin,
            Method::POST,
            "/v1/admin/experiments",
            Some(
                json!({"name": name, "placement": "feed", "metric": "ctr", "variants": [
                    {"name": "a", "model_version": arms[0], "share": 0.5},
                    {"name": "b", "model_version": arms[1], "share": 0.5},
                ]}),
            ),
        )
        .await;

    // The truth: each model's expected click chance per visitor.
    let trained = Engine::open(&root.join("trained"), catalog.clone()).expect("engine");
    let popular = Engine::open(&root.join("popular"), catalog).expect("engine");
    let index = |id: &str| id[1..].parse::<usize>().expect("item index");
    let list = |e: &Engine, u: usize| -> Vec<usize> {
        let user = UserId::new(format!("u{u}")).expect("id");
        e.recommend(Some(&user), &[], K, &Filters::default())
            .expect("answer")
            .items
            .iter()
            .map(|r| index(&r.item))
            .collect()
    };
    let (mut truth_b, mut truth_a) = (0.0, 0.0);
    for u in 0..USERS {
        truth_b += world.answer_ctr(u, &list(&trained, u));
        truth_a += world.answer_ctr(u, &list(if aa { &trained } else { &popular }, u));
    }
    let true_lift = truth_b / truth_a - 1.0;

    // Visitors 32 at a time, each with a random stream of its own (so the run does not
    // depend on the order answers come back in).
    let http = Arc::new(http);
    let world = Arc::new(world);
    let key = Arc::new(key);
    let mut n = 0u64;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for &u in chunk {
            let (http, world, key) = (http.clone(), world.clone(), key.clone());
            let mut rng = SeededRng::new(seed.wrapping_mul(1_000_003).wrapping_add(u as u64));
            tasks.spawn(async move {
                let user = format!("u{u}");
                let answer = http
                    .call(
                        &key,
                        Method::GET,
                        &format!("/v1/recommendations?user_id={user}&k={K}&placement=feed"),
                        None,
                    )
                    .await;
                let variant = answer["variant"].as_str().unwrap_or("none").to_owned();
                for r in answer["items"].as_array().expect("items") {
                    let item = r["item"].as_str().expect("item");
                    let i: usize = item[1..].parse().expect("item index");
                    if rng.chance(world.click(u, i)) {
                        let mut events = vec![json!({"event_id": format!("c{u}"),
                            "user_id": user, "item_id": item, "kind": "click",
                            "recommendation_id": answer["recommendation_id"]})];
                        if rng.chance(0.25) {
                            events.push(json!({"event_id": format!("p{u}"), "user_id": user,
                                "item_id": item, "kind": "purchase",
                                "recommendation_id": answer["recommendation_id"]}));
                        }
                        http.call(
                            &key,
                            Method::POST,
                            "/v1/events",
                            Some(json!({"events": events})),
                        )
                        .await;
                        return (variant, 1);
                    }
                }
                (variant, 0)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (variant, clicked) = done.expect("visitor");
            *seen.entry(variant).or_default() += 1;
            n += clicked;
        }
    }
    state.flush_impressions().await;
    let r = admin_http
        .call(
            &admin,
            Method::GET,
            &format!("/v1/admin/experiments/{name}"),
            None,
        )
        .await;
    let c = &r["comparisons"][0];
    let f = |k: &str| c[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "seed {seed}: {n} clicks; visitors per variant {seen:?}; {}",
        r["verdict"].as_str().unwrap_or("")
    );
    (
        f("lift"),
        f("ci_low"),
        f("ci_high"),
        f("p_value"),
        r["winner"].as_str().map(str::to_owned),
        true_lift,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let aa = args.iter().any(|a| a == "--aa");
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|p| args.get(p + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    println!(
        "{} experiments, {USERS} visitors each, metric ctr",
        if aa {
            "A/A"
        } else {
            "A/B (popular vs trained)"
        }
    );
    println!("seed\tlift\tci_low\tci_high\tp\twinner\ttrue_lift\ttruth_in_ci");
    let (mut flagged, mut covered, mut named) = (0, 0, 0);
    for seed in 1..=seeds {
        let (lift, lo, hi, p, winner, truth) = run(seed, aa).await;
        let inside = lo <= truth && truth <= hi;
        flagged += u64::from(p < 0.05);
        covered += u64::from(inside);
        named += u64::from(winner.as_deref() == Some("b"));
        println!(
            "{seed}\t{lift:+.4}\t{lo:+.4}\t{hi:+.4}\t{p:.4}\t{}\t{truth:+.4}\t{inside}",
            winner.as_deref().unwrap_or("-")
        );
    }
    println!(
        "p < 0.05 in {flagged}/{seeds} ({:.1} %); true lift inside the 95 % interval in {covered}/{seeds}; \
         winner = b (trained) in {named}/{seeds}",
        100.0 * flagged as f64 / seeds as f64
    );
}
