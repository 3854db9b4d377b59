//! Store behaviour over a real SQLite file: round trips, idempotent events, all-or-nothing
//! imports, API keys.

use chrono::{TimeZone, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, Item, ItemId, Money, Order, OrderId, OrderLine,
    OrderStatus, SessionId, Timestamp, User, UserId,
};
use marquee_store::{ApiKeyRole, Error, EventsInserted, Store};

fn at(day: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2024, 3, day, 10, 0, 0).unwrap()
}

async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/store.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

fn gbp(minor: i64) -> Money {
    Money::new(minor, Currency::new("GBP").unwrap())
}

fn item(id: &str) -> Item {
    let mut it = Item::new(
        ItemId::new(id).unwrap(),
        format!("Item {id}"),
        "mugs",
        at(1),
    );
    it.genres = vec!["kitchen".into(), "gifts".into()];
    it.price = Some(gbp(255));
    it.attributes = serde_json::json!({"colour": "white"});
    it
}

fn user(id: &str) -> User {
    let mut u = User::new(UserId::new(id).unwrap(), at(2));
    u.country = Some("United Kingdom".into());
    u.marketing_consent = true;
    u.email = Some(format!("{id}@example.com"));
    u
}

fn view(id: &str, user: &str, item: &str, day: u32) -> Event {
    Event {
        id: EventId::new(id).unwrap(),
        actor: Actor::User(UserId::new(user).unwrap()),
        item: Some(ItemId::new(item).unwrap()),
        kind: EventKind::View,
        value: None,
        timestamp: at(day),
        context: Some(serde_json::json!({"page": "home"})),
    }
}

