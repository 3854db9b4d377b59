//! The storefront router through `oneshot`: every route, its errors, auth, and events that
//! change the next answer.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use marquee_api::{AppState, storefront_router};
use marquee_engine::Engine;
use marquee_store::{ApiKeyRole, Store};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

struct Fixture {
    _shop: crate::common::Shop,
    state: AppState,
    store: Store,
    router: axum::Router,
    storefront: String,
    admin: String,
}

async fn fixture() -> Fixture {
    let shop = crate::common::shop().await;
    let store = Store::open(&shop.url).await.unwrap();
    let storefront = store
        .create_api_key(ApiKeyRole::Storefront, "t")
        .await
        .unwrap()
        .key;
    let admin = store
        .create_api_key(ApiKeyRole::Admin, "t")
        .await
        .unwrap()
        .key;
    let engine = Engine::open(&shop.model, shop.catalog.clone()).unwrap();
    let state = AppState::new(Arc::new(engine), store.clone());
    let router = storefront_router(state.clone());
    Fixture {
        _shop: shop,
        state,
        store,
        router,
        storefront,
        admin,
    }
}

/// A second view of the same server (same state, keys and shop), for another router. The
/// shop stays owned by `f`.
fn fixture_with(f: &Fixture) -> Fixture {
    Fixture {
        _shop: crate::common::Shop {
            _dir: tempfile::tempdir().unwrap(),
            model: f._shop.model.clone(),
            url: f._shop.url.clone(),
            catalog: Vec::new(),
        },
        state: f.state.clone(),
        store: f.store.clone(),
        router: f.router.clone(),
        storefront: f.storefront.clone(),
        admin: f.admin.clone(),
    }
}

async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    let res = f.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

#[tokio::test]
async fn recommendations_home_similar_and_session() {
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    let (s, v) = call(&f, "GET", "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = call(&f, "GET", "/readyz", None, None).await;
    assert_eq!(
        (s, v["model_version"].as_str()),
        (StatusCode::OK, Some("v1"))
    );

    let (s, v) = call(&f, "GET", "/v1/recommendations?user_id=u0&k=3", key, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model_version"], "v1");
    assert_eq!(v["basis"], "personal");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| i["item"].as_str().unwrap().starts_with('a')),
        "{v}"
    );

    let (s, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=u0&k=5&category=b&exclude=b1,b2",
        key,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for i in v["items"].as_array().unwrap() {
        let id = i["item"].as_str().unwrap();
        assert!(id.starts_with('b') && id != "b1" && id != "b2");
    }

    let (s, v) = call(&f, "GET", "/v1/home?user_id=u1&k=3", key, None).await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "top_picks",
            "because_you_watched",
            "new_in_category",
            "trending"
        ]
    );

    let (s, v) = call(&f, "GET", "/v1/items/b3/similar?k=3", key, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["item"].as_str().unwrap().starts_with('b'))
    );

    let (s, v) = call(
        &f,
        "POST",
        "/v1/recommendations/session",
        key,
        Some(r#"{"items": ["a1", "a2"], "k": 3}"#),
    )
    .await;
    assert_eq!((s, v["basis"].as_str()), (StatusCode::OK, Some("session")));
}

#[tokio::test]
async fn events_are_stored_once_and_change_the_next_answer() {
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    let (_, before) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=visitor&k=3",
        key,
        None,
    )
    .await;
    assert_eq!(before["basis"], "cold_start");
    let body = r#"{"events": [
        {"event_id": "e1", "user_id": "visitor", "item_id": "b2", "kind": "purchase"},
        {"event_id": "e2", "user_id": "visitor", "item_id": "b5", "kind": "add_to_cart"}
    ]}"#;
    let (s, v) = call(&f, "POST", "/v1/events", key, Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(2), Some(0))
    );
    let (s, v) = call(&f, "POST", "/v1/events", key, Some(body)).await;
    assert_eq!(
        (s, v["duplicates"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    let (_, after) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=visitor&k=3",
        key,
        None,
    )
    .await;
    assert_eq!(after["basis"], "personal");
    let ids: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter()
            .all(|i| i.starts_with('b') && *i != "b2" && *i != "b5"),
        "{ids:?}"
    );
}

