//! Closing the loop through the routers: events and orders credited to the answers that showed
//! their items, the recommendation KPIs, and experiments (creation, refusals, assignment,
//! results, stop).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use marquee_api::{AppState, admin_router, storefront_router};
use marquee_domain::{Currency, Item, Money};
use marquee_engine::Engine;
use marquee_store::{ApiKeyRole, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) struct Loop {
    pub(crate) shop: crate::common::Shop,
    pub(crate) state: AppState,
    pub(crate) store: Store,
    pub(crate) storefront: axum::Router,
    pub(crate) admin: axum::Router,
    pub(crate) key: String,
    pub(crate) admin_key: String,
}

pub(crate) async fn setup() -> Loop {
    let shop = crate::common::shop().await;
    let store = Store::open(&shop.url).await.unwrap();
    let key = store
        .create_api_key(ApiKeyRole::Storefront, "t")
        .await
        .unwrap()
        .key;
    let admin_key = store
        .create_api_key(ApiKeyRole::Admin, "t")
        .await
        .unwrap()
        .key;
    // Prices, so that orders can be placed.
    let priced: Vec<Item> = shop
        .catalog
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.price = Some(Money::new(1_000, Currency::new("EUR").unwrap()));
            i
        })
        .collect();
    store.upsert_items(&priced).await.unwrap();
    let engine = Engine::open(&shop.model, priced).unwrap();
    let state = AppState::new(Arc::new(engine), store.clone());
    Loop {
        storefront: storefront_router(state.clone()),
        admin: admin_router(state.clone()),
        shop,
        state,
        store,
        key,
        admin_key,
    }
}

