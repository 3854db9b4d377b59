//! Placements over a real EASE artifact and a hand-made catalog: filters, boosts, diversity
//! caps, promotion positions, rotation, every strategy, reasons, and refusals.

use chrono::{TimeZone, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, EventWeights, Item, ItemId, Money, Order, OrderId,
    OrderLine, OrderStatus, Timestamp, UserId,
};
use marquee_engine::{
    Boost, Diversity, Engine, Error, PlaceRequest, PlacementSpec, Promotion, Reason, Rotation,
    Strategy,
};
use marquee_models::search::Candidate;
use marquee_models::{Artifact, EaseParams, Interactions};
use std::collections::HashMap;

const DAY: i64 = 86_400_000;

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// 30 users over items a0..a9 and b0..b9: user u takes 6 items, mostly of group u % 2.
fn data() -> Interactions {
    let mut rows = Vec::new();
    let users: Vec<String> = (0..30).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|g| (0..10).map(move |i| format!("{g}{i}")))
        .collect();
    for (u, user) in users.iter().enumerate() {
        for k in 0..6 {
            let group = if k == 5 { 1 - u % 2 } else { u % 2 };
            let i = group * 10 + (u / 2 + k * 3) % 10;
            let at = t0().timestamp_millis() + (u * 6 + k) as i64 * DAY / 10;
            rows.push((user.as_str(), items[i].as_str(), 1.0, at));
        }
    }
    Interactions::from_timed_triplets(rows)
}

/// Group a is category "A", b "B"; item i costs i + 1 euros; brand "x" for even i, "y" for
/// odd; genres: the group's letter, plus "Sale" for i < 3.
fn catalog() -> Vec<Item> {
    let mut items = Vec::new();
    for g in ["a", "b"] {
        for i in 0..10 {
            let mut item = Item::new(
                ItemId::new(format!("{g}{i}")).unwrap(),
                format!("{g} {i}"),
                g.to_uppercase(),
                t0() - chrono::TimeDelta::days(i64::from(i)),
            );
            item.price = Some(Money::new(
                100 * i64::from(i + 1),
                Currency::new("EUR").unwrap(),
            ));
            item.genres = vec![g.to_uppercase()];
            if i < 3 {
                item.genres.push("Sale".into());
            }
            item.attributes = serde_json::json!({"brand": if i % 2 == 0 { "x" } else { "y" }});
            items.push(item);
        }
    }
    items
}

fn engine(catalog: Vec<Item>) -> (tempfile::TempDir, Engine) {
    let root = tempfile::tempdir().unwrap();
    let x = data();
    let candidate = Candidate::Ease(EaseParams {
        lambda: 5.0,
        ..EaseParams::default()
    });
    let (model, _) = marquee_neural::fit(&candidate, &x, None, &mut |_, _| true).unwrap();
    let mut artifact = Artifact::new(
        "shop",
        "v1",
        model,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    );
    let dir = root.path().join("shop/v1");
    artifact.save(&dir).unwrap();
    let engine = Engine::open(&dir, catalog).unwrap();
    (root, engine)
}

fn spec(strategy: Strategy) -> PlacementSpec {
    PlacementSpec {
        strategy,
        k: Some(5),
        filter: None,
        boosts: Vec::new(),
        diversity: None,
        promotion: None,
        rotation: None,
    }
}

fn set(engine: &Engine, name: &str, spec: PlacementSpec) {
    engine.check_placement(&spec).unwrap();
    let mut all = (*engine.placements()).clone();
    all.insert(name.to_owned(), spec);
    engine.set_placements(all);
}

fn uid(u: &str) -> UserId {
    UserId::new(u).unwrap()
}

fn iid(i: &str) -> ItemId {
    ItemId::new(i).unwrap()
}

fn now() -> i64 {
    t0().timestamp_millis() + 30 * DAY
}

fn place(engine: &Engine, name: &str, req: PlaceRequest<'_>) -> Vec<(String, Reason)> {
    let req = PlaceRequest {
        now_ms: now(),
        ..req
    };
    engine
        .place(name, &req)
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.item.to_string(), r.reason))
        .collect()
}