#[tokio::test]
async fn catalog_users_and_orders_round_trip() {
    let (_dir, store) = temp_store().await;
    store.upsert_items(&[item("A"), item("B")]).await.unwrap();
    store.upsert_users(&[user("u1")]).await.unwrap();
    let order = Order {
        id: OrderId::new("536365").unwrap(),
        user: Some(UserId::new("u1").unwrap()),
        created_at: at(3),
        status: OrderStatus::Paid,
        lines: vec![
            OrderLine::from_signed(ItemId::new("A").unwrap(), 6, gbp(255)).unwrap(),
            OrderLine::from_signed(ItemId::new("B").unwrap(), 2, gbp(339)).unwrap(),
        ],
    };
    store
        .put_orders(std::slice::from_ref(&order))
        .await
        .unwrap();

    assert_eq!(
        store.item(&ItemId::new("A").unwrap()).await.unwrap(),
        Some(item("A"))
    );
    assert_eq!(store.item(&ItemId::new("Z").unwrap()).await.unwrap(), None);
    assert_eq!(
        store.user(&UserId::new("u1").unwrap()).await.unwrap(),
        Some(user("u1"))
    );
    let back = store.order(&order.id).await.unwrap().unwrap();
    assert_eq!(back, order);
    assert_eq!(back.total_minor(), 6 * 255 + 2 * 339);

    // Replacing an order replaces its lines, and status changes stick.
    let mut smaller = order.clone();
    smaller.lines.truncate(1);
    store
        .put_orders(std::slice::from_ref(&smaller))
        .await
        .unwrap();
    assert!(
        store
            .set_order_status(&order.id, OrderStatus::Refunded)
            .await
            .unwrap()
    );
    let back = store.order(&order.id).await.unwrap().unwrap();
    assert_eq!(back.lines.len(), 1);
    assert_eq!(back.status, OrderStatus::Refunded);
    assert!(
        !store
            .set_order_status(&OrderId::new("nope").unwrap(), OrderStatus::Paid)
            .await
            .unwrap()
    );
    let of_user = store
        .orders_of_user(&UserId::new("u1").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(of_user.len(), 1);

    let page1 = store.items(None, 1).await.unwrap();
    let page2 = store.items(Some(&page1[0].id), 10).await.unwrap();
    assert_eq!((page1[0].id.as_str(), page2.len()), ("A", 1));

    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.items,
            counts.users,
            counts.orders,
            counts.order_lines
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn retried_events_are_stored_once() {
    let (_dir, store) = temp_store().await;
    let batch = vec![view("e1", "u1", "A", 1), view("e2", "u1", "B", 2)];
    let first = store.insert_events(&batch).await.unwrap();
    assert_eq!(
        first,
        EventsInserted {
            inserted: 2,
            duplicates: 0
        }
    );
    let retry = vec![
        view("e2", "u1", "B", 2),
        view("e3", "u1", "C", 3),
        view("e3", "u1", "C", 3),
    ];
    let second = store.insert_events(&retry).await.unwrap();
    assert_eq!(
        second,
        EventsInserted {
            inserted: 1,
            duplicates: 2
        }
    );
    assert_eq!(store.counts().await.unwrap().events, 3);

    let recent = store
        .events_of_user(&UserId::new("u1").unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e3", "e2"]
    );
    assert_eq!(recent[1], view("e2", "u1", "B", 2));
}

#[tokio::test]
async fn an_invalid_event_stores_nothing_of_its_batch() {
    let (_dir, store) = temp_store().await;
    let mut bad = view("e2", "u1", "B", 2);
    bad.kind = EventKind::Rating;
    bad.value = Some(7.0);
    let err = store
        .insert_events(&[view("e1", "u1", "A", 1), bad])
        .await
        .unwrap_err();
    match err {
        Error::Invalid {
            what,
            index,
            source,
        } => {
            assert_eq!((what, index, source.field()), ("event", 1, "value"));
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(store.counts().await.unwrap().events, 0);
}

#[tokio::test]
async fn a_dropped_import_leaves_nothing_behind() {
    let (_dir, store) = temp_store().await;
    {
        let mut import = store.begin_import().await.unwrap();
        import.upsert_items(&[item("A")]).await.unwrap();
        import
            .insert_events(&[view("e1", "u1", "A", 1)])
            .await
            .unwrap();
        // Dropped without commit, as when a later row of a file turns out malformed.
    }
    let mut import = store.begin_import().await.unwrap();
    import.upsert_items(&[item("B")]).await.unwrap();
    import.rollback().await.unwrap();
    assert_eq!(store.counts().await.unwrap().items, 0);
    assert_eq!(store.counts().await.unwrap().events, 0);
}

#[tokio::test]
async fn order_lines_must_name_catalog_items() {
    let (_dir, store) = temp_store().await;
    let order = Order {
        id: OrderId::new("o1").unwrap(),
        user: None,
        created_at: at(3),
        status: OrderStatus::Placed,
        lines: vec![OrderLine::from_signed(ItemId::new("ghost").unwrap(), 1, gbp(1)).unwrap()],
    };
    let err = store.put_orders(&[order]).await.unwrap_err();
    assert!(err.to_string().contains("not in the catalog"), "{err}");
    assert_eq!(store.counts().await.unwrap().orders, 0);
}

#[tokio::test]
async fn ensure_keeps_the_real_catalog_and_upsert_replaces() {
    let (_dir, store) = temp_store().await;
    store.upsert_items(&[item("A")]).await.unwrap();
    let placeholder = Item::new(ItemId::new("A").unwrap(), "A", "unknown", at(5));
    let mut import = store.begin_import().await.unwrap();
    import
        .ensure_items(std::slice::from_ref(&placeholder))
        .await
        .unwrap();
    import.commit().await.unwrap();
    assert_eq!(
        store
            .item(&ItemId::new("A").unwrap())
            .await
            .unwrap()
            .unwrap()
            .title,
        "Item A"
    );
    store.upsert_items(&[placeholder]).await.unwrap();
    assert_eq!(
        store
            .item(&ItemId::new("A").unwrap())
            .await
            .unwrap()
            .unwrap()
            .title,
        "A"
    );
}

#[tokio::test]
async fn data_survives_reopening_and_sessions_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    {
        let store = Store::open(&url).await.unwrap();
        let mut anon = view("s1", "u1", "A", 1);
        anon.actor = Actor::Session(SessionId::new("sess-9").unwrap());
        store
            .insert_events(&[anon, view("e1", "u1", "A", 1)])
            .await
            .unwrap();
    }
    let store = Store::open(&url).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.events, counts.sessions), (2, 1));
    let mut seen = Vec::new();
    store
        .for_each_event(Some(&[EventKind::View]), |e| {
            seen.push(e.id.into_string());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(seen, ["s1", "e1"]);
}

#[tokio::test]
async fn api_keys_verify_by_role_and_can_be_revoked() {
    let (_dir, store) = temp_store().await;
    let sf = store
        .create_api_key(ApiKeyRole::Storefront, "web")
        .await
        .unwrap();
    let ad = store
        .create_api_key(ApiKeyRole::Admin, "ops")
        .await
        .unwrap();
    assert_ne!(sf.key, ad.key);
    assert_eq!(
        store.verify_api_key(&sf.key).await.unwrap(),
        Some(ApiKeyRole::Storefront)
    );
    assert_eq!(
        store.verify_api_key(&ad.key).await.unwrap(),
        Some(ApiKeyRole::Admin)
    );
    assert_eq!(store.verify_api_key("mq_sf_guess").await.unwrap(), None);
    assert_eq!(store.count_api_keys(ApiKeyRole::Admin).await.unwrap(), 1);
    assert_eq!(store.revoke_api_key(&ad.prefix).await.unwrap(), 1);
    assert_eq!(store.verify_api_key(&ad.key).await.unwrap(), None);
}

#[tokio::test]
async fn unsupported_urls_say_what_to_use() {
    let err = Store::open("mysql://localhost/db").await.unwrap_err();
    assert!(err.to_string().contains("sqlite://PATH"), "{err}");
    let err = Store::open("sqlite://").await.unwrap_err();
    assert!(err.to_string().contains("no file path"), "{err}");
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.upsert_items(&[item("A")]).await.unwrap();
    assert_eq!(store.counts().await.unwrap().items, 1);
}

#[tokio::test]
async fn every_order_streams_with_its_own_lines() {
    let (_dir, store) = temp_store().await;
    store
        .upsert_items(&[item("A"), item("B"), item("C")])
        .await
        .unwrap();
    // Ids that sort as text, not numbers ("10" < "9"), and an anonymous order.
    let orders: Vec<Order> = ["9", "10", "100", "b", "anon"]
        .iter()
        .enumerate()
        .map(|(n, id)| Order {
            id: OrderId::new(*id).unwrap(),
            user: (*id != "anon").then(|| UserId::new("u1").unwrap()),
            created_at: at(1 + n as u32),
            status: OrderStatus::Paid,
            lines: ["A", "B", "C"][..=n % 3]
                .iter()
                .map(|i| OrderLine::from_signed(ItemId::new(*i).unwrap(), 1, gbp(100)).unwrap())
                .collect(),
        })
        .collect();
    store.upsert_users(&[user("u1")]).await.unwrap();
    store.put_orders(&orders).await.unwrap();
    let mut back = Vec::new();
    store
        .for_each_order(|o| {
            back.push(o);
            Ok(())
        })
        .await
        .unwrap();
    let mut expected = orders.clone();
    expected.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(back, expected);
}

/// KPIs on hand-made orders and events whose answers are worked out by hand below.
#[tokio::test]
async fn kpis_are_exact_on_hand_made_orders() {
    use marquee_store::kpis::{DateRange, Period, RankBy};
    let (_dir, store) = temp_store().await;
    store
        .upsert_items(&[item("a"), item("b"), item("c")])
        .await
        .unwrap();
    store
        .upsert_users(&[user("u1"), user("u2"), user("u3")])
        .await
        .unwrap();
    let when = |month: u32, day: u32| Utc.with_ymd_and_hms(2024, month, day, 23, 59, 0).unwrap();
    let order =
        |id: &str, u: &str, t: Timestamp, status: OrderStatus, lines: &[(&str, u32, i64)]| Order {
            id: OrderId::new(id).unwrap(),
            user: Some(UserId::new(u).unwrap()),
            created_at: t,
            status,
            lines: lines
                .iter()
                .map(|(i, q, p)| OrderLine {
                    item: ItemId::new(*i).unwrap(),
                    quantity: *q,
                    unit_price: gbp(*p),
                })
                .collect(),
        };
    store
        .put_orders(&[
            // March: u1 buys 2 × a at 1.99 and 1 × b at 10.01 = 13.99 on the 1st.
            order(
                "o1",
                "u1",
                when(3, 1),
                OrderStatus::Paid,
                &[("a", 2, 199), ("b", 1, 1001)],
            ),
            // March: u2's 3 × a is cancelled the same month: -5.97, and no order counted.
            order(
                "o2",
                "u2",
                when(3, 1),
                OrderStatus::Cancelled,
                &[("a", 3, 199)],
            ),
            // April: u1 returns (1 × c at 0.05), u2 orders for the first time (4 × b).
            order("o3", "u1", when(4, 2), OrderStatus::Shipped, &[("c", 1, 5)]),
            order(
                "o4",
                "u2",
                when(4, 30),
                OrderStatus::Placed,
                &[("b", 4, 1001)],
            ),
            // April: a refund of 1 × b for u3, whose only order this is.
            order(
                "o5",
                "u3",
                when(4, 30),
                OrderStatus::Refunded,
                &[("b", 1, 1001)],
            ),
        ])
        .await
        .unwrap();

    let all = DateRange::default();
    let months = store.revenue_by_period(Period::Month, all).await.unwrap();
    let months: Vec<_> = months
        .iter()
        .map(|r| (r.period.as_str(), r.orders, r.revenue_minor))
        .collect();
    assert_eq!(
        months,
        [("2024-03", 1, 1399 - 597), ("2024-04", 2, 5 + 4004 - 1001)]
    );
    let days = store.revenue_by_period(Period::Day, all).await.unwrap();
    assert_eq!(days.len(), 3, "{days:?}");
    assert_eq!(days[2].period, "2024-04-30");
    assert_eq!(days[2].revenue_minor, 4004 - 1001);

    // Half-open range: April only.
    let april = DateRange::new(Some(when(4, 1)), Some(when(5, 1))).unwrap();
    let top = store
        .top_products(april, RankBy::Revenue, 10)
        .await
        .unwrap();
    let top: Vec<_> = top
        .iter()
        .map(|p| (p.item.as_str(), p.revenue_minor, p.units))
        .collect();
    assert_eq!(top, [("b", 3003, 3), ("c", 5, 1)]);
    let by_units = store.top_products(all, RankBy::Units, 1).await.unwrap();
    assert_eq!(
        (by_units[0].item.as_str(), by_units[0].units),
        ("b", 4),
        "b: 1 + 4 - 1 units, a: 2 - 3"
    );
    assert!(DateRange::new(Some(when(5, 1)), Some(when(4, 1))).is_err());

    let customers = store.new_vs_returning(all).await.unwrap();
    let customers: Vec<_> = customers
        .iter()
        .map(|c| (c.month.as_str(), c.new_customers, c.returning_customers))
        .collect();
    // u2's cancelled March order does not make April a return; u3 only has a refund.
    assert_eq!(customers, [("2024-03", 1, 0), ("2024-04", 1, 1)]);

    // Funnel: u1 views and buys; u2 views, adds to cart; an anonymous session clicks and adds
    // to cart; u3 only rates (not a step).
    let ev = |id: &str, actor: Actor, kind: EventKind, day: u32| Event {
        id: EventId::new(id).unwrap(),
        actor,
        item: Some(ItemId::new("a").unwrap()),
        kind,
        value: (kind == EventKind::Rating).then_some(4.0),
        timestamp: at(day),
        context: None,
    };
    let u = |id: &str| Actor::User(UserId::new(id).unwrap());
    let s = Actor::Session(SessionId::new("s1").unwrap());
    store
        .insert_events(&[
            ev("e1", u("u1"), EventKind::View, 3),
            ev("e2", u("u1"), EventKind::View, 4),
            ev("e3", u("u1"), EventKind::Purchase, 5),
            ev("e4", u("u2"), EventKind::View, 3),
            ev("e5", u("u2"), EventKind::AddToCart, 4),
            ev("e6", s.clone(), EventKind::Click, 3),
            ev("e7", s, EventKind::AddToCart, 9),
            ev("e8", u("u3"), EventKind::Rating, 3),
        ])
        .await
        .unwrap();
    let f = store.funnel(all).await.unwrap();
    assert_eq!((f.viewed, f.added_to_cart, f.purchased), (3, 2, 1));
    assert!((f.view_to_cart - 2.0 / 3.0).abs() < 1e-12);
    assert!((f.cart_to_purchase - 0.5).abs() < 1e-12);
    // Up to (not including) the 9th: the session's add to cart falls out.
    let early = DateRange::new(None, Some(at(9))).unwrap();
    let f = store.funnel(early).await.unwrap();
    assert_eq!((f.viewed, f.added_to_cart, f.purchased), (3, 1, 1));
    let empty = store
        .funnel(DateRange::new(Some(at(20)), None).unwrap())
        .await
        .unwrap();
    assert_eq!((empty.viewed, empty.view_to_cart), (0, 0.0));
}
