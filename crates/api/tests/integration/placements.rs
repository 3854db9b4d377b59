//! Placements through the routers: saved, listed, refused with the field and position, served
//! with their rules and reasons and item details, bought-together answers from posted orders
//! (and a cancellation taking one out), rotation after impressions, placement rows on the
//! home page, and a second replica following a change.

use crate::outcomes::{Loop, items, setup};
use axum::http::StatusCode;
use marquee_api::{AppState, storefront_router};
use marquee_domain::Item;
use marquee_engine::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

fn reasons(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap().to_owned())
        .collect()
}

impl Loop {
    async fn put_placement(&self, name: &str, spec: Value) -> (StatusCode, Value) {
        self.admin("PUT", &format!("/v1/admin/placements/{name}"), Some(spec))
            .await
    }

    async fn get_ok(&self, uri: &str) -> Value {
        let (s, v) = self.shop("GET", uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        v
    }
}

/// Gives the shop's items brands (even: "x", odd: "y") and makes b-items cost more.
async fn with_brands(l: &Loop) {
    let items: Vec<Item> = l
        .shop
        .catalog
        .iter()
        .map(|i| {
            let mut i = i.clone();
            let n: i64 = i.id.as_str()[1..].parse().unwrap();
            i.attributes = json!({"brand": if n % 2 == 0 { "x" } else { "y" }});
            let euros = if i.category == "b" { 20 } else { 5 } + n;
            i.price = Some(marquee_domain::Money::new(
                euros * 100,
                marquee_domain::Currency::new("EUR").unwrap(),
            ));
            i
        })
        .collect();
    l.store.upsert_items(&items).await.unwrap();
    l.state.follow_shared_changes().await.unwrap();
}

#[tokio::test]
async fn placements_are_saved_checked_listed_and_deleted() {
    let l = setup().await;
    with_brands(&l).await;
    let spec = json!({"strategy": "personal", "k": 4, "filter": "price < 13",
                      "boosts": [{"when": "attributes.brand == 'y'", "factor": 2.5}]});
    let (s, v) = l.put_placement("deals", spec.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["spec"], spec);
    let (s, _) = l.put_placement("deals", spec.clone()).await;
    assert_eq!(s, StatusCode::OK, "saved again: replaced");
    let (s, v) = l.admin("GET", "/v1/admin/placements", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["placements"][0]["name"], "deals");
    let (s, v) = l.admin("GET", "/v1/admin/placements/deals", None).await;
    assert_eq!((s, &v["spec"]), (StatusCode::OK, &spec));

    // Refusals name what is wrong.
    let (s, v) = l
        .put_placement(
            "bad",
            json!({"strategy": "personal", "filter": "price < 'cheap'"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_placement");
    assert_eq!(v["error"]["field"], "filter");
    assert_eq!(v["error"]["position"], 9);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a number"),
        "{v}"
    );
    let (s, v) = l
        .put_placement("bad", json!({"strategy": "cheapest"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("cheapest"),
        "{v}"
    );
    let (s, v) = l
        .put_placement(
            "bad",
            json!({"strategy": "personal", "boosts": [{"when": "attributes.colour == 'red'", "factor": 2}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "boosts[0].when");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("type is unknown"),
        "{v}"
    );
    let (s, v) = l
        .put_placement("bad%20name", json!({"strategy": "personal"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = l
        .put_placement("bad", json!({"strategy": "personal", "colour": 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    let (s, _) = l.admin("GET", "/v1/admin/placements/bad", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing refused was saved");

    // Served; then deleted, the name is an ordinary label again.
    let v = l
        .get_ok("/v1/recommendations?placement=deals&user_id=u0")
        .await;
    assert_eq!(v["placement"], "deals");
    assert_eq!(items(&v).len(), 4);
    let (s, _) = l.admin("DELETE", "/v1/admin/placements/deals", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = l.admin("DELETE", "/v1/admin/placements/deals", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let v = l
        .get_ok("/v1/recommendations?placement=deals&user_id=u0")
        .await;
    assert_eq!(items(&v).len(), 10, "the plain answer, k 10");
}

#[tokio::test]
async fn a_placement_answer_follows_its_rules_and_carries_reasons_and_details() {
    let l = setup().await;
    with_brands(&l).await;
    let (s, v) = l
        .put_placement(
            "shelf",
            json!({"strategy": "personal", "k": 3,
                   "filter": "category == context.shelf && price < 30",
                   "diversity": {"attribute": "attributes.brand", "max_per_value": 2},
                   "promotion": {"filter": "attributes.brand == 'x'", "positions": [1]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // u0 took a-items; the shelf asks for b-items under 30 euros (b0..b9: 20 + n).
    let v = l
        .get_ok("/v1/recommendations?placement=shelf&user_id=u0&context.shelf=b&include=item")
        .await;
    let got = items(&v);
    assert_eq!(got.len(), 3, "{v}");
    for (n, i) in v["items"].as_array().unwrap().iter().enumerate() {
        let detail = &i["item"];
        assert_eq!(detail["category"], "b", "{v}");
        assert!(detail["price"].as_f64().unwrap() < 30.0, "{v}");
        assert_eq!(detail["currency"], "EUR");
        assert_eq!(
            detail["title"], detail["id"],
            "the shop's titles are the ids"
        );
        assert!(detail["attributes"]["brand"].is_string());
        if n == 0 {
            assert_eq!(i["reason"], "promoted", "{v}");
            assert_eq!(detail["attributes"]["brand"], "x");
        }
    }
    let brands: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["attributes"]["brand"].as_str().unwrap())
        .collect();
    assert!(
        brands.iter().filter(|b| **b == "x").count() <= 2,
        "{brands:?}"
    );
    assert!(
        brands.iter().filter(|b| **b == "y").count() <= 2,
        "{brands:?}"
    );
    // Without the context value nothing passes the filter: an empty row, not an error.
    let v = l
        .get_ok("/v1/recommendations?placement=shelf&user_id=u0")
        .await;
    assert!(items(&v).is_empty(), "{v}");

    // The plain route carries reasons (and details when asked).
    let v = l
        .get_ok("/v1/recommendations?user_id=u0&k=3&include=item")
        .await;
    assert!(
        reasons(&v)
            .iter()
            .all(|r| r == "personal" || r == "because_you_watched")
    );
    assert!(v["items"][0]["item"]["title"].is_string(), "{v}");
    let v = l.get_ok("/v1/recommendations?user_id=stranger&k=3").await;
    assert!(reasons(&v).iter().all(|r| r == "trending_fallback"), "{v}");

    // Bad input: unknown include, a strategy missing its item, an unknown item.
    let (s, v) = l
        .shop("GET", "/v1/recommendations?user_id=u0&include=price", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_include"))
    );
    let (s, _) = l
        .put_placement("more_like", json!({"strategy": "similar", "k": 4}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = l
        .shop("GET", "/v1/recommendations?placement=more_like", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("item_id"),
        "{v}"
    );
    let (s, v) = l
        .shop(
            "GET",
            "/v1/recommendations?placement=more_like&item_id=zz",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let v = l
        .get_ok("/v1/recommendations?placement=more_like&item_id=a0")
        .await;
    assert!(
        reasons(&v)
            .iter()
            .all(|r| r == "similar" || r == "trending_fallback")
    );
    assert!(!items(&v).contains(&"a0".to_owned()));

    // Placement rows on the home page, each an answer of its own.
    // `more_like` needs an item: a home row cannot be it.
    let (s, v) = l
        .shop("GET", "/v1/home?user_id=u0&rows=shelf,more_like&k=3", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_input"))
    );
    let (s, v) = l.shop("GET", "/v1/home?user_id=u0&rows=nope", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_placement"))
    );
}

#[tokio::test]
async fn home_rows_can_be_placements() {
    let l = setup().await;
    with_brands(&l).await;
    for (name, spec) in [
        (
            "cheap",
            json!({"strategy": "trending", "filter": "price < 10"}),
        ),
        (
            "for_you",
            json!({"strategy": "personal", "filter": "category == 'b'"}),
        ),
    ] {
        let (s, v) = l.put_placement(name, spec).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let v = l
        .get_ok("/v1/home?user_id=u1&rows=cheap,for_you&k=3&include=item")
        .await;
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "cheap");
    assert_eq!(rows[0]["placement"], "cheap");
    assert_ne!(rows[0]["recommendation_id"], rows[1]["recommendation_id"]);
    for i in rows[0]["items"].as_array().unwrap() {
        assert!(i["item"]["price"].as_f64().unwrap() < 10.0, "{v}");
    }
    for i in rows[1]["items"].as_array().unwrap() {
        assert_eq!(i["item"]["category"], "b", "{v}");
    }
}

#[tokio::test]
async fn bought_together_follows_orders_and_rotation_follows_impressions() {
    let l = setup().await;
    l.state.follow_shared_changes().await.unwrap();
    for (id, user, lines) in [
        ("o1", "u1", ["a0", "b3"]),
        ("o2", "u2", ["a0", "b3"]),
        ("o3", "u3", ["a0", "b5"]),
    ] {
        let lines: Vec<Value> = lines
            .iter()
            .map(|i| json!({"item_id": i, "quantity": 1}))
            .collect();
        let (s, v) = l
            .shop(
                "POST",
                "/v1/orders",
                Some(json!({"order_id": id, "user_id": user, "lines": lines})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _) = l
        .put_placement(
            "together",
            json!({"strategy": "frequently_bought_together", "k": 4}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let v = l
        .get_ok("/v1/recommendations?placement=together&item_id=a0")
        .await;
    assert_eq!(items(&v)[..2], ["b3", "b5"], "{v}");
    assert_eq!(reasons(&v)[..2], ["bought_together", "bought_together"]);
    assert_eq!(v["items"][0]["score"], 2.0);
    // A cart: what goes with its items.
    let v = l
        .get_ok("/v1/recommendations?placement=together&items=b3,b5")
        .await;
    assert_eq!(items(&v)[0], "a0", "{v}");
    // Cancelling o3 takes b5 out.
    let (s, v) = l
        .admin(
            "PATCH",
            "/v1/admin/orders/o3",
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = l
        .get_ok("/v1/recommendations?placement=together&item_id=a0")
        .await;
    assert_eq!(items(&v)[0], "b3");
    assert_ne!(v["items"][1]["reason"], "bought_together", "{v}");

    // Rotation: after two answers showing an item without a click, it drops to the end.
    let (s, _) = l
        .put_placement(
            "rotating",
            json!({"strategy": "trending", "k": 4,
                   "rotation": {"after_impressions": 2, "within_hours": 24, "factor": 0.0}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let uri = "/v1/recommendations?placement=rotating&user_id=u4";
    let first = l.get_ok(uri).await;
    l.state.flush_impressions().await;
    let second = l.get_ok(uri).await;
    l.state.flush_impressions().await;
    assert_eq!(items(&first), items(&second), "shown once: unchanged");
    let third = l.get_ok(uri).await;
    l.state.flush_impressions().await;
    // Each of the first answer's items was shown twice: all give way to others.
    assert_eq!(items(&third).len(), 4);
    assert!(
        items(&third).iter().all(|i| !items(&first).contains(i)),
        "{third} after {first}"
    );
    // A click keeps an item from rotating out.
    let top = items(&first)[0].clone();
    let (s, v) = l
        .shop(
            "POST",
            "/v1/events",
            Some(json!({"events": [{"event_id": "c1", "user_id": "u4", "item_id": top, "kind": "click"}]})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let fourth = l.get_ok(uri).await;
    assert!(
        items(&fourth).contains(&top),
        "the clicked item is back: {fourth}"
    );
    for other in &items(&first)[1..] {
        assert!(!items(&fourth).contains(other), "{fourth}");
    }
}

#[tokio::test]
async fn another_replica_follows_a_saved_placement_and_orders() {
    let l = setup().await;
    let engine = Engine::open(&l.shop.model, l.shop.catalog.clone()).unwrap();
    let other = AppState::new(Arc::new(engine), l.store.clone());
    let other_router = storefront_router(other.clone());
    // The other replica has started (and counted the orders there were: none).
    other.follow_shared_changes().await.unwrap();
    let (s, _) = l
        .put_placement(
            "only_b",
            json!({"strategy": "trending", "filter": "category == 'b'"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = l
        .put_placement(
            "together",
            json!({"strategy": "frequently_bought_together", "k": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for id in ["o1", "o2"] {
        let (s, v) = l
            .shop(
                "POST",
                "/v1/orders",
                Some(json!({"order_id": id, "user_id": "u1", "lines": [
                    {"item_id": "a0", "quantity": 1}, {"item_id": "b3", "quantity": 1}]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    other.follow_shared_changes().await.unwrap();
    let ask = |uri: &'static str| {
        let (router, key) = (other_router.clone(), l.key.clone());
        async move {
            let (s, v) = crate::outcomes::call(&router, &key, "GET", uri, None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let v = ask("/v1/recommendations?placement=only_b").await;
    assert!(items(&v).iter().all(|i| i.starts_with('b')), "{v}");
    assert!(!items(&v).is_empty());
    let v = ask("/v1/recommendations?placement=together&item_id=a0").await;
    assert_eq!(items(&v)[0], "b3", "{v}");
    assert_eq!(v["items"][0]["reason"], "bought_together");
    assert_eq!(v["items"][0]["score"], 2.0);
    // Cancelled through the first replica: the second takes them out.
    for id in ["o1", "o2"] {
        let (s, v) = l
            .admin(
                "PATCH",
                &format!("/v1/admin/orders/{id}"),
                Some(json!({"status": "cancelled"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    other.follow_shared_changes().await.unwrap();
    let v = ask("/v1/recommendations?placement=together&item_id=a0").await;
    assert!(reasons(&v).iter().all(|r| r == "trending_fallback"), "{v}");
}