pub(crate) async fn call(
    router: &axum::Router,
    key: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Loop {
    pub(crate) async fn shop(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.storefront, &self.key, method, uri, body).await
    }

    pub(crate) async fn admin(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.admin, &self.admin_key, method, uri, body).await
    }

    /// The recommendations of `user` at `placement`, impressions stored.
    async fn shown(&self, user: &str, placement: &str) -> Value {
        let (s, v) = self
            .shop(
                "GET",
                &format!("/v1/recommendations?user_id={user}&k=4&placement={placement}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.state.flush_impressions().await;
        v
    }
}

pub(crate) fn items(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        // With `include=item`, the item is an object with its id.
        .map(|i| {
            i["item"]
                .as_str()
                .or_else(|| i["item"]["id"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn event(id: &str, user: &str, item: &str, kind: &str, shown: Option<&Value>) -> Value {
    let mut e = json!({"event_id": id, "user_id": user, "item_id": item, "kind": kind});
    if let Some(a) = shown {
        e["recommendation_id"] = a["recommendation_id"].clone();
    }
    e
}

/// Hand-made sequences: a click naming its answer is credited to it (not to the later one
/// that showed the item too); a click without one to the latest answer that showed the item
/// to the same user; another user's click of a shown item, or a click of an item no answer
/// showed, to none; an order's lines with their revenue. The KPIs count them per placement.
#[tokio::test]
async fn events_and_orders_are_credited_to_the_answers_that_showed_their_items() {
    let l = setup().await;
    let first = l.shown("u1", "hero").await;
    let second = l.shown("u1", "footer").await;
    let (a, b) = (items(&first), items(&second));
    let common = a
        .iter()
        .find(|i| b.contains(i))
        .expect("the answers share an item")
        .clone();
    let only_first = a.iter().find(|i| !b.contains(i));
    let unshown = l
        .shop_catalog()
        .into_iter()
        .find(|i| !a.contains(i) && !b.contains(i))
        .unwrap();
    let (s, v) = l
        .shop(
            "POST",
            "/v1/events",
            Some(json!({"events": [
                event("c1", "u1", &common, "click", Some(&first)),
                event("c2", "u1", &common, "add_to_cart", None),
                event("c3", "u2", &common, "click", None),
                event("c4", "u1", &unshown, "click", None),
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = l
        .shop(
            "POST",
            "/v1/orders",
            Some(json!({"order_id": "o1", "user_id": "u1", "lines": [
                {"item_id": common, "quantity": 2},
                {"item_id": unshown, "quantity": 1},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (s, kpis) = l
        .admin(
            "GET",
            "/v1/admin/analytics/recommendations?group_by=placement",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{kpis}");
    let row = |p: &str| {
        kpis["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["placement"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("no row {p}: {kpis}"))
    };
    let (hero, footer) = (row("hero"), row("footer"));
    assert_eq!(hero["impressions"], 1);
    assert_eq!(hero["users"], 1);
    assert_eq!(hero["clicks"], 1, "the explicit answer: {hero}");
    assert_eq!(hero["ctr"], 1.0);
    assert_eq!(footer["clicks"], 0, "{footer}");
    assert_eq!(footer["add_to_carts"], 1, "the latest answer: {footer}");
    assert_eq!(
        footer["purchases"], 1,
        "the order line, to the latest answer"
    );
    assert_eq!(
        footer["revenue"], 2_000,
        "2 × 10.00, the unshown line credits nothing"
    );
    assert_eq!(footer["revenue_per_1k_impressions"], 2_000_000.0);

    // An explicit id that did not show the item falls back to the latest answer that did.
    if let Some(item) = only_first {
        let (s, _) = l
            .shop(
                "POST",
                "/v1/events",
                Some(json!({"events": [event("c5", "u1", item, "click", Some(&second))]})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let (_, kpis) = l
            .admin("GET", "/v1/admin/analytics/recommendations", None)
            .await;
        let hero = kpis["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["placement"] == "hero")
            .unwrap()
            .clone();
        assert_eq!(hero["clicks"], 2, "{hero}");
    }

    // By day and by model: one group each, all of it.
    let (_, by_day) = l
        .admin(
            "GET",
            "/v1/admin/analytics/recommendations?group_by=day",
            None,
        )
        .await;
    assert_eq!(by_day["rows"].as_array().unwrap().len(), 1, "{by_day}");
    assert_eq!(by_day["rows"][0]["impressions"], 2);
    let (_, by_model) = l
        .admin(
            "GET",
            "/v1/admin/analytics/recommendations?group_by=model_version",
            None,
        )
        .await;
    assert_eq!(by_model["rows"][0]["model_version"], "v1");

    // Bad input is refused, naming it.
    let (s, v) = l
        .admin(
            "GET",
            "/v1/admin/analytics/recommendations?group_by=week",
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_group_by"))
    );
    let (s, v) = l
        .shop(
            "POST",
            "/v1/events",
            Some(
                json!({"events": [{"event_id": "x", "user_id": "u1", "item_id": "a1",
                                    "kind": "click", "recommendation_id": "nope"}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[0].recommendation_id"),
        "{v}"
    );
}

impl Loop {
    fn shop_catalog(&self) -> Vec<String> {
        self.shop
            .catalog
            .iter()
            .map(|i| i.id.as_str().to_owned())
            .collect()
    }
}

/// An experiment: bad definitions are refused naming what is wrong; a good one assigns each
/// user a variant (the same on every request) whose model answers; results count what each
/// variant showed and what was clicked; stop ends the assignment.
#[tokio::test]
async fn experiments_assign_variants_and_report_results() {
    let l = setup().await;
    // A second version of the model, trained on other rows.
    let rows: Vec<(&str, &str, f32, i64)> = (0..20)
        .flat_map(|u| (0..3).map(move |k| (u, k)))
        .map(|(u, k)| {
            let user: &'static str = Box::leak(format!("u{u}").into_boxed_str());
            let item: &'static str = Box::leak(format!("b{}", (u + k) % 8).into_boxed_str());
            (user, item, 1.0, 0)
        })
        .collect();
    crate::common::save_version(&l.shop.model, "v2", &rows);
    let def = |name: &str, placement: &str, variants: Value| json!({"name": name, "placement": placement, "metric": "ctr", "variants": variants});
    let two = json!([
        {"name": "control", "model_version": "v1", "share": 0.5},
        {"name": "treatment", "model_version": "v2", "share": 0.5},
    ]);
    for (body, status, code, names) in [
        (
            def(
                "e1",
                "recommendations",
                json!([
                    {"name": "a", "model_version": "v1", "share": 0.5},
                    {"name": "b", "model_version": "v2", "share": 0.4},
                ]),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_experiment",
            "sum to 0.9",
        ),
        (
            def(
                "e1",
                "recommendations",
                json!([
                    {"name": "a", "model_version": "v1", "share": 0.5},
                    {"name": "b", "model_version": "v9", "share": 0.5},
                ]),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unusable_model_version",
            "v9",
        ),
        (
            def(
                "e1",
                "recommendations",
                json!([{"name": "a", "model_version": "v1", "share": 1.0}]),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_experiment",
            "two or more",
        ),
        (
            json!({"name": "e1", "placement": "recommendations", "metric": "clicks", "variants": two}),
            StatusCode::BAD_REQUEST,
            "invalid_experiment",
            "clicks",
        ),
    ] {
        let (s, v) = l.admin("POST", "/v1/admin/experiments", Some(body)).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(names),
            "{v}"
        );
    }
    let (s, v) = l
        .admin(
            "POST",
            "/v1/admin/experiments",
            Some(def("e1", "recommendations", two.clone())),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = l
        .admin(
            "POST",
            "/v1/admin/experiments",
            Some(def("e1", "other", two.clone())),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("experiment_exists"))
    );
    let (s, v) = l
        .admin(
            "POST",
            "/v1/admin/experiments",
            Some(def("e2", "recommendations", two.clone())),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "one running experiment per placement: {v}"
    );

    // Every user gets a variant, the same each time, answered by that variant's model.
    let mut seen = std::collections::HashMap::new();
    for u in 0..20 {
        let user = format!("u{u}");
        for _ in 0..2 {
            let a = l.shown(&user, "recommendations").await;
            assert_eq!(a["experiment"], "e1", "{a}");
            let variant = a["variant"].as_str().unwrap().to_owned();
            let version = if variant == "control" { "v1" } else { "v2" };
            assert_eq!(a["model_version"], version, "{a}");
            let before = seen.insert(user.clone(), variant.clone());
            assert!(before.is_none_or(|b| b == variant), "sticky");
            if u % 2 == 0 {
                let item = items(&a)[0].clone();
                let (s, _) = l
                    .shop(
                        "POST",
                        "/v1/events",
                        Some(json!({"events": [event(&format!("k{u}-{}", items(&a).len()), &user, &item, "click", Some(&a))]})),
                    )
                    .await;
                assert_eq!(s, StatusCode::ACCEPTED);
            }
        }
    }
    assert!(seen.values().any(|v| v == "control") && seen.values().any(|v| v == "treatment"));
    // Another placement is outside the experiment.
    let other = l.shown("u1", "sidebar").await;
    assert!(other.get("experiment").is_none(), "{other}");

    let (s, r) = l.admin("GET", "/v1/admin/experiments/e1", None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "running");
    let variants = r["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    let total: u64 = variants
        .iter()
        .map(|v| v["impressions"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 40, "{r}");
    let users: u64 = variants.iter().map(|v| v["users"].as_u64().unwrap()).sum();
    assert_eq!(users, 20, "{r}");
    let clicks: u64 = variants.iter().map(|v| v["clicks"].as_u64().unwrap()).sum();
    assert_eq!(clicks, 10, "{r}");
    assert!(r["note"].as_str().unwrap().contains("too small"), "{r}");
    assert!(r["winner"].is_null(), "{r}");
    assert!(r["verdict"].as_str().is_some_and(|v| !v.is_empty()));

    let (s, list) = l.admin("GET", "/v1/admin/experiments", None).await;
    assert_eq!(
        (s, list["experiments"][0]["name"].as_str()),
        (StatusCode::OK, Some("e1"))
    );
    let (s, stopped) = l.admin("POST", "/v1/admin/experiments/e1/stop", None).await;
    assert_eq!(
        (s, stopped["state"].as_str()),
        (StatusCode::OK, Some("stopped"))
    );
    let after = l.shown("u1", "recommendations").await;
    assert!(after.get("experiment").is_none(), "{after}");
    assert_eq!(after["model_version"], "v1");
    let (s, _) = l.admin("POST", "/v1/admin/experiments/e1/stop", None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = l.admin("GET", "/v1/admin/experiments/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The placement is free again.
    let (s, v) = l
        .admin(
            "POST",
            "/v1/admin/experiments",
            Some(def("e2", "recommendations", two)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    drop(l.store);
}

/// Versions kept for experiments stay within the memory budget: beyond it, creation is
/// refused with 422 naming the budget, and nothing is stored.
#[tokio::test]
async fn an_experiment_over_the_memory_budget_is_refused() {
    let l = setup().await;
    crate::common::save_version(
        &l.shop.model,
        "v2",
        &[("u1", "a1", 1.0, 0), ("u2", "a2", 1.0, 0)],
    );
    let small = l.state.clone().with_experiment_budget(1);
    let admin = admin_router(small);
    let (s, v) = call(
        &admin,
        &l.admin_key,
        "POST",
        "/v1/admin/experiments",
        Some(
            json!({"name": "big", "placement": "recommendations", "metric": "ctr", "variants": [
                {"name": "a", "model_version": "v1", "share": 0.5},
                {"name": "b", "model_version": "v2", "share": 0.5},
            ]}),
        ),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("experiment_memory")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MARQUEE_EXPERIMENT_MEMORY_MB")
    );
    assert!(l.store.experiments().await.unwrap().is_empty());
}