fn ids(v: &[(String, Reason)]) -> Vec<&str> {
    v.iter().map(|(i, _)| i.as_str()).collect()
}

#[test]
fn filters_boosts_diversity_and_promotions_shape_the_answer() {
    let (_root, engine) = engine(catalog());
    let user = uid("u0");
    let who = || PlaceRequest {
        user: Some(&user),
        ..PlaceRequest::default()
    };
    // The plain personal ranking: u0 mostly took group a.
    set(&engine, "plain", spec(Strategy::Personal));
    let plain = place(&engine, "plain", who());
    assert_eq!(plain.len(), 5);
    assert!(
        plain
            .iter()
            .all(|(_, r)| matches!(r, Reason::Personal | Reason::BecauseYouWatched))
    );

    // A filter keeps only what it passes; the answer is still full.
    set(
        &engine,
        "cheap_b",
        PlacementSpec {
            filter: Some(r#"category == "B" && price <= 6"#.into()),
            ..spec(Strategy::Personal)
        },
    );
    let cheap = place(&engine, "cheap_b", who());
    assert_eq!(cheap.len(), 5, "{cheap:?}");
    for (id, _) in &cheap {
        let i: i64 = id[1..].parse().unwrap();
        assert!(id.starts_with('b') && i < 6, "{cheap:?}");
    }

    // A strong boost of brand y puts brand-y items first.
    set(
        &engine,
        "boost_y",
        PlacementSpec {
            boosts: vec![Boost {
                when: r#"attributes.brand == "y""#.into(),
                factor: 1000.0,
            }],
            k: Some(4),
            ..spec(Strategy::Personal)
        },
    );
    let boosted = place(&engine, "boost_y", who());
    let odd = |id: &str| id[1..].parse::<u32>().unwrap() % 2 == 1;
    assert!(boosted.iter().all(|(id, _)| odd(id)), "{boosted:?}");

    // Diversity: at most one item per brand, filled greedily by score.
    set(
        &engine,
        "diverse",
        PlacementSpec {
            diversity: Some(Diversity {
                attribute: "attributes.brand".into(),
                max_per_value: 1,
            }),
            ..spec(Strategy::Personal)
        },
    );
    let diverse = place(&engine, "diverse", who());
    // Two brands, one each: two items, then trending fills none (the cap holds).
    let brands: Vec<bool> = diverse.iter().map(|(id, _)| odd(id)).collect();
    assert_eq!(diverse.len(), 2, "{diverse:?}");
    assert_ne!(brands[0], brands[1]);
    assert_eq!(diverse[0].0, plain[0].0, "the best item comes first");
    set(
        &engine,
        "one_per_category",
        PlacementSpec {
            diversity: Some(Diversity {
                attribute: "category".into(),
                max_per_value: 2,
            }),
            ..spec(Strategy::Trending)
        },
    );
    let per_category = place(&engine, "one_per_category", PlaceRequest::default());
    assert_eq!(per_category.len(), 4, "{per_category:?}");

    // Promotions: the best Sale items take positions 1 and 4, marked promoted.
    set(
        &engine,
        "promo",
        PlacementSpec {
            promotion: Some(Promotion {
                filter: r#"genres contains "Sale" && category == "B""#.into(),
                positions: vec![4, 1],
            }),
            ..spec(Strategy::Personal)
        },
    );
    let promo = place(&engine, "promo", who());
    assert_eq!(promo.len(), 5);
    for p in [0, 3] {
        assert_eq!(promo[p].1, Reason::Promoted, "{promo:?}");
        let i: u32 = promo[p].0[1..].parse().unwrap();
        assert!(promo[p].0.starts_with('b') && i < 3, "{promo:?}");
    }
    for p in [1, 2, 4] {
        assert_ne!(promo[p].1, Reason::Promoted, "{promo:?}");
    }
    // The other positions keep the plain order of what is left.
    let rest: Vec<&str> = [1, 2, 4].iter().map(|&p| promo[p].0.as_str()).collect();
    let plain_rest: Vec<&str> = plain
        .iter()
        .map(|(i, _)| i.as_str())
        .filter(|i| !promo.iter().any(|(p, r)| p == i && *r == Reason::Promoted))
        .take(3)
        .collect();
    assert_eq!(rest, plain_rest);
}

#[test]
fn rotation_demotes_what_was_shown_often_without_a_click() {
    let (_root, engine) = engine(catalog());
    let user = uid("u0");
    set(
        &engine,
        "rotating",
        PlacementSpec {
            rotation: Some(Rotation {
                after_impressions: 3,
                within_hours: 24.0,
                factor: 0.0,
            }),
            ..spec(Strategy::Personal)
        },
    );
    let first = place(
        &engine,
        "rotating",
        PlaceRequest {
            user: Some(&user),
            ..PlaceRequest::default()
        },
    );
    let top = first[0].0.clone();
    // Shown twice: no change yet.
    let twice = [(top.clone(), 2)];
    let again = place(
        &engine,
        "rotating",
        PlaceRequest {
            user: Some(&user),
            shown_unclicked: &twice,
            ..PlaceRequest::default()
        },
    );
    assert_eq!(again[0].0, top);
    // Three times: it falls to the end.
    let thrice = [(top.clone(), 3)];
    let rotated = place(
        &engine,
        "rotating",
        PlaceRequest {
            user: Some(&user),
            shown_unclicked: &thrice,
            ..PlaceRequest::default()
        },
    );
    assert_ne!(rotated[0].0, top, "{rotated:?}");
    assert_eq!(ids(&rotated[..4]), ids(&first[1..5]));
    assert_eq!(
        engine
            .placement_rotation("rotating")
            .unwrap()
            .after_impressions,
        3
    );
}

fn order(id: &str, user: &str, day: i64, items: &[&str], status: OrderStatus) -> Order {
    Order {
        id: OrderId::new(id).unwrap(),
        user: Some(uid(user)),
        created_at: t0() + chrono::TimeDelta::days(day),
        status,
        lines: items
            .iter()
            .map(|i| OrderLine {
                item: iid(i),
                quantity: 1,
                unit_price: Money::new(100, Currency::new("EUR").unwrap()),
            })
            .collect(),
    }
}

#[test]
fn bought_together_and_buy_again_read_the_orders() {
    let (_root, engine) = engine(catalog());
    let orders = vec![
        order("o1", "u1", 0, &["a0", "a1", "b5"], OrderStatus::Paid),
        order("o2", "u2", 1, &["a0", "a1"], OrderStatus::Paid),
        order("o3", "u3", 2, &["a0", "b5", "b6"], OrderStatus::Shipped),
        order("o4", "u4", 3, &["a0", "b7"], OrderStatus::Cancelled),
        // u1 buys a0 every 10 days; u2 bought a1 twice, 4 days apart.
        order("o5", "u1", 10, &["a0"], OrderStatus::Paid),
        order("o6", "u1", 20, &["a0"], OrderStatus::Paid),
        order("o7", "u2", 5, &["a1", "a0"], OrderStatus::Paid),
    ];
    engine.add_orders(&orders);
    engine.add_orders(&orders); // counted once
    assert_eq!(engine.bought_together_count("a0", "a1"), 3);
    assert_eq!(engine.bought_together_count("a0", "b7"), 0, "cancelled");
    set(&engine, "fbt", spec(Strategy::FrequentlyBoughtTogether));
    let a0 = iid("a0");
    let fbt = place(
        &engine,
        "fbt",
        PlaceRequest {
            item: Some(&a0),
            ..PlaceRequest::default()
        },
    );
    assert_eq!(ids(&fbt[..3]), ["a1", "b5", "b6"], "{fbt:?}");
    assert!(fbt[..3].iter().all(|(_, r)| *r == Reason::BoughtTogether));
    // Short of k: filled with trending items, never the item itself.
    assert_eq!(fbt.len(), 5);
    assert!(
        fbt[3..]
            .iter()
            .all(|(i, r)| *r == Reason::TrendingFallback && i != "a0")
    );
    // A cart of two items: what goes with either, not the cart itself.
    let cart = [iid("a1"), iid("b6")];
    let with_cart = place(
        &engine,
        "fbt",
        PlaceRequest {
            items: &cart,
            ..PlaceRequest::default()
        },
    );
    assert_eq!(ids(&with_cart[..2]), ["a0", "b5"], "{with_cart:?}");
    // An order cancelled later is taken out.
    engine.remove_order("o3");
    assert_eq!(engine.bought_together_count("a0", "b6"), 0);

    set(&engine, "again", spec(Strategy::BuyAgain));
    let u1 = uid("u1");
    let answer = engine
        .place(
            "again",
            &PlaceRequest {
                user: Some(&u1),
                now_ms: (t0() + chrono::TimeDelta::days(31)).timestamp_millis(),
                ..PlaceRequest::default()
            },
        )
        .unwrap();
    // u1 bought a0 (typical interval: median of 10, 10 and u2's 4 = 10 days) and b5 and a1
    // (a1's interval is u2's 4 days; b5 was never bought twice, so it is not offered).
    let got: Vec<(&str, Option<f32>)> = answer
        .items
        .iter()
        .map(|r| (r.item.as_str(), r.typical_interval_days))
        .collect();
    assert_eq!(got, [("a1", Some(4.0)), ("a0", Some(10.0))]);
    assert!(answer.items.iter().all(|r| r.reason == Reason::BuyAgain));
}

fn view(user: &str, item: &str, day: i64) -> Event {
    Event {
        id: EventId::new(format!("{user}-{item}-{day}")).unwrap(),
        actor: Actor::User(uid(user)),
        item: Some(iid(item)),
        kind: EventKind::View,
        value: None,
        timestamp: t0() + chrono::TimeDelta::days(day),
        context: None,
    }
}

#[test]
fn item_and_history_strategies() {
    let (_root, engine) = engine(catalog());
    // Recently viewed: new events first (newest first), then the training history by time.
    set(&engine, "recent", spec(Strategy::RecentlyViewed));
    let user = uid("u0");
    let events = [view("u0", "b9", 40), view("u0", "b8", 41)];
    let recent = place(
        &engine,
        "recent",
        PlaceRequest {
            user: Some(&user),
            recent: &events,
            ..PlaceRequest::default()
        },
    );
    let history: Vec<String> = {
        // u0's items, newest first: k = 5, 4, ..., 0 in `data`.
        (0..6)
            .rev()
            .map(|k| {
                let group = if k == 5 { 1 } else { 0 };
                format!("{}{}", ["a", "b"][group], (k * 3) % 10)
            })
            .collect()
    };
    assert_eq!(ids(&recent)[..2], ["b8", "b9"]);
    assert_eq!(
        ids(&recent)[2..],
        history[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(recent.iter().all(|(_, r)| *r == Reason::RecentlyViewed));

    // Popular in the context's category.
    set(&engine, "popular", spec(Strategy::Popular));
    let context = [("category".to_owned(), "B".to_owned())];
    let popular = place(
        &engine,
        "popular",
        PlaceRequest {
            context: &context,
            ..PlaceRequest::default()
        },
    );
    assert!(
        popular
            .iter()
            .all(|(i, r)| i.starts_with('b') && *r == Reason::Popular)
    );

    // Also viewed: by how many of the item's users have the other item.
    set(&engine, "also", spec(Strategy::AlsoViewed));
    let a0 = iid("a0");
    let also = place(
        &engine,
        "also",
        PlaceRequest {
            item: Some(&a0),
            ..PlaceRequest::default()
        },
    );
    let x = data();
    let users_of = |item: &str| -> Vec<usize> {
        let i = x.items.get(item).unwrap() as usize;
        (0..x.n_users())
            .filter(|&u| x.row(u).items.contains(&(i as u32)))
            .collect()
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for u in users_of("a0") {
        for &j in x.row(u).items {
            let id = x.items.id(j as usize);
            if id != "a0" {
                *counts.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let mut expected: Vec<(String, usize)> = counts.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let expected: Vec<&str> = expected.iter().take(5).map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids(&also), expected);

    // Similar and session answers carry their reasons.
    set(&engine, "similar", spec(Strategy::Similar));
    let similar = place(
        &engine,
        "similar",
        PlaceRequest {
            item: Some(&a0),
            ..PlaceRequest::default()
        },
    );
    assert!(similar.iter().all(|(i, _)| i != "a0"));
    assert!(similar.iter().any(|(_, r)| *r == Reason::Similar));

    // Missing inputs are named.
    for (name, needs) in [
        ("similar", "item_id"),
        ("also", "item_id"),
        ("fbt", "item_id or items"),
    ] {
        if name == "fbt" {
            set(&engine, "fbt", spec(Strategy::FrequentlyBoughtTogether));
        }
        match engine.place(name, &PlaceRequest::default()) {
            Err(Error::MissingInput { needs: n, .. }) => assert_eq!(n, needs),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        engine.place("nope", &PlaceRequest::default()),
        Err(Error::UnknownPlacement(_))
    ));
}

#[test]
fn hidden_and_out_of_stock_items_never_show_and_bad_specs_are_refused() {
    let mut items = catalog();
    items[10].hidden = true; // b0
    items[11].in_stock = false; // b1
    let (_root, engine) = engine(items.clone());
    set(&engine, "trend", spec(Strategy::Trending));
    engine.add_orders(&[order(
        "o1",
        "u1",
        0,
        &["a0", "b0", "b1", "b2"],
        OrderStatus::Paid,
    )]);
    set(&engine, "fbt", spec(Strategy::FrequentlyBoughtTogether));
    let a0 = iid("a0");
    for name in ["trend", "fbt"] {
        let got = place(
            &engine,
            name,
            PlaceRequest {
                item: Some(&a0),
                k: Some(18),
                ..PlaceRequest::default()
            },
        );
        assert!(!got.is_empty());
        assert!(
            got.iter().all(|(i, _)| i != "b0" && i != "b1"),
            "{name}: {got:?}"
        );
    }

    let refuse = |s: PlacementSpec| engine.check_placement(&s).unwrap_err();
    let e = refuse(PlacementSpec {
        filter: Some("price < 'x'".into()),
        ..spec(Strategy::Personal)
    });
    assert_eq!((e.field.as_str(), e.position), ("filter", Some(9)));
    let e = refuse(PlacementSpec {
        boosts: vec![
            Boost {
                when: "in_stock".into(),
                factor: 2.0,
            },
            Boost {
                when: "attributes.size > 3".into(),
                factor: 2.0,
            },
        ],
        ..spec(Strategy::Personal)
    });
    assert_eq!(e.field, "boosts[1].when");
    assert!(e.message.contains("type is unknown"), "{e}");
    let e = refuse(PlacementSpec {
        diversity: Some(Diversity {
            attribute: "colour".into(),
            max_per_value: 1,
        }),
        ..spec(Strategy::Personal)
    });
    assert_eq!(e.field, "diversity.attribute");
    let e = refuse(PlacementSpec {
        promotion: Some(Promotion {
            filter: "in_stock".into(),
            positions: vec![0],
        }),
        ..spec(Strategy::Personal)
    });
    assert_eq!(e.field, "promotion.positions");
    let e = refuse(PlacementSpec {
        k: Some(0),
        ..spec(Strategy::Personal)
    });
    assert_eq!(e.field, "k");

    // A placement whose attribute leaves the catalog answers with an error naming it.
    set(
        &engine,
        "by_brand",
        PlacementSpec {
            filter: Some("attributes.brand == 'x'".into()),
            ..spec(Strategy::Trending)
        },
    );
    let mut plain = items;
    for i in &mut plain {
        i.attributes = serde_json::json!({});
    }
    engine.set_catalog(plain);
    match engine.place("by_brand", &PlaceRequest::default()) {
        Err(e @ Error::BrokenPlacement { .. }) => {
            assert!(e.to_string().contains("attributes.brand"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