/// Method, URI, key, body, expected status and error code.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    let cases: Vec<Case<'_>> = vec![
        (
            "GET",
            "/v1/recommendations?user_id=u0",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "missing_key",
        ),
        (
            "GET",
            "/v1/recommendations?user_id=u0",
            Some("nope"),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_key",
        ),
        (
            "GET",
            "/v1/recommendations?user_id=u0",
            Some(f.admin.as_str()),
            None,
            StatusCode::FORBIDDEN,
            "wrong_key",
        ),
        (
            "GET",
            "/v1/recommendations?user_id=u0&k=0",
            key,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_k",
        ),
        (
            "GET",
            "/v1/recommendations?user_id=u0&k=1000000000",
            key,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_k",
        ),
        (
            "GET",
            "/v1/recommendations?user_id=u0&k=ten",
            key,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/recommendations?colour=red",
            key,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/recommendations?min_price=9&max_price=1",
            key,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_price_range",
        ),
        (
            "GET",
            "/v1/items/zzz/similar",
            key,
            None,
            StatusCode::NOT_FOUND,
            "unknown_item",
        ),
        (
            "GET",
            "/v1/nothing",
            key,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some(r#"{"events": []}"#),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some(r#"{"events": [{"event_id": "x", "user_id": "u", "kind": "teleport"}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some(r#"{"events": [{"event_id": "x", "kind": "view", "item_id": "a1"}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some(
                r#"{"events": [{"event_id": "x", "user_id": "u", "kind": "rating", "item_id": "a1", "value": 9}]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "POST",
            "/v1/events",
            key,
            Some(r#"{"events": [{"event_id": 5, "user_id": "u", "kind": "view"}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/recommendations/session",
            key,
            Some(r#"{"items": "a1"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (method, uri, k, body, status, code) in cases {
        let (s, v) = call(&f, method, uri, k, body).await;
        assert_eq!(
            (s, error_code(&v)),
            (status, code),
            "{method} {uri} {body:?}: {v}"
        );
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // A body over the limit.
    let big = format!(
        r#"{{"events": [{{"event_id": "{}", "user_id": "u", "kind": "view"}}]}}"#,
        "x".repeat(2 << 20)
    );
    let (s, v) = call(&f, "POST", "/v1/events", key, Some(&big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(error_code(&v), "invalid_body");
    // The rating message names the field.
    let (_, v) = call(&f, "POST", "/v1/events", key, Some(r#"{"events": [{"event_id": "x", "user_id": "u", "kind": "rating", "item_id": "a1", "value": 9}]}"#)).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[0].value"),
        "{v}"
    );
}

#[tokio::test]
async fn events_stored_elsewhere_count_after_a_refresh() {
    use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, UserId};
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    // An older event makes the poller's view definite (sequence number > 0).
    let event = |id: &str, user: &str, item: &str, at| Event {
        id: EventId::new(id).unwrap(),
        actor: Actor::User(UserId::new(user).unwrap()),
        item: Some(ItemId::new(item).unwrap()),
        kind: EventKind::Purchase,
        value: None,
        timestamp: at,
        context: None,
    };
    let now = chrono::Utc::now();
    f.store
        .insert_events(&[event("old", "u0", "a1", now - chrono::TimeDelta::days(60))])
        .await
        .unwrap();
    f.state.refresh_fresh_users().await.unwrap();
    let (_, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=elsewhere&k=3",
        key,
        None,
    )
    .await;
    assert_eq!(v["basis"], "cold_start");
    // Another replica stores events for "elsewhere"; after the next poll they count.
    f.store
        .insert_events(&[
            event("x1", "elsewhere", "b1", now),
            event("x2", "elsewhere", "b4", now),
        ])
        .await
        .unwrap();
    f.state.refresh_fresh_users().await.unwrap();
    let (_, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=elsewhere&k=3",
        key,
        None,
    )
    .await;
    assert_eq!(v["basis"], "personal", "{v}");
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| i.starts_with('b')), "{ids:?}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_events() {
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    for _ in 0..3 {
        call(&f, "GET", "/v1/recommendations?user_id=u0&k=2", key, None).await;
    }
    call(&f, "GET", "/v1/recommendations?k=0", key, None).await;
    let body =
        r#"{"events": [{"event_id": "m1", "user_id": "u3", "item_id": "a1", "kind": "view"}]}"#;
    call(&f, "POST", "/v1/events", key, Some(body)).await;
    call(&f, "POST", "/v1/events", key, Some(body)).await;
    let res = f
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for line in [
        r#"marquee_http_requests_total{route="/v1/recommendations",status="2xx"} 3"#,
        r#"marquee_http_requests_total{route="/v1/recommendations",status="4xx"} 1"#,
        r#"marquee_http_request_duration_seconds_count{route="/v1/recommendations"} 4"#,
        r#"marquee_http_request_duration_seconds_bucket{route="/v1/recommendations",le="+Inf"} 4"#,
        r#"marquee_events_ingested_total 1"#,
        r#"marquee_model_info{version="v1",kind="ease"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn admin_lists_and_activates_model_versions() {
    use marquee_api::admin_router;
    let f = fixture().await;
    let admin_key = f.admin.clone();
    let root = f._shop.model.clone();
    // A second good version and a damaged third.
    let mut v2 = marquee_models::Artifact::load(&root.join("v1")).unwrap();
    v2.manifest.version = "v2".into();
    v2.save(&root.join("v2")).unwrap();
    let mut v3 = v2.clone();
    v3.manifest.version = "v3".into();
    v3.save(&root.join("v3")).unwrap();
    let tensors = root.join("v3/model.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    bytes[80] ^= 1;
    std::fs::write(&tensors, bytes).unwrap();

    let admin = Fixture {
        router: admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let key = Some(admin_key.as_str());
    let (s, v) = call(&admin, "GET", "/v1/admin/models", key, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active"], "v1");
    let listed: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["v3", "v2", "v1"]);

    let (s, v) = call(
        &admin,
        "GET",
        "/v1/admin/models",
        Some(f.storefront.as_str()),
        None,
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::FORBIDDEN, "wrong_key"));
    let (s, v) = call(&admin, "POST", "/v1/admin/models/v9/activate", key, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "unknown_version")
    );
    let (s, v) = call(&admin, "POST", "/v1/admin/models/v3/activate", key, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model")
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("checksum"),
        "{v}"
    );
    let (_, v) = call(&f, "GET", "/readyz", None, None).await;
    assert_eq!(v["model_version"], "v1", "the damaged model was refused");

    let (s, v) = call(&admin, "POST", "/v1/admin/models/v2/activate", key, None).await;
    assert_eq!(
        (s, v["model_version"].as_str()),
        (StatusCode::OK, Some("v2")),
        "{v}"
    );
    let (_, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=u0&k=2",
        Some(f.storefront.as_str()),
        None,
    )
    .await;
    assert_eq!(v["model_version"], "v2");
}

#[tokio::test]
async fn admin_reads_segments_page_by_page() {
    use marquee_api::admin_router;
    use marquee_store::{SegmentMember, SegmentRun};
    let f = fixture().await;
    let admin = Fixture {
        router: admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let key = Some(f.admin.as_str());
    let (s, v) = call(&admin, "GET", "/v1/admin/segments", key, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "no_segments"));

    let member = |user: &str, segment: &str, money: i64| SegmentMember {
        user_id: user.into(),
        segment: segment.into(),
        cluster: 0,
        recency_days: 3,
        frequency: 2,
        monetary_minor: money,
        tenure_days: 30,
        avg_basket_minor: money as f64 / 2.0,
        favourite_category: "a".into(),
        r_score: 5,
        f_score: 4,
        m_score: 4,
    };
    let members: Vec<SegmentMember> = (0..5)
        .map(|n| member(&format!("c{n}"), "champions", 300))
        .chain([member("l0", "lost", 500)])
        .collect();
    let run = SegmentRun {
        version: "s1".into(),
        computed_at: chrono::Utc::now(),
        reference: chrono::Utc::now(),
        k: 2,
        silhouette: 0.4,
        clusters: vec!["recent buyers".into(), "long gone".into()],
    };
    f.store.save_segments(&run, &members).await.unwrap();

    let (s, v) = call(&admin, "GET", "/v1/admin/segments", key, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["run"]["version"], "s1");
    let champions = &v["segments"][0];
    assert_eq!(
        (
            champions["segment"].as_str(),
            champions["customers"].as_u64()
        ),
        (Some("champions"), Some(5))
    );
    assert!((champions["revenue_share"].as_f64().unwrap() - 1500.0 / 2000.0).abs() < 1e-12);

    let (s, v) = call(
        &admin,
        "GET",
        "/v1/admin/segments/champions/members?page=1&per_page=2",
        key,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 5);
    let users: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["c2", "c3"]);
    // The answers carry every field the OpenAPI document says they must.
    let doc: Value = serde_json::from_str(marquee_api::OPENAPI).unwrap();
    let required = |schema: &Value| -> Vec<String> {
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let page = &doc["components"]["schemas"]["SegmentMembers"];
    for field in required(page) {
        assert!(!v[&field].is_null(), "members page lacks {field}");
    }
    for field in required(&page["properties"]["members"]["items"]) {
        assert!(!v["members"][0][&field].is_null(), "member lacks {field}");
    }
    let (_, list) = call(&admin, "GET", "/v1/admin/segments", key, None).await;
    for field in required(&doc["components"]["schemas"]["SegmentRun"]) {
        assert!(!list["run"][&field].is_null(), "run lacks {field}");
    }
    let (s, v) = call(&admin, "GET", "/v1/admin/segments/vip/members", key, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "unknown_segment")
    );
    let (s, v) = call(
        &admin,
        "GET",
        "/v1/admin/segments/lost/members?per_page=0",
        key,
        None,
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_per_page")
    );
    let (s, _) = call(
        &admin,
        "GET",
        "/v1/admin/segments",
        Some(f.storefront.as_str()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The analytics routes against hand-made orders, and their refusals.
#[tokio::test]
async fn admin_analytics_are_exact_and_refuse_bad_ranges() {
    use chrono::TimeZone;
    use marquee_domain::UserId;
    use marquee_domain::{Currency, ItemId, Money, Order, OrderId, OrderLine, OrderStatus, User};
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let key = Some(f.admin.as_str());
    let users: Vec<User> = ["u1", "u2"]
        .iter()
        .map(|u| User::new(UserId::new(*u).unwrap(), chrono::Utc::now()))
        .collect();
    f.store.upsert_users(&users).await.unwrap();
    let eur = |m: i64| Money::new(m, Currency::new("EUR").unwrap());
    let order = |id: &str, user: &str, month: u32, status, item: &str, q: u32, p: i64| Order {
        id: OrderId::new(id).unwrap(),
        user: Some(UserId::new(user).unwrap()),
        created_at: chrono::Utc
            .with_ymd_and_hms(2025, month, 15, 12, 0, 0)
            .unwrap(),
        status,
        lines: vec![OrderLine {
            item: ItemId::new(item).unwrap(),
            quantity: q,
            unit_price: eur(p),
        }],
    };
    f.store
        .put_orders(&[
            order("o1", "u1", 1, OrderStatus::Paid, "a0", 3, 333),
            order("o2", "u2", 2, OrderStatus::Shipped, "a1", 1, 1),
            order("o3", "u1", 2, OrderStatus::Refunded, "a0", 1, 333),
        ])
        .await
        .unwrap();
    let (s, v) = call(&admin, "GET", "/v1/admin/analytics/revenue", key, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["revenue_minor"], 999 + 1 - 333);
    assert_eq!(v["rows"][0]["period"], "2025-01");
    assert_eq!(v["rows"][1]["orders"], 1, "the refund is not an order");
    let (_, v) = call(
        &admin,
        "GET",
        "/v1/admin/analytics/revenue?period=day&from=2025-02-01&to=2025-03-01",
        key,
        None,
    )
    .await;
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["rows"][0]["period"], "2025-02-15");
    assert_eq!(v["revenue_minor"], 1 - 333);
    let (_, v) = call(
        &admin,
        "GET",
        "/v1/admin/analytics/top-products?by=units&limit=1",
        key,
        None,
    )
    .await;
    assert_eq!(v["products"][0]["item"], "a0", "{v}");
    assert_eq!(v["products"][0]["units"], 2);
    let (_, v) = call(&admin, "GET", "/v1/admin/analytics/customers", key, None).await;
    assert_eq!(v["months"][1]["new_customers"], 1, "{v}");
    assert_eq!(
        v["months"][1]["returning_customers"], 0,
        "u1 only had a refund"
    );
    let (s, v) = call(&admin, "GET", "/v1/admin/analytics/funnel", key, None).await;
    assert_eq!(
        (s, v["funnel"]["viewed"].as_u64()),
        (StatusCode::OK, Some(0))
    );

    for (uri, code) in [
        ("/v1/admin/analytics/revenue?period=week", "invalid_period"),
        (
            "/v1/admin/analytics/revenue?from=2025-13-01",
            "invalid_date",
        ),
        (
            "/v1/admin/analytics/revenue?from=2025-03-01&to=2025-01-01",
            "invalid_range",
        ),
        ("/v1/admin/analytics/top-products?by=price", "invalid_by"),
        ("/v1/admin/analytics/top-products?limit=0", "invalid_limit"),
        ("/v1/admin/analytics/funnel?period=day", "invalid_query"),
        ("/v1/admin/analytics/customers?colour=red", "invalid_query"),
    ] {
        let (s, v) = call(&admin, "GET", uri, key, None).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, code),
            "{uri}"
        );
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let (s, _) = call(
        &admin,
        "GET",
        "/v1/admin/analytics/revenue",
        Some(f.storefront.as_str()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Writes an executable shell script `name` into `dir`.
fn tool(dir: &std::path::Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn wait_for_job(admin: &Fixture, key: Option<&str>, id: u64) -> Value {
    for _ in 0..200 {
        let (s, v) = call(admin, "GET", &format!("/v1/admin/jobs/{id}"), key, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["state"] != "running" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} still running after 10 s");
}

/// Jobs run the tools found in the tools folder (stand-ins here: the real `train` and
/// `segments` are run by the end-to-end test), report progress, activate what training made,
/// refuse a second job of a kind, and say when a tool is missing.
#[tokio::test]
async fn admin_jobs_retrain_recompute_and_export() {
    use marquee_api::jobs::Tools;
    let mut f = fixture().await;
    let tools_dir = tempfile::tempdir().unwrap();
    let tools = Tools {
        dir: tools_dir.path().to_path_buf(),
        database_url: f._shop.url.clone(),
    };
    f.state = f.state.clone().with_tools(tools);
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let key = Some(f.admin.as_str());

    // No tools yet: a clear 503.
    let (s, v) = call(&admin, "POST", "/v1/admin/jobs/retrain", key, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "tool_missing")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cargo build --release --bin train")
    );

    // A stand-in `train` that "trains" v2 (prepared beforehand) and points `latest` at it.
    let models = f._shop.model.clone();
    let v1 = models.join("v1");
    let v2 = models.join("v2");
    let staged = tools_dir.path().join("v2");
    std::fs::create_dir_all(&staged).unwrap();
    for entry in std::fs::read_dir(&v1).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), staged.join(entry.file_name())).unwrap();
    }
    let manifest = staged.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"version\": \"v1\"", "\"version\": \"v2\""),
    )
    .unwrap();
    tool(
        tools_dir.path(),
        "train",
        &format!(
            "echo \"args: $*\"; echo 'fitting ease' >&2; test \"$DATABASE_URL\" = '{}' || exit 3; \
             cp -r {} {} && echo v2 > {}/latest && echo 'saved v2'",
            f._shop.url,
            staged.display(),
            v2.display(),
            models.display()
        ),
    );
    let (s, v) = call(
        &admin,
        "POST",
        "/v1/admin/jobs/retrain",
        key,
        Some(r#"{"set": ["models=ease"]}"#),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = wait_for_job(&admin, key, v["id"].as_u64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let log: Vec<&str> = job["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        log.iter()
            .any(|l| l.contains("--set models=ease") && l.contains("name=shop")),
        "{log:?}"
    );
    assert!(log.contains(&"fitting ease"), "{log:?}");
    assert_eq!(f.state.engine.version(), "v2", "the new version serves");
    assert!(
        job["result"]
            .as_str()
            .unwrap()
            .contains("activated version v2")
    );

    // Training that fails: the job says so and the model stays.
    tool(
        tools_dir.path(),
        "train",
        "echo 'train: error: no interactions' >&2; exit 1",
    );
    let (_, v) = call(&admin, "POST", "/v1/admin/jobs/retrain", key, Some("{}")).await;
    let job = wait_for_job(&admin, key, v["id"].as_u64().unwrap()).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["progress"], "train: error: no interactions");
    assert_eq!(f.state.engine.version(), "v2");

    // Bad bodies.
    for (body, code) in [
        (r#"{"set": ["models"]}"#, "invalid_set"),
        (r#"{"set": ["output_dir=/etc"]}"#, "invalid_set"),
        (r#"{"epochs": 3}"#, "invalid_body"),
        ("not json", "invalid_body"),
    ] {
        let (s, v) = call(&admin, "POST", "/v1/admin/jobs/retrain", key, Some(body)).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }

    // One segments job at a time.
    tool(
        tools_dir.path(),
        "segments",
        "sleep 1; echo 'run s7 (20 customers)'",
    );
    let (s, first) = call(
        &admin,
        "POST",
        "/v1/admin/segments/recompute",
        key,
        Some(r#"{"k": 3}"#),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let (s, v) = call(&admin, "POST", "/v1/admin/segments/recompute", key, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "job_running"));
    let job = wait_for_job(&admin, key, first["id"].as_u64().unwrap()).await;
    assert_eq!(
        (job["state"].as_str(), job["result"].as_str()),
        (Some("succeeded"), Some("run s7 (20 customers)"))
    );
    let (s, v) = call(
        &admin,
        "POST",
        "/v1/admin/segments/recompute",
        key,
        Some(r#"{"k": 1}"#),
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "invalid_k"));
    let (_, v) = call(&admin, "GET", "/v1/admin/jobs", key, None).await;
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["jobs"][0]["kind"], "segments", "newest first");
}

/// Catalog reads, order placement at catalog prices (idempotent), order history, and what
/// a bought item does to the next recommendations.
#[tokio::test]
async fn catalog_and_orders() {
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let sk = Some(f.storefront.as_str());
    let ak = Some(f.admin.as_str());

    // Admin: prices for two items, one hidden, one out of stock.
    let (s, v) = call(
        &admin,
        "POST",
        "/v1/admin/items",
        ak,
        Some(
            r#"{"items": [
            {"id": "a0", "title": "Blue Mug", "category": "a", "price": {"minor": 1250, "currency": "EUR"}},
            {"id": "a1", "title": "Red Mug 50%", "category": "a", "price": {"minor": 99, "currency": "EUR"}},
            {"id": "a2", "title": "Gone", "category": "a", "price": {"minor": 5, "currency": "EUR"}, "hidden": true},
            {"id": "a3", "title": "Sold out", "category": "a", "price": {"minor": 5, "currency": "EUR"}, "in_stock": false}
        ]}"#,
        ),
    )
    .await;
    assert_eq!(
        (s, v["upserted"].as_u64()),
        (StatusCode::OK, Some(4)),
        "{v}"
    );

    let (s, v) = call(&f, "GET", "/v1/categories", sk, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["categories"][0],
        serde_json::json!({"category": "a", "items": 7})
    );
    let (_, v) = call(&f, "GET", "/v1/items?category=a&limit=3", sk, None).await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["a0", "a1", "a4"],
        "hidden and out-of-stock items are not listed"
    );
    assert_eq!(v["next_after"], "a4");
    let (_, v) = call(&f, "GET", "/v1/items?category=a&after=a4&limit=3", sk, None).await;
    assert_eq!(v["items"][0]["id"], "a5");
    // Search by title; % is literal text, not a wildcard.
    let (_, v) = call(&f, "GET", "/v1/items?q=mug", sk, None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = call(&f, "GET", "/v1/items?q=50%25", sk, None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    let (s, v) = call(&f, "GET", "/v1/items/a0", sk, None).await;
    assert_eq!((s, v["title"].as_str()), (StatusCode::OK, Some("Blue Mug")));
    let (s, v) = call(&f, "GET", "/v1/items/a2", sk, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "unknown_item"));
    let (s, v) = call(&admin, "GET", "/v1/admin/items/a2", ak, None).await;
    assert_eq!((s, v["hidden"].as_bool()), (StatusCode::OK, Some(true)));

    // An order of a0 by u0 (even users like a-items), priced by the catalog.
    let body = r#"{"order_id": "web-1", "user_id": "u0", "lines": [{"item_id": "a0", "quantity": 2}, {"item_id": "a1", "quantity": 1}]}"#;
    let (s, v) = call(&f, "POST", "/v1/orders", sk, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["total_minor"].as_i64(), v["currency"].as_str()),
        (Some(2599), Some("EUR"))
    );
    let (s, again) = call(&f, "POST", "/v1/orders", sk, Some(body)).await;
    assert_eq!(
        (s, &again["created_at"]),
        (StatusCode::OK, &v["created_at"]),
        "a retry is not a second order"
    );
    let other =
        r#"{"order_id": "web-1", "user_id": "u0", "lines": [{"item_id": "a1", "quantity": 9}]}"#;
    let (s, v) = call(&f, "POST", "/v1/orders", sk, Some(other)).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "order_conflict")
    );
    let (s, v) = call(&f, "GET", "/v1/orders/web-1", sk, None).await;
    assert_eq!(
        (s, v["lines"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let (_, v) = call(&f, "GET", "/v1/users/u0/orders", sk, None).await;
    assert_eq!(v["orders"][0]["order_id"], "web-1");
    // A new customer's first order creates the customer.
    let (s, v) = call(&f, "POST", "/v1/orders", sk, Some(r#"{"order_id": "web-2", "user_id": "newcomer", "lines": [{"item_id": "a0", "quantity": 1}]}"#)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(&admin, "GET", "/v1/admin/users/newcomer", ak, None).await;
    assert_eq!(
        (s, v["marketing_consent"].as_bool()),
        (StatusCode::OK, Some(false))
    );

    // What u0 bought is not recommended again (unless asked).
    let (_, v) = call(&f, "GET", "/v1/recommendations?user_id=u0&k=16", sk, None).await;
    let recs: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert!(!recs.contains(&"a0") && !recs.contains(&"a1"), "{recs:?}");

    for (body, status, code) in [
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": []}"#,
            StatusCode::BAD_REQUEST,
            "invalid_lines",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "a0", "quantity": 0}]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_quantity",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "zz", "quantity": 1}]}"#,
            StatusCode::NOT_FOUND,
            "unknown_item",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "a2", "quantity": 1}]}"#,
            StatusCode::NOT_FOUND,
            "unknown_item",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "a3", "quantity": 1}]}"#,
            StatusCode::CONFLICT,
            "out_of_stock",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "b0", "quantity": 1}]}"#,
            StatusCode::CONFLICT,
            "not_for_sale",
        ),
        (
            r#"{"order_id": "", "user_id": "u1", "lines": [{"item_id": "a0", "quantity": 1}]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_order_id",
        ),
        (
            r#"{"order_id": "x", "user_id": "u1", "lines": [{"item_id": "a0", "quantity": 1, "unit_price": 1}]}"#,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ] {
        let (s, v) = call(&f, "POST", "/v1/orders", sk, Some(body)).await;
        assert_eq!((s, error_code(&v)), (status, code), "{body}");
    }
    let (s, v) = call(&f, "GET", "/v1/orders/nope", sk, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "unknown_order")
    );
    let (s, v) = call(&f, "GET", "/v1/items?limit=0", sk, None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_limit")
    );
    let (s, _) = call(&f, "GET", "/v1/items", Some(f.admin.as_str()), None).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "an admin key is not a storefront key"
    );

    // Admin: order status, listing by status.
    let (s, v) = call(
        &admin,
        "PATCH",
        "/v1/admin/orders/web-1",
        ak,
        Some(r#"{"status": "shipped"}"#),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("shipped")));
    let (_, v) = call(&admin, "GET", "/v1/admin/orders?status=shipped", ak, None).await;
    assert_eq!(v["orders"].as_array().unwrap().len(), 1);
    let (s, v) = call(
        &admin,
        "PATCH",
        "/v1/admin/orders/web-1",
        ak,
        Some(r#"{"status": "lost"}"#),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_status")
    );
    let (s, v) = call(
        &admin,
        "PATCH",
        "/v1/admin/orders/nope",
        ak,
        Some(r#"{"status": "paid"}"#),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "unknown_order")
    );
}

/// Admin edits of the catalog reach recommendations at once; users and API keys.
#[tokio::test]
async fn admin_items_users_and_keys() {
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let sk = Some(f.storefront.as_str());
    let ak = Some(f.admin.as_str());
    let recs = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, v) = call(&f, "GET", "/v1/recommendations?user_id=u1&k=3", sk, None).await;
    let top = recs(&v)[0].clone();
    let (s, v) = call(
        &admin,
        "DELETE",
        &format!("/v1/admin/items/{top}"),
        ak,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = call(&f, "GET", "/v1/recommendations?user_id=u1&k=3", sk, None).await;
    assert!(
        !recs(&v).contains(&top),
        "a hidden item is never recommended"
    );
    let (s, v) = call(
        &admin,
        "PUT",
        &format!("/v1/admin/items/{top}"),
        ak,
        Some(r#"{"title": "Back", "category": "b"}"#),
    )
    .await;
    assert_eq!(
        (s, v["hidden"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let (_, v) = call(&f, "GET", "/v1/recommendations?user_id=u1&k=3", sk, None).await;
    assert_eq!(recs(&v)[0], top);

    for (method, uri, body, code) in [
        (
            "PUT",
            "/v1/admin/items/b1",
            r#"{"id": "b2", "title": "x", "category": "b"}"#,
            "invalid_item_id",
        ),
        (
            "PUT",
            "/v1/admin/items/b1",
            r#"{"title": "", "category": "b"}"#,
            "invalid_item",
        ),
        (
            "PUT",
            "/v1/admin/items/b1",
            r#"{"title": "x", "category": "b", "price": {"minor": -1, "currency": "EUR"}}"#,
            "invalid_item",
        ),
        (
            "PUT",
            "/v1/admin/items/b1",
            r#"{"title": "x"}"#,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/admin/items",
            r#"{"items": []}"#,
            "invalid_items",
        ),
        (
            "POST",
            "/v1/admin/items",
            r#"{"items": [{"title": "no id", "category": "b"}]}"#,
            "invalid_item_id",
        ),
        (
            "PUT",
            "/v1/admin/users/u1",
            r#"{"marketing_consent": "yes"}"#,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/admin/keys",
            r#"{"role": "root"}"#,
            "invalid_role",
        ),
    ] {
        let (s, v) = call(&admin, method, uri, ak, Some(body)).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, code),
            "{method} {uri} {body}"
        );
    }
    let (s, v) = call(&admin, "DELETE", "/v1/admin/items/zz", ak, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "unknown_item"));

    // Users.
    let (s, v) = call(
        &admin,
        "PUT",
        "/v1/admin/users/c1",
        ak,
        Some(r#"{"marketing_consent": true, "email": "c1@example.com", "country": "FR"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = call(&admin, "GET", "/v1/admin/users?limit=10", ak, None).await;
    assert_eq!(v["users"][0]["email"], "c1@example.com");
    let (s, v) = call(&admin, "GET", "/v1/admin/users/ghost", ak, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "unknown_user"));

    // Keys: create (shown once), list (never the key), use, revoke (stops at once).
    let (s, v) = call(
        &admin,
        "POST",
        "/v1/admin/keys",
        ak,
        Some(r#"{"role": "storefront", "label": "app"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new_key = v["key"].as_str().unwrap().to_owned();
    let prefix = v["prefix"].as_str().unwrap().to_owned();
    let (_, list) = call(&admin, "GET", "/v1/admin/keys", ak, None).await;
    assert!(
        !list.to_string().contains(&new_key),
        "listings never show a key"
    );
    assert_eq!(list["keys"].as_array().unwrap().len(), 3);
    let (s, _) = call(&f, "GET", "/v1/categories", Some(&new_key), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &admin,
        "DELETE",
        &format!("/v1/admin/keys/{prefix}"),
        ak,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&f, "GET", "/v1/categories", Some(&new_key), None).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_key")
    );
    let (s, v) = call(
        &admin,
        "DELETE",
        &format!("/v1/admin/keys/{prefix}"),
        ak,
        None,
    )
    .await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "unknown_key"));
}

/// `/openapi.json` and the routers agree: every documented path answers (not the JSON 404)
/// on exactly its documented methods, and every route in the code is documented.
#[tokio::test]
async fn openapi_matches_the_routes() {
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let (s, doc) = call(&f, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, same) = call(&admin, "GET", "/openapi.json", None, None).await;
    assert_eq!(doc, same);
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        let router = if path.starts_with("/v1/admin/") {
            &admin
        } else {
            &f
        };
        let uri = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let documented: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
        for method in ["get", "post", "put", "patch", "delete"] {
            let (s, v) = call(router, &method.to_uppercase(), &uri, None, None).await;
            let routed = s != StatusCode::METHOD_NOT_ALLOWED
                && !(s == StatusCode::NOT_FOUND && v["error"]["code"] == "not_found");
            assert_eq!(
                routed,
                documented.contains(&method.to_owned()),
                "{method} {path}: {s} {v}"
            );
        }
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            for r in op["responses"].as_object().unwrap().values() {
                if let Some(target) = r["$ref"].as_str() {
                    assert_eq!(target, "#/components/responses/Error");
                }
            }
        }
    }
    // Every route in the code is documented.
    let source = [
        include_str!("../../src/lib.rs"),
        include_str!("../../src/admin/mod.rs"),
    ]
    .concat();
    let mut routed = std::collections::BTreeSet::new();
    for piece in source.split(".route(").skip(1) {
        let path = piece.trim_start().trim_start_matches('"');
        routed.insert(path[..path.find('"').unwrap()].to_owned());
    }
    let documented: std::collections::BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(routed, documented);
    // Every schema reference resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        let (kind, name) = target.split_once('/').unwrap();
        assert!(doc["components"][kind][name].is_object(), "{target}");
    }
}

/// A key over its per-second limit gets 429 with Retry-After; another key is not affected.
#[tokio::test]
async fn rate_limit_per_key() {
    let f = fixture().await;
    let state = f.state.clone().with_rate_limit(3);
    let router = storefront_router(state.clone());
    let other = f
        .store
        .create_api_key(ApiKeyRole::Storefront, "other")
        .await
        .unwrap()
        .key;
    let send = |key: String| {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .uri("/v1/categories")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap()
        }
    };
    let mut limited = 0;
    for _ in 0..10 {
        let res = send(f.storefront.clone()).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.headers()["retry-after"], "1");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(error_code(&v), "rate_limited");
            limited += 1;
        } else {
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    // Ten requests span at most two one-second windows: at most six pass.
    assert!(limited >= 4, "{limited} of 10 limited");
    assert_eq!(
        send(other).await.status(),
        StatusCode::OK,
        "keys are limited apart"
    );
    // Without a limit (the default) nothing is refused.
    for _ in 0..10 {
        let (s, _) = call(&f, "GET", "/v1/categories", Some(&f.storefront), None).await;
        assert_eq!(s, StatusCode::OK);
    }
}

