//! Behaviour from the browser: publishable keys (events and the session answer only, from
//! allowed origins), CORS, beacons' text/plain bodies, identify, and the tracker script.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use marquee_api::{AppState, admin_router, storefront_router};
use marquee_domain::{ItemId, SessionId, UserId};
use marquee_engine::Engine;
use marquee_store::{ApiKeyRole, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const SHOP: &str = "https://shop.example";

struct Fixture {
    _shop: crate::common::Shop,
    store: Store,
    storefront: axum::Router,
    admin: axum::Router,
    admin_key: String,
    storefront_key: String,
}

async fn fixture() -> Fixture {
    let shop = crate::common::shop().await;
    let store = Store::open(&shop.url).await.unwrap();
    let admin_key = store
        .create_api_key(ApiKeyRole::Admin, "t")
        .await
        .unwrap()
        .key;
    let storefront_key = store
        .create_api_key(ApiKeyRole::Storefront, "t")
        .await
        .unwrap()
        .key;
    let engine = Engine::open(&shop.model, shop.catalog.clone()).unwrap();
    let state = AppState::new(Arc::new(engine), store.clone());
    Fixture {
        _shop: shop,
        store,
        storefront: storefront_router(state.clone()),
        admin: admin_router(state),
        admin_key,
        storefront_key,
    }
}

/// One request: `headers` are (name, value) pairs. Returns the status, the headers and the
/// body as JSON (Null when it is not JSON).
async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let h = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        h,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn publishable(f: &Fixture, origins: Value) -> (StatusCode, Value) {
    let bearer = format!("Bearer {}", f.admin_key);
    let body = json!({"role": "publishable", "label": "web", "origins": origins});
    let (status, _, v) = send(
        &f.admin,
        "POST",
        "/v1/admin/keys",
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        &body.to_string(),
    )
    .await;
    (status, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn batch(events: Value) -> String {
    json!({ "events": events }).to_string()
}

#[tokio::test]
async fn publishable_keys_send_events_from_their_origins_and_nothing_else() {
    let f = fixture().await;
    // Creation: origins are required for publishable keys and refused for secret ones.
    let (status, v) = publishable(&f, json!(null)).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_origins")
    );
    let (status, v) = publishable(&f, json!(["shop.example/path"])).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_origins")
    );
    let (status, v) = publishable(&f, json!([format!("{SHOP}/")])).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["origins"], json!([SHOP]));
    let key = v["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mq_pk_"));
    let bearer = format!("Bearer {}", f.admin_key);
    let (_, _, listed) = send(
        &f.admin,
        "GET",
        "/v1/admin/keys",
        &[("authorization", bearer.as_str())],
        "",
    )
    .await;
    let shown = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "publishable")
        .unwrap();
    assert_eq!(
        shown["key"],
        key.as_str(),
        "a publishable key is listed in full"
    );
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["role"] != "publishable")
            .all(|k| k["key"].is_null()),
        "secret keys never are"
    );

    // A beacon: text/plain, the key in the query, from the allowed origin.
    let events = batch(json!([
        {"event_id": "js-1", "session_id": "anon-1", "item_id": "a0", "kind": "click"},
        {"event_id": "js-2", "session_id": "anon-1", "kind": "view", "context": {"url": "/"}},
    ]));
    let uri = format!("/v1/events?key={key}");
    let (status, h, v) = send(
        &f.storefront,
        "POST",
        &uri,
        &[
            ("origin", SHOP),
            ("content-type", "text/plain;charset=UTF-8"),
        ],
        &events,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(h["access-control-allow-origin"], SHOP);
    let stored = f
        .store
        .events_of_session(&SessionId::new("anon-1").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);

    // From another site, or with no page origin at all: refused, nothing stored.
    let other = batch(
        json!([{"event_id": "js-3", "session_id": "anon-1", "item_id": "a1", "kind": "click"}]),
    );
    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
        ],
        vec![("content-type", "text/plain")],
        vec![
            ("referer", "https://evil.example/page"),
            ("content-type", "text/plain"),
        ],
    ] {
        let (status, _, v) = send(&f.storefront, "POST", &uri, &headers, &other).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::FORBIDDEN, "origin_not_allowed"),
            "{headers:?}"
        );
    }
    // A same-origin GET names its page in Referer only.
    let (status, _, _) = send(
        &f.storefront,
        "GET",
        &format!("/v1/recommendations?session_id=anon-1&key={key}"),
        &[("referer", "https://shop.example/items/a0")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        f.store
            .events_of_session(&SessionId::new("anon-1").unwrap(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // Unsupported bodies say what to send.
    let (status, _, v) = send(
        &f.storefront,
        "POST",
        &uri,
        &[
            ("origin", SHOP),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "a=b",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (status, _, v) = send(
        &f.storefront,
        "POST",
        &uri,
        &[("origin", SHOP), ("content-type", "text/plain")],
        "{not json",
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );

    // Every other route refuses the key, even from its own origin.
    let pk = format!("Bearer {key}");
    let h = [
        ("authorization", pk.as_str()),
        ("origin", SHOP),
        ("content-type", "application/json"),
    ];
    for (method, route, body) in [
        ("GET", "/v1/recommendations?user_id=u0", ""),
        ("GET", "/v1/recommendations", ""),
        ("GET", "/v1/home?user_id=u0", ""),
        ("GET", "/v1/items/a0/similar", ""),
        (
            "POST",
            "/v1/recommendations/session",
            r#"{"items": ["a0"]}"#,
        ),
        ("GET", "/v1/items", ""),
        ("GET", "/v1/items/a0", ""),
        ("GET", "/v1/categories", ""),
        ("POST", "/v1/orders", "{}"),
        ("GET", "/v1/orders/o1", ""),
        ("GET", "/v1/users/u0/orders", ""),
    ] {
        let (status, _, v) = send(&f.storefront, method, route, &h, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {route}: {v}");
        assert_eq!(code(&v), "wrong_key", "{method} {route}");
    }
    for route in [
        "/v1/admin/models",
        "/v1/admin/keys",
        "/v1/admin/analytics/events",
    ] {
        let (status, _, _) = send(&f.admin, "GET", route, &h, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
    }
    let (status, _, _) = send(
        &f.admin,
        "POST",
        "/v1/admin/keys",
        &h,
        r#"{"role": "admin"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // In the query, as a beacon sends it: the same refusal.
    for route in ["/v1/items", "/v1/home?user_id=u0"] {
        let sep = if route.contains('?') { '&' } else { '?' };
        let uri = format!("{route}{sep}key={key}");
        let (status, _, v) = send(&f.storefront, "GET", &uri, &[("origin", SHOP)], "").await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::FORBIDDEN, "wrong_key"),
            "{uri}"
        );
    }

    // Preflight: answered for the allowed origin (with or without the key in the query).
    for uri in [format!("/v1/events?key={key}"), "/v1/events".to_owned()] {
        let (status, h, _) = send(
            &f.storefront,
            "OPTIONS",
            &uri,
            &[
                ("origin", SHOP),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            "",
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{uri}");
        assert_eq!(h["access-control-allow-origin"], SHOP);
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
    }
    let (status, h, _) = send(
        &f.storefront,
        "OPTIONS",
        &format!("/v1/events?key={key}"),
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(h.get("access-control-allow-origin").is_none());

    // A revoked key stops working.
    let prefix = &key[..14];
    let (status, _, _) = send(
        &f.admin,
        "DELETE",
        &format!("/v1/admin/keys/{prefix}"),
        &[("authorization", bearer.as_str())],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, v) = send(
        &f.storefront,
        "POST",
        &uri,
        &[("origin", SHOP), ("content-type", "text/plain")],
        &other,
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_key")
    );
}

#[tokio::test]
async fn the_session_answer_follows_the_session_and_self_means_this_server() {
    let f = fixture().await;
    let (status, v) = publishable(&f, json!(["self"])).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().unwrap().to_owned();
    let here = [
        ("host", "shop.local:8080"),
        ("origin", "http://shop.local:8080"),
        ("content-type", "text/plain"),
    ];
    let answer = |session: &'static str| {
        let uri = format!("/v1/recommendations?session_id={session}&k=5&key={key}");
        let router = f.storefront.clone();
        async move {
            let (status, _, v) = send(&router, "GET", &uri, &here, "").await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["item"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let before = answer("anon-b").await;
    let (status, _, v) = send(
        &f.storefront,
        "POST",
        &format!("/v1/events?key={key}"),
        &here,
        &batch(json!([
            {"event_id": "b-1", "session_id": "anon-b", "item_id": "b0", "kind": "click"},
            {"event_id": "b-2", "session_id": "anon-b", "item_id": "b1", "kind": "click"},
        ])),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let after = answer("anon-b").await;
    assert_ne!(before, after, "the session's clicks change its answer");
    assert!(
        after
            .iter()
            .all(|i| i.starts_with('b') && i != "b0" && i != "b1"),
        "the rest of the b group, not what was clicked: {after:?}"
    );
    // Another site's page with the same key: refused.
    let (status, _, v) = send(
        &f.storefront,
        "GET",
        &format!("/v1/recommendations?session_id=anon-b&key={key}"),
        &[
            ("host", "shop.local:8080"),
            ("origin", "http://shop.local:9090"),
        ],
        "",
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::FORBIDDEN, "origin_not_allowed")
    );
}

#[tokio::test]
async fn identify_makes_the_sessions_events_the_users() {
    let f = fixture().await;
    let (_, v) = publishable(&f, json!([SHOP])).await;
    let key = v["key"].as_str().unwrap().to_owned();
    let post = |events: Value| {
        let router = f.storefront.clone();
        let uri = format!("/v1/events?key={key}");
        async move {
            let (status, _, v) = send(
                &router,
                "POST",
                &uri,
                &[("origin", SHOP), ("content-type", "text/plain")],
                &batch(events),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        }
    };
    let sf = format!("Bearer {}", f.storefront_key);
    let for_u5 = || async {
        let (status, _, v) = send(
            &f.storefront,
            "GET",
            "/v1/recommendations?user_id=u5&k=12",
            &[("authorization", sf.as_str())],
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // u5 (the b group) has seen 4 items; the other 12 are all in a k=12 answer.
    assert!(for_u5().await.contains(&"a0".to_owned()));
    // Anonymous clicks, then the visitor signs in: an event with both ids.
    post(json!([
        {"event_id": "s-1", "session_id": "anon-5", "item_id": "a0", "kind": "click"},
        {"event_id": "s-2", "session_id": "anon-5", "item_id": "a1", "kind": "add_to_cart"},
    ]))
    .await;
    post(json!([
        {"event_id": "s-3", "session_id": "anon-5", "user_id": "u5", "kind": "view"},
    ]))
    .await;
    let u5 = UserId::new("u5").unwrap();
    assert_eq!(
        f.store
            .identity_of(&SessionId::new("anon-5").unwrap())
            .await
            .unwrap(),
        Some(u5.clone())
    );
    let mine: Vec<String> = f
        .store
        .events_of_user(&u5, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    // Fold-in: the anonymous clicks are now u5's seen items.
    let after = for_u5().await;
    assert!(
        !after.contains(&"a0".to_owned()) && !after.contains(&"a1".to_owned()),
        "{after:?}"
    );
    // Training reads them as u5's.
    let mut keys = Vec::new();
    f.store
        .for_each_event(None, |e| {
            keys.push(e.actor.interaction_key());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(keys, ["u5", "u5", "u5"]);
}

#[tokio::test]
async fn the_tracker_script_is_served_without_a_key() {
    let f = fixture().await;
    let (status, h, _) = send(&f.storefront, "GET", "/sdk/marquee.js", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let res = f
        .storefront
        .clone()
        .oneshot(
            Request::builder()
                .uri("/sdk/marquee.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for needle in ["sendBeacon", "data-mq-item", "identify", "/v1/events?key="] {
        assert!(text.contains(needle), "{needle}");
    }
}

/// A hand-made log with known answers (times from Monday 2024-03-04 00:00 UTC):
/// - u1 views a0 (0 h), adds it to the cart (1 h), buys it (2 h); views b0 a week later;
/// - u2 views a1 (3 h), adds it to the cart 27 h later;
/// - anonymous s9 views a0 (5 h) and adds it (5.5 h);
/// - u3 views b1 on day 8 and b2 on day 15;
/// - orders: u1 {a0, b3} at 2 h and {b4, a0} on day 10; u2 {a0} on day 3, {a5} on day 4
///   (cancelled), {b4} on day 5.
async fn hand_made_log(store: &Store) {
    use chrono::TimeZone;
    use marquee_domain::{
        Actor, Currency, Event, EventId, EventKind, Money, Order, OrderId, OrderLine, OrderStatus,
        User,
    };
    let t0 = chrono::Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap();
    let at = |minutes: i64| t0 + chrono::TimeDelta::minutes(minutes);
    let event = |id: &str, who: &str, item: &str, kind: EventKind, minutes: i64| Event {
        id: EventId::new(id).unwrap(),
        actor: match who.strip_prefix("session:") {
            Some(s) => Actor::Session(SessionId::new(s).unwrap()),
            None => Actor::User(UserId::new(who).unwrap()),
        },
        item: Some(ItemId::new(item).unwrap()),
        kind,
        value: None,
        timestamp: at(minutes),
        context: None,
    };
    use EventKind::{AddToCart, Purchase, View};
    const H: i64 = 60;
    const D: i64 = 24 * H;
    store
        .insert_events(&[
            event("e1", "u1", "a0", View, 0),
            event("e2", "u1", "a0", AddToCart, H),
            event("e3", "u1", "a0", Purchase, 2 * H),
            event("e4", "u1", "b0", View, 7 * D + H),
            event("e5", "u2", "a1", View, 3 * H),
            event("e6", "u2", "a1", AddToCart, 30 * H),
            event("e7", "session:s9", "a0", View, 5 * H),
            event("e8", "session:s9", "a0", AddToCart, 5 * H + 30),
            event("e9", "u3", "b1", View, 8 * D),
            event("e10", "u3", "b2", View, 15 * D),
        ])
        .await
        .unwrap();
    let users: Vec<User> = ["u1", "u2", "u3"]
        .iter()
        .map(|u| User::new(UserId::new(*u).unwrap(), t0))
        .collect();
    store.upsert_users(&users).await.unwrap();
    let gbp = Currency::new("GBP").unwrap();
    let order = |id: &str, user: &str, minutes: i64, items: &[&str], status: OrderStatus| Order {
        id: OrderId::new(id).unwrap(),
        user: Some(UserId::new(user).unwrap()),
        created_at: at(minutes),
        status,
        lines: items
            .iter()
            .map(|i| OrderLine {
                item: ItemId::new(*i).unwrap(),
                quantity: 1,
                unit_price: Money::new(100, gbp),
            })
            .collect(),
    };
    store
        .put_orders(&[
            order("o1", "u1", 2 * H, &["a0", "b3"], OrderStatus::Paid),
            order("o2", "u1", 10 * D, &["b4", "a0"], OrderStatus::Paid),
            order("o3", "u2", 3 * D, &["a0"], OrderStatus::Paid),
            order("o4", "u2", 4 * D, &["a5"], OrderStatus::Cancelled),
            order("o5", "u2", 5 * D, &["b4"], OrderStatus::Paid),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn product_analytics_are_exact_on_a_hand_made_log() {
    let f = fixture().await;
    hand_made_log(&f.store).await;
    let bearer = format!("Bearer {}", f.admin_key);
    let get = |uri: String| {
        let admin = f.admin.clone();
        let bearer = bearer.clone();
        async move {
            let (status, _, v) = send(
                &admin,
                "GET",
                &uri,
                &[("authorization", bearer.as_str())],
                "",
            )
            .await;
            (status, v)
        }
    };
    let funnel = |body: Value| {
        let admin = f.admin.clone();
        let bearer = bearer.clone();
        async move {
            let (status, _, v) = send(
                &admin,
                "POST",
                "/v1/admin/analytics/funnel",
                &[
                    ("authorization", bearer.as_str()),
                    ("content-type", "application/json"),
                ],
                &body.to_string(),
            )
            .await;
            (status, v)
        }
    };
    let people = |v: &Value| -> Vec<u64> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["people"].as_u64().unwrap())
            .collect()
    };
    let steps = json!([{"kind": "view"}, {"kind": "add_to_cart"}, {"kind": "purchase"}]);
    let (status, v) = funnel(json!({"steps": steps})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(people(&v), [4, 2, 1], "{v}");
    assert_eq!(v["window_hours"], 24);
    assert_eq!(v["steps"][1]["conversion"], 0.5);
    assert_eq!(v["steps"][1]["median_seconds_from_previous"], 2700.0);
    assert_eq!(v["steps"][2]["median_seconds_from_previous"], 3600.0);
    assert_eq!(v["steps"][2]["from_previous"], 0.5);
    let (_, v) = funnel(json!({"steps": steps, "window_hours": 48})).await;
    assert_eq!(people(&v), [4, 3, 1]);
    let (_, v) =
        funnel(json!({"steps": [{"kind": "view", "category": "a"}, {"kind": "add_to_cart"}]}))
            .await;
    assert_eq!(people(&v), [3, 2]);
    let (_, v) = funnel(
        json!({"steps": [{"kind": "view", "item_id": "a0"}, {"kind": "order", "item_id": "a0"}]}),
    )
    .await;
    assert_eq!(
        people(&v),
        [2, 1],
        "u1 ordered a0 2 h after viewing it; s9 never ordered"
    );
    let (_, v) = funnel(json!({"steps": steps, "from": "2024-03-11"})).await;
    assert_eq!(
        people(&v),
        [2, 0, 0],
        "u1 (again) and u3 enter after the 11th"
    );

    let (status, v) = get("/v1/admin/analytics/retention".into()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let cohorts = v["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 2, "{v}");
    assert_eq!(cohorts[0]["week"], "2024-03-04");
    assert_eq!(cohorts[0]["people"], 2);
    assert_eq!(cohorts[0]["active"], json!([2, 1, 0]));
    assert_eq!(cohorts[0]["share"], json!([1.0, 0.5, 0.0]));
    assert_eq!(cohorts[1]["week"], "2024-03-11");
    assert_eq!(cohorts[1]["active"], json!([1, 1]));
    let (_, v) = get("/v1/admin/analytics/retention?kinds=order".into()).await;
    assert_eq!(
        v["cohorts"][0]["active"],
        json!([2, 1]),
        "u1 ordered again in week 1: {v}"
    );

    let (status, v) = get("/v1/admin/analytics/next-purchase?item=a0".into()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["buyers"], 2);
    assert_eq!(v["buyers_with_later_orders"], 2);
    assert_eq!(
        v["items"],
        json!([
            {"item_id": "b4", "customers": 2, "share": 1.0},
            {"item_id": "a0", "customers": 1, "share": 0.5},
        ])
    );

    let (status, v) = get("/v1/admin/analytics/events?kind=view".into()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 6);
    let days: Vec<(String, u64)> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().to_owned(),
                d["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2024-03-04".to_owned(), 3),
            ("2024-03-11".to_owned(), 1),
            ("2024-03-12".to_owned(), 1),
            ("2024-03-19".to_owned(), 1),
        ]
    );
    let (_, v) = get("/v1/admin/analytics/events?from=2024-03-04&to=2024-03-06".into()).await;
    assert_eq!(
        v["totals"],
        json!({"view": 3, "add_to_cart": 3, "purchase": 1})
    );
    let (_, v) = get("/v1/admin/analytics/events?category=b".into()).await;
    assert_eq!(v["total"], 3);
    let (_, v) = get("/v1/admin/analytics/events?item_id=a1".into()).await;
    assert_eq!(v["totals"], json!({"view": 1, "add_to_cart": 1}));

    // Bad questions: a 400 naming what is wrong.
    for (body, needle) in [
        (json!({"steps": [{"kind": "view"}]}), "2 to 10 steps"),
        (
            json!({"steps": [{"kind": "view"}, {"kind": "buy"}]}),
            "steps[1].kind",
        ),
        (json!({"steps": steps, "window_hours": 0}), "window_hours"),
        (
            json!({"steps": [{"kind": "view", "item_id": "a0", "category": "a"}, {"kind": "click"}]}),
            "not both",
        ),
        (
            json!({"steps": steps, "from": "2024-03-10", "to": "2024-03-01"}),
            "before",
        ),
    ] {
        let (status, v) = funnel(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    for (uri, code_wanted) in [
        ("/v1/admin/analytics/retention?weeks=0", "invalid_weeks"),
        (
            "/v1/admin/analytics/retention?kinds=view,nap",
            "invalid_kinds",
        ),
        ("/v1/admin/analytics/next-purchase", "missing_item"),
        (
            "/v1/admin/analytics/next-purchase?item=a0&limit=0",
            "invalid_limit",
        ),
        ("/v1/admin/analytics/events?kind=nap", "invalid_kind"),
        ("/v1/admin/analytics/events?from=yesterday", "invalid_date"),
    ] {
        let (status, v) = get(uri.into()).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::BAD_REQUEST, code_wanted),
            "{uri}: {v}"
        );
    }
}
