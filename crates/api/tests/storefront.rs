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

mod common;

struct Fixture {
    _shop: common::Shop,
    state: AppState,
    store: Store,
    router: axum::Router,
    storefront: String,
    admin: String,
}

async fn fixture() -> Fixture {
    let shop = common::shop().await;
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
        _shop: common::Shop {
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
    assert_eq!(rows, ["top_picks", "because_you_watched", "trending"]);

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