/// Changing admin requests, refused ones too, are written to the audit log with the key's
/// prefix (never the key); reads are not.
#[tokio::test]
async fn admin_actions_are_audited() {
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let ak = Some(f.admin.as_str());
    let (s, _) = call(
        &admin,
        "PUT",
        "/v1/admin/users/c9",
        ak,
        Some(r#"{"marketing_consent": true}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &admin,
        "DELETE",
        "/v1/admin/items/a3",
        Some(&f.storefront),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&admin, "GET", "/v1/admin/users/c9", ak, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&admin, "GET", "/v1/admin/audit", ak, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(
        (
            entries[0]["method"].as_str(),
            entries[0]["path"].as_str(),
            entries[0]["status"].as_u64()
        ),
        (Some("DELETE"), Some("/v1/admin/items/a3"), Some(403))
    );
    assert_eq!(entries[0]["key_prefix"], &f.storefront[..14]);
    assert_eq!(
        (
            entries[1]["method"].as_str(),
            entries[1]["status"].as_u64(),
            entries[1]["key_prefix"].as_str()
        ),
        (Some("PUT"), Some(200), Some(&f.admin[..14]))
    );
    assert!(
        !v.to_string().contains(&f.admin),
        "the key itself is never logged"
    );
}

/// Hot swap while requests run: four clients ask for recommendations without pause while
/// versions are activated back and forth (and a damaged one is refused). No request fails,
/// every answer names v1 or v2, and once the swaps end every answer names the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_while_requests_run() {
    let f = fixture().await;
    let root = f._shop.model.clone();
    let mut v2 = marquee_models::Artifact::load(&root.join("v1")).unwrap();
    v2.manifest.version = "v2".into();
    v2.save(&root.join("v2")).unwrap();
    let mut bad = v2.clone();
    bad.manifest.version = "v3".into();
    bad.save(&root.join("v3")).unwrap();
    std::fs::write(root.join("v3/model.safetensors"), b"not tensors").unwrap();
    let admin = marquee_api::admin_router(f.state.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let router = f.router.clone();
        let key = f.storefront.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<String, u32>::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = Request::builder()
                    .uri(format!("/v1/recommendations?user_id=u{}&k=5", (c + n) % 20))
                    .header("authorization", format!("Bearer {key}"))
                    .body(Body::empty())
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                let body = res.into_body().collect().await.unwrap().to_bytes();
                let v: Value = serde_json::from_slice(&body).unwrap();
                *seen
                    .entry(v["model_version"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                n += 1;
            }
            seen
        }));
    }
    for round in 0..20 {
        let version = ["v2", "v3", "v1"][round % 3];
        let req = Request::builder()
            .method("POST")
            .uri(format!("/v1/admin/models/{version}/activate"))
            .header("authorization", format!("Bearer {}", f.admin))
            .body(Body::empty())
            .unwrap();
        let res = admin.clone().oneshot(req).await.unwrap();
        let want = if version == "v3" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        assert_eq!(res.status(), want, "{version}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = std::collections::BTreeMap::<String, u32>::new();
    for c in clients {
        for (version, n) in c.await.unwrap() {
            *total.entry(version).or_default() += n;
        }
    }
    let versions: Vec<&str> = total.keys().map(String::as_str).collect();
    assert_eq!(versions, ["v1", "v2"], "{total:?}");
    eprintln!("answers during 20 activations (7 refused): {total:?}, none failed");
    // Round 19 activated v2 (19 % 3 = 1 is v3, refused; 18 % 3 = 0 is v2).
    assert_eq!(f.state.engine.version(), "v2");
    let (_, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=u1",
        Some(&f.storefront),
        None,
    )
    .await;
    assert_eq!(v["model_version"], "v2");
}

/// SQL in every string parameter is data: no 5xx, nothing found that should not be, and the
/// store's tables are intact afterwards.
#[tokio::test]
async fn sql_injection_attempts_change_nothing() {
    let f = fixture().await;
    let admin = Fixture {
        router: marquee_api::admin_router(f.state.clone()),
        ..fixture_with(&f)
    };
    let before = f.store.counts().await.unwrap();
    let sk = Some(f.storefront.as_str());
    let ak = Some(f.admin.as_str());
    let attacks = [
        "' OR '1'='1",
        "'; DROP TABLE items; --",
        "a0' UNION SELECT key_hash FROM api_keys --",
        "%' OR 1=1 --",
        "\") OR (\"1\"=\"1",
    ];
    for attack in attacks {
        let q: String = attack.bytes().map(|b| format!("%{b:02X}")).collect();
        let storefront = [
            format!("/v1/recommendations?user_id={q}&category={q}&exclude={q}"),
            format!("/v1/home?user_id={q}"),
            format!("/v1/items?q={q}&category={q}&after={q}"),
            format!("/v1/items/{q}"),
            format!("/v1/items/{q}/similar"),
            format!("/v1/orders/{q}"),
            format!("/v1/users/{q}/orders"),
        ];
        for uri in &storefront {
            let (s, v) = call(&f, "GET", uri, sk, None).await;
            assert!(s.is_success() || s.is_client_error(), "{uri}: {s} {v}");
            if let Some(items) = v["items"].as_array() {
                // A search for SQL finds nothing (no title holds it); recommendations may
                // still answer with trending items, but never with a key or a hash.
                if uri.starts_with("/v1/items?") {
                    assert!(items.is_empty(), "{uri}: {v}");
                }
                assert!(!v.to_string().contains("key_hash"));
            }
        }
        let admin_uris = [
            format!("/v1/admin/items?q={q}"),
            format!("/v1/admin/orders?status={q}"),
            format!("/v1/admin/users?after={q}"),
            format!("/v1/admin/segments/{q}/members"),
            format!("/v1/admin/analytics/revenue?from={q}"),
            format!("/v1/admin/analytics/top-products?by={q}"),
        ];
        for uri in &admin_uris {
            let (s, v) = call(&admin, "GET", uri, ak, None).await;
            assert!(s.is_success() || s.is_client_error(), "{uri}: {s} {v}");
        }
        let body = serde_json::json!({"events": [{
            "event_id": attack, "user_id": attack, "item_id": attack, "kind": "view",
            "context": {"note": attack}
        }]})
        .to_string();
        let (s, v) = call(&f, "POST", "/v1/events", sk, Some(&body)).await;
        assert!(s.is_success() || s.is_client_error(), "{s} {v}");
        let (s, v) = call(&admin, "DELETE", &format!("/v1/admin/keys/{q}"), ak, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    let after = f.store.counts().await.unwrap();
    assert_eq!(after.items, before.items, "the catalog is intact");
    assert_eq!(after.users, before.users);
    assert_eq!(after.orders, before.orders);
    // The events were stored as plain data, one per attack string.
    assert_eq!(after.events, before.events + attacks.len() as u64);
    let (s, _) = call(&f, "GET", "/v1/categories", sk, None).await;
    assert_eq!(s, StatusCode::OK, "the storefront key still works");
}

/// A database locked by another writer and more requests than the server takes at once: the
/// waiting write goes through once the lock is gone; requests over the limit are shed at once
/// with `503 overloaded` and `Retry-After` while health checks still answer; a lock held past
/// the time limit ends in a clean 503, and the retried batch is then stored exactly once.
#[tokio::test]
async fn a_locked_database_and_an_overload_get_clean_503s() {
    let f = fixture().await;
    let router = storefront_router(f.state.clone().with_max_in_flight(1));
    let send = |method: &str, uri: &str, body: &str| {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", f.storefront))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let router = router.clone();
        async move {
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, retry, value)
        }
    };
    let batch = r#"{"events": [{"event_id": "locked-1", "user_id": "u1", "item_id": "a1", "kind": "view"}]}"#;
    // Another process's write transaction holds SQLite's write lock.
    let other = Store::open(&f._shop.url).await.unwrap();
    let lock = |id: &'static str| {
        let other = other.clone();
        async move {
            let mut import = other.begin_import().await.unwrap();
            use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, UserId};
            let event = Event {
                id: EventId::new(id).unwrap(),
                actor: Actor::User(UserId::new("lock-holder").unwrap()),
                item: Some(ItemId::new("a2").unwrap()),
                kind: EventKind::View,
                value: None,
                timestamp: chrono::Utc::now(),
                context: None,
            };
            import.insert_events(&[event]).await.unwrap();
            import
        }
    };
    let held = lock("lock-1").await;
    let waiting = tokio::spawn(send("POST", "/v1/events", batch));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, retry, v) = send("GET", "/v1/recommendations?user_id=u1&k=3", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(
        (error_code(&v), retry.as_deref()),
        ("overloaded", Some("1"))
    );
    assert_eq!(send("GET", "/healthz", "").await.0, StatusCode::OK);
    held.rollback().await.unwrap();
    let (status, _, v) = waiting.await.unwrap();
    assert_eq!(
        (status, v["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{v}"
    );
    assert_eq!(
        send("GET", "/v1/recommendations?user_id=u1&k=3", "")
            .await
            .0,
        StatusCode::OK,
        "the slot is free again"
    );

    // A lock held past the time limit: a clean 503, nothing half-stored, and the retry lands.
    let held = lock("lock-2").await;
    let late = r#"{"events": [{"event_id": "locked-2", "user_id": "u1", "item_id": "a3", "kind": "view"}]}"#;
    let (status, _, v) = send("POST", "/v1/events", late).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(["timeout", "store_busy"].contains(&error_code(&v)), "{v}");
    held.rollback().await.unwrap();
    let (status, _, v) = send("POST", "/v1/events", late).await;
    assert_eq!(
        (status, v["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{v}"
    );
    let events = f
        .store
        .events_of_user(&marquee_domain::UserId::new("u1").unwrap(), 100)
        .await
        .unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids.iter().filter(|i| **i == "locked-2").count(),
        1,
        "{ids:?}"
    );
    assert_eq!(
        ids.iter().filter(|i| **i == "locked-1").count(),
        1,
        "{ids:?}"
    );
}

/// A user's fresh events are read once per change, not per request: answers repeat from
/// memory, and a purchase stored through another replica (seen by the poll) or through this
/// server changes the next answer.
#[tokio::test]
async fn remembered_fresh_events_follow_every_change() {
    use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, UserId};
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    let body = r#"{"events": [{"event_id": "c-1", "user_id": "cachee", "item_id": "b2", "kind": "purchase"}]}"#;
    assert_eq!(
        call(&f, "POST", "/v1/events", key, Some(body)).await.0,
        StatusCode::ACCEPTED
    );
    f.state.refresh_fresh_users().await.unwrap();
    let all = "/v1/recommendations?user_id=cachee&k=16";
    let items = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, first) = call(&f, "GET", all, key, None).await;
    let (_, again) = call(&f, "GET", all, key, None).await;
    assert_eq!(items(&first), items(&again));
    assert!(!items(&first).contains(&"b2".to_owned()), "{first}");
    assert!(items(&first).contains(&"a1".to_owned()), "{first}");

    // Stored elsewhere: a purchase of a1. The poll brings it in; a1 is no longer offered.
    f.store
        .insert_events(&[Event {
            id: EventId::new("c-2").unwrap(),
            actor: Actor::User(UserId::new("cachee").unwrap()),
            item: Some(ItemId::new("a1").unwrap()),
            kind: EventKind::Purchase,
            value: None,
            timestamp: chrono::Utc::now(),
            context: None,
        }])
        .await
        .unwrap();
    f.state.refresh_fresh_users().await.unwrap();
    let (_, v) = call(&f, "GET", all, key, None).await;
    assert!(!items(&v).contains(&"a1".to_owned()), "{v}");

    // Posted here: a purchase of a3, gone from the very next answer.
    let body = r#"{"events": [{"event_id": "c-3", "user_id": "cachee", "item_id": "a3", "kind": "purchase"}]}"#;
    call(&f, "POST", "/v1/events", key, Some(body)).await;
    let (_, v) = call(&f, "GET", all, key, None).await;
    let now = items(&v);
    assert!(
        !now.contains(&"a3".to_owned()) && !now.contains(&"a1".to_owned()),
        "{v}"
    );
}

/// Every answer and every home row carries its own recommendation id and placement (the
/// caller's, else the route's), and what it showed is recorded as an impression, in order,
/// with the user or session, the placement and the model version.
#[tokio::test]
async fn answers_carry_recommendation_ids_and_are_recorded_as_impressions() {
    let f = fixture().await;
    let key = Some(f.storefront.as_str());
    let start = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let (s, rec) = call(&f, "GET", "/v1/recommendations?user_id=u0&k=3", key, None).await;
    assert_eq!(s, StatusCode::OK, "{rec}");
    assert_eq!(rec["placement"], "recommendations");
    let (s, hero) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=u1&k=2&placement=hero:banner",
        key,
        None,
    )
    .await;
    assert_eq!(
        (s, &hero["placement"]),
        (StatusCode::OK, &Value::from("hero:banner"))
    );
    let (s, home) = call(&f, "GET", "/v1/home?user_id=u1&k=2", key, None).await;
    assert_eq!(s, StatusCode::OK, "{home}");
    let (s, similar) = call(
        &f,
        "GET",
        "/v1/items/b3/similar?k=2&session_id=visit-7",
        key,
        None,
    )
    .await;
    assert_eq!(
        (s, &similar["placement"]),
        (StatusCode::OK, &Value::from("similar"))
    );
    let (s, session) = call(
        &f,
        "POST",
        "/v1/recommendations/session",
        key,
        Some(r#"{"items": ["a1"], "k": 2, "session_id": "visit-7"}"#),
    )
    .await;
    assert_eq!(
        (s, &session["placement"]),
        (StatusCode::OK, &Value::from("session"))
    );

    let mut answers: Vec<(&str, String, &Value)> = vec![
        ("u0", "recommendations".into(), &rec),
        ("u1", "hero:banner".into(), &hero),
    ];
    for row in home["rows"].as_array().unwrap() {
        let placement = format!("home:{}", row["id"].as_str().unwrap());
        assert_eq!(row["placement"], placement.as_str());
        answers.push(("u1", placement, row));
    }
    answers.push(("visit-7", "similar".into(), &similar));
    answers.push(("visit-7", "session".into(), &session));
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .map(|(_, _, a)| a["recommendation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), answers.len(), "ids repeat: {ids:?}");
    assert!(ids.iter().all(|id| id.len() == 32), "{ids:?}");

    f.state.flush_impressions().await;
    for (who, placement, answer) in &answers {
        let id = answer["recommendation_id"].as_str().unwrap();
        let imp = f
            .store
            .impression(id.parse().unwrap())
            .await
            .unwrap()
            .expect(id);
        assert!(imp.at >= start);
        assert_eq!(&imp.placement, placement);
        let shown: Vec<&str> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap())
            .collect();
        let recorded: Vec<&str> = imp.items.iter().collect();
        assert_eq!(recorded, shown, "{placement}");
        let audience = imp
            .user
            .as_ref()
            .map(|u| u.as_str())
            .or(imp.session.as_ref().map(|s| s.as_str()));
        assert_eq!(audience, Some(*who), "{placement}");
        assert_eq!(imp.model_version, "v1");
    }

    // A placement that is no name is refused, naming it.
    let (s, v) = call(
        &f,
        "GET",
        "/v1/recommendations?user_id=u0&placement=no%20spaces",
        key,
        None,
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &Value::from("invalid_placement"))
    );
}
