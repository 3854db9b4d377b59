//! Store behaviour on both backends, one suite: every case runs on a real SQLite file
//! (`sqlite::`) and on a fresh PostgreSQL database (`postgres::`, when
//! `MARQUEE_TEST_POSTGRES_URL` names a server; see `marquee_store::testing`): round trips,
//! idempotent events, all-or-nothing imports, API keys, streaming, KPIs.

use chrono::{TimeZone, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, Item, ItemId, Money, Order, OrderId, OrderLine,
    OrderStatus, SessionId, Timestamp, User, UserId,
};
use marquee_store::testing::TestDatabase;
use marquee_store::{ApiKeyRole, Error, EventsInserted, Store};

/// Runs each named `async fn(TestDatabase)` as two tests, one per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::TestDatabase::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::TestDatabase::postgres() {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    catalog_users_and_orders_round_trip,
    retried_events_are_stored_once,
    an_invalid_event_stores_nothing_of_its_batch,
    a_dropped_import_leaves_nothing_behind,
    order_lines_must_name_catalog_items,
    ensure_keeps_the_real_catalog_and_upsert_replaces,
    data_survives_reopening_and_sessions_are_counted,
    api_keys_verify_by_role_and_can_be_revoked,
    admin_sessions_need_an_admin_key_and_end,
    every_order_streams_with_its_own_lines,
    orders_read_back_across_pages_with_lines_in_order,
    kpis_are_exact_on_hand_made_orders,
    search_pages_in_byte_order_and_hides_what_it_should,
    listings_of_orders_users_keys_and_audit,
    segment_runs_round_trip,
    new_events_are_found_by_polling,
    large_event_loads_keep_order_retries_and_text,
    event_reads_span_pages_in_order,
    impressions_keep_their_items_in_order_once,
    experiments_round_trip_and_refuse_clashes,
    placements_are_saved_replaced_and_deleted,
    publishable_keys_keep_their_origins_and_stay_readable,
    identified_sessions_count_for_their_user,
    a_read_its_caller_stops_leaves_the_store_usable,
);

fn at(day: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2024, 3, day, 10, 0, 0).unwrap()
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

async fn catalog_users_and_orders_round_trip(db: TestDatabase) {
    let store = db.open().await;
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

async fn retried_events_are_stored_once(db: TestDatabase) {
    let store = db.open().await;
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

async fn an_invalid_event_stores_nothing_of_its_batch(db: TestDatabase) {
    let store = db.open().await;
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

async fn a_dropped_import_leaves_nothing_behind(db: TestDatabase) {
    let store = db.open().await;
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

async fn order_lines_must_name_catalog_items(db: TestDatabase) {
    let store = db.open().await;
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

async fn ensure_keeps_the_real_catalog_and_upsert_replaces(db: TestDatabase) {
    let store = db.open().await;
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

async fn data_survives_reopening_and_sessions_are_counted(db: TestDatabase) {
    {
        let store = db.open().await;
        let mut anon = view("s1", "u1", "A", 1);
        anon.actor = Actor::Session(SessionId::new("sess-9").unwrap());
        store
            .insert_events(&[anon, view("e1", "u1", "A", 1)])
            .await
            .unwrap();
    }
    let store = db.open().await;
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.events, counts.sessions), (2, 1));
    assert_eq!(
        event_ids(&store, Some(&[EventKind::View])).await,
        ["s1", "e1"]
    );
}

async fn api_keys_verify_by_role_and_can_be_revoked(db: TestDatabase) {
    let store = db.open().await;
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

async fn admin_sessions_need_an_admin_key_and_end(db: TestDatabase) {
    let store = db.open().await;
    let hour = std::time::Duration::from_secs(3600);
    let sf = store
        .create_api_key(ApiKeyRole::Storefront, "web")
        .await
        .unwrap();
    assert_eq!(store.open_admin_session(&sf.key, hour).await.unwrap(), None);
    assert_eq!(
        store.open_admin_session("mq_ad_guess", hour).await.unwrap(),
        None
    );
    let ad = store
        .create_api_key(ApiKeyRole::Admin, "ops")
        .await
        .unwrap();
    let one = store
        .open_admin_session(&ad.key, hour)
        .await
        .unwrap()
        .unwrap();
    let two = store
        .open_admin_session(&ad.key, hour)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(one, two);
    assert_eq!(
        store.admin_session(&one).await.unwrap(),
        Some(ad.prefix.clone())
    );
    assert_eq!(
        store.admin_session(&ad.key).await.unwrap(),
        None,
        "a key is not a session"
    );
    store.close_admin_session(&one).await.unwrap();
    assert_eq!(store.admin_session(&one).await.unwrap(), None, "logged out");
    assert_eq!(
        store.admin_session(&two).await.unwrap(),
        Some(ad.prefix.clone())
    );
    let expired = store
        .open_admin_session(&ad.key, std::time::Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.admin_session(&expired).await.unwrap(),
        None,
        "expired"
    );
    store.revoke_api_key(&ad.prefix).await.unwrap();
    assert_eq!(
        store.admin_session(&two).await.unwrap(),
        None,
        "its key was revoked"
    );
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
    // Its one connection serves the streaming reads and is given back after each.
    stopped_reads_leave_the_store_usable(&store).await;
}

/// Events changed behind the store's back are reported as corrupt, naming what is wrong,
/// not read as something else.
#[tokio::test]
async fn tampered_events_are_reported_as_corrupt() {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let events = [view("t1", "u1", "A", 1), view("t2", "u1", "A", 1)];
    store.insert_events(&events).await.unwrap();
    let path = db.url().strip_prefix("sqlite://").unwrap();
    let raw = rusqlite::Connection::open(path).unwrap();
    for (tamper, says) in [
        ("user_id = CAST(x'75ff' AS TEXT)", "not UTF-8"),
        ("user_id = x'7531'", "user is stored as blob"),
        ("item_id = x'41'", "item is stored as blob"),
        ("kind = 'teleport'", "teleport"),
        ("context = '{not json'", "context"),
        ("value = 'high'", "value is stored as text"),
    ] {
        raw.execute(
            &format!("UPDATE events SET {tamper} WHERE event_id = 't2'"),
            [],
        )
        .unwrap();
        let read = store.for_each_event(None, |_| Ok(())).await;
        match read {
            Err(Error::Corrupt(m)) => assert!(m.contains(says), "{tamper}: {m}"),
            other => panic!("{tamper}: {other:?}"),
        }
        raw.execute(
            "UPDATE events SET user_id = 'u1', item_id = 'A', kind = 'view', context = NULL, \
             value = NULL WHERE event_id = 't2'",
            [],
        )
        .unwrap();
    }
    assert_eq!(event_ids(&store, None).await, ["t1", "t2"]);
    // An order line's quantity stored as text.
    store.upsert_users(&[user("u1")]).await.unwrap();
    store.upsert_items(&[item("A")]).await.unwrap();
    let line = OrderLine::from_signed(ItemId::new("A").unwrap(), 1, gbp(100)).unwrap();
    let order = Order {
        id: OrderId::new("o1").unwrap(),
        user: Some(UserId::new("u1").unwrap()),
        created_at: at(2),
        status: OrderStatus::Paid,
        lines: vec![line],
    };
    store
        .put_orders(std::slice::from_ref(&order))
        .await
        .unwrap();
    raw.execute("PRAGMA ignore_check_constraints = ON", [])
        .unwrap();
    raw.execute("UPDATE order_lines SET quantity = 'two'", [])
        .unwrap();
    match store.for_each_order(|_| Ok(())).await {
        Err(Error::Corrupt(m)) => assert!(m.contains("quantity is stored as text"), "{m}"),
        other => panic!("{other:?}"),
    }
    raw.execute("UPDATE order_lines SET quantity = 1", [])
        .unwrap();
    assert_eq!(all_orders(&store).await, [order]);
}

async fn a_read_its_caller_stops_leaves_the_store_usable(db: TestDatabase) {
    let store = db.open().await;
    store.upsert_items(&[item("A")]).await.unwrap();
    stopped_reads_leave_the_store_usable(&store).await;
}

/// Events and orders stream back whole; a caller that fails part-way gets its own error, and
/// the store answers reads and writes afterwards (within a minute: a connection left locked
/// would make the next call wait for ever).
async fn stopped_reads_leave_the_store_usable(store: &Store) {
    let events: Vec<Event> = (0..7_000)
        .map(|i| view(&format!("s{i:05}"), &format!("u{}", i % 13), "A", 1))
        .collect();
    store.insert_events(&events).await.unwrap();
    let orders: Vec<Order> = (0..30)
        .map(|n| Order {
            id: OrderId::new(format!("o{n:02}")).unwrap(),
            user: None,
            created_at: at(2),
            status: OrderStatus::Paid,
            lines: vec![OrderLine::from_signed(ItemId::new("A").unwrap(), 1, gbp(100)).unwrap()],
        })
        .collect();
    store.put_orders(&orders).await.unwrap();
    let minute = std::time::Duration::from_secs(60);
    for round in 0..2 {
        let mut seen = 0;
        let stopped = tokio::time::timeout(
            minute,
            store.for_each_event(None, |_| {
                seen += 1;
                if seen == 3 {
                    return Err(Error::Conflict("enough events".into()));
                }
                Ok(())
            }),
        )
        .await
        .expect("the event read ends");
        assert!(
            matches!(&stopped, Err(Error::Conflict(m)) if m == "enough events"),
            "round {round}: {stopped:?}"
        );
        assert_eq!(seen, 3, "round {round}: no event after the failing one");
        let mut seen = 0;
        let stopped = tokio::time::timeout(
            minute,
            store.for_each_order(|_| {
                seen += 1;
                Err(Error::Conflict("one order".into()))
            }),
        )
        .await
        .expect("the order read ends");
        assert!(matches!(&stopped, Err(Error::Conflict(_))), "{stopped:?}");
        assert_eq!(seen, 1);
    }
    let extra = view("s99999", "u0", "A", 2);
    tokio::time::timeout(minute, store.insert_events(std::slice::from_ref(&extra)))
        .await
        .expect("a write after stopped reads ends")
        .unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(
        minute,
        store.for_each_event(None, |e| {
            back.push(e);
            Ok(())
        }),
    )
    .await
    .expect("a whole read ends")
    .unwrap();
    let mut expected = events;
    expected.push(extra);
    assert_eq!(back, expected);
    assert_eq!(all_orders(store).await, orders);
}

/// The ids of the stored events (of these kinds), as `for_each_event` streams them.
async fn event_ids(store: &Store, kinds: Option<&[EventKind]>) -> Vec<String> {
    let mut ids = Vec::new();
    store
        .for_each_event(kinds, |e| {
            ids.push(e.id.into_string());
            Ok(())
        })
        .await
        .unwrap();
    ids
}

/// Every order, as `for_each_order` streams them.
async fn all_orders(store: &Store) -> Vec<Order> {
    let mut back = Vec::new();
    store
        .for_each_order(|o| {
            back.push(o);
            Ok(())
        })
        .await
        .unwrap();
    back
}

/// Orders are read back in pages (5,000 on SQLite, 2,000 on PostgreSQL): 10,001 orders, each
/// with its lines in the order they were placed (not item order).
async fn orders_read_back_across_pages_with_lines_in_order(db: TestDatabase) {
    let store = db.open().await;
    store
        .upsert_items(&[item("A"), item("B"), item("C")])
        .await
        .unwrap();
    store.upsert_users(&[user("u1")]).await.unwrap();
    let orders: Vec<Order> = (0..10_001)
        .map(|n| Order {
            id: OrderId::new(format!("o{n:05}")).unwrap(),
            user: (n % 7 != 0).then(|| UserId::new("u1").unwrap()),
            created_at: at(1 + (n % 20) as u32),
            status: if n % 11 == 0 {
                OrderStatus::Refunded
            } else {
                OrderStatus::Paid
            },
            lines: ["C", "A", "B"][..=n % 3]
                .iter()
                .enumerate()
                .map(|(k, i)| {
                    OrderLine::from_signed(
                        ItemId::new(*i).unwrap(),
                        1 + k as i64,
                        gbp(100 + n as i64),
                    )
                    .unwrap()
                })
                .collect(),
        })
        .collect();
    for chunk in orders.chunks(2_500) {
        store.put_orders(chunk).await.unwrap();
    }
    let back = all_orders(&store).await;
    assert_eq!(back.len(), orders.len());
    assert_eq!(back, orders);
}

async fn every_order_streams_with_its_own_lines(db: TestDatabase) {
    let store = db.open().await;
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
    let back = all_orders(&store).await;
    let mut expected = orders.clone();
    expected.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(back, expected);
    // Next purchase by the database equals the plain computation over the orders: u1
    // first bought C in "100" (day 3), then ordered "b" (day 4: A).
    for item in ["A", "B", "C", "nobody-bought"] {
        let id = ItemId::new(item).unwrap();
        let db = store.next_purchase(&id, 10).await.unwrap();
        assert_eq!(
            db,
            marquee_store::behaviour::next_purchase(&expected, &id, 10),
            "{item}"
        );
    }
    let c = store
        .next_purchase(&ItemId::new("C").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!((c.buyers, c.buyers_with_later_orders), (1, 1));
    assert_eq!(c.items.len(), 1, "{c:?}");
    assert_eq!((c.items[0].item_id.as_str(), c.items[0].share), ("A", 1.0));
}

/// KPIs on hand-made orders and events whose answers are worked out by hand below.
async fn kpis_are_exact_on_hand_made_orders(db: TestDatabase) {
    use marquee_store::kpis::{DateRange, Period, RankBy};
    let store = db.open().await;
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

async fn search_pages_in_byte_order_and_hides_what_it_should(db: TestDatabase) {
    use marquee_store::ItemQuery;
    let store = db.open().await;
    // Ids whose order differs between a byte comparison and a locale's collation.
    let ids = ["b", "B", "_x", "a-1", "a1", "Z", "é", "ab%"];
    let mut items: Vec<Item> = ids.iter().map(|id| item(id)).collect();
    items[0].hidden = true; // "b"
    items[1].in_stock = false; // "B"
    items[2].category = "tea".into(); // "_x"
    items[3].title = "Mug_Deluxe".into(); // "a-1"
    let before = store.catalog_version().await.unwrap();
    store.upsert_items(&items).await.unwrap();
    assert_ne!(
        store.catalog_version().await.unwrap(),
        before,
        "a catalog write is seen"
    );

    // Paging by `after` in pages of 3 visits every visible, in-stock item once, in the
    // engine's (Rust's) string order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .search_items(&ItemQuery {
                after: after.as_deref(),
                limit: 3,
                ..ItemQuery::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|i| i.id.as_str().to_owned());
        seen.extend(page.into_iter().map(|i| i.id.into_string()));
    }
    let mut expected: Vec<String> = ["Z", "_x", "a-1", "a1", "ab%", "é"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    let all = ItemQuery {
        limit: 100,
        include_hidden: true,
        include_out_of_stock: true,
        ..ItemQuery::default()
    };
    assert_eq!(store.search_items(&all).await.unwrap().len(), ids.len());
    let ids_of = |items: Vec<Item>| -> Vec<String> {
        items.into_iter().map(|i| i.id.into_string()).collect()
    };
    // Text search: case-insensitive, `_` and `%` taken literally.
    let found = store
        .search_items(&ItemQuery {
            text: Some("mug_d"),
            ..all
        })
        .await
        .unwrap();
    assert_eq!(ids_of(found), ["a-1"]);
    let found = store
        .search_items(&ItemQuery {
            text: Some("%"),
            ..all
        })
        .await
        .unwrap();
    assert_eq!(ids_of(found), ["ab%"]);
    let found = store
        .search_items(&ItemQuery {
            category: Some("tea"),
            ..all
        })
        .await
        .unwrap();
    assert_eq!(ids_of(found), ["_x"]);
    // Categories count visible items only.
    assert_eq!(
        store.categories().await.unwrap(),
        [("mugs".to_owned(), 6), ("tea".to_owned(), 1)]
    );
    let wanted = [
        ItemId::new("é").unwrap(),
        ItemId::new("nope").unwrap(),
        ItemId::new("Z").unwrap(),
    ];
    assert_eq!(
        ids_of(store.items_by_ids(&wanted).await.unwrap()),
        ["Z", "é"]
    );
}

async fn listings_of_orders_users_keys_and_audit(db: TestDatabase) {
    use marquee_store::AuditEntry;
    let store = db.open().await;
    store.upsert_items(&[item("A")]).await.unwrap();
    store
        .upsert_users(&[user("u1"), user("u2"), user("u3")])
        .await
        .unwrap();
    let order = |id: &str, day: u32, status: OrderStatus| Order {
        id: OrderId::new(id).unwrap(),
        user: Some(UserId::new("u1").unwrap()),
        created_at: at(day),
        status,
        lines: vec![OrderLine::from_signed(ItemId::new("A").unwrap(), 1, gbp(100)).unwrap()],
    };
    store
        .put_orders(&[
            order("o1", 3, OrderStatus::Paid),
            order("o2", 5, OrderStatus::Placed),
            order("o3", 4, OrderStatus::Paid),
        ])
        .await
        .unwrap();
    let ids = |orders: Vec<Order>| -> Vec<String> {
        orders.into_iter().map(|o| o.id.into_string()).collect()
    };
    assert_eq!(
        ids(store.recent_orders(None, 0, 10).await.unwrap()),
        ["o2", "o3", "o1"]
    );
    assert_eq!(
        ids(store
            .recent_orders(Some(OrderStatus::Paid), 1, 10)
            .await
            .unwrap()),
        ["o1"]
    );
    let u1 = UserId::new("u1").unwrap();
    assert_eq!(
        ids(store.orders_of_user_after(&u1, at(3), 10).await.unwrap()),
        ["o2", "o3"]
    );
    assert!(
        store
            .set_order_status(&OrderId::new("o2").unwrap(), OrderStatus::Shipped)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_order_status(&OrderId::new("o9").unwrap(), OrderStatus::Shipped)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(store
            .recent_orders(Some(OrderStatus::Shipped), 0, 10)
            .await
            .unwrap()),
        ["o2"]
    );

    let page: Vec<String> = store
        .users_page(Some("u1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id.into_string())
        .collect();
    assert_eq!(page, ["u2", "u3"]);
    assert_eq!(store.all_users().await.unwrap()[0], user("u1"));

    let key = store
        .create_api_key(ApiKeyRole::Admin, "ops")
        .await
        .unwrap();
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].prefix.as_str(), listed[0].label.as_str()),
        (key.prefix.as_str(), "ops")
    );
    assert_eq!(listed[0].revoked_at, None);

    for (n, status) in [(1, 200u16), (2, 404)] {
        store
            .record_audit(&AuditEntry {
                at: at(n),
                key_prefix: key.prefix.clone(),
                method: "PUT".into(),
                path: format!("/v1/admin/items/{n}"),
                status,
            })
            .await
            .unwrap();
    }
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].path.as_str(), log[0].status, log[0].at),
        ("/v1/admin/items/2", 404, at(2))
    );
}

async fn segment_runs_round_trip(db: TestDatabase) {
    use marquee_store::{SegmentMember, SegmentRun};
    let store = db.open().await;
    assert_eq!(store.latest_segment_run().await.unwrap(), None);
    let member = |user: &str, segment: &str, monetary: i64| SegmentMember {
        user_id: user.into(),
        segment: segment.into(),
        cluster: 1,
        recency_days: 12,
        frequency: 3,
        monetary_minor: monetary,
        tenure_days: 200,
        avg_basket_minor: 1234.5,
        favourite_category: "mugs".into(),
        r_score: 4,
        f_score: 3,
        m_score: 5,
    };
    let run = SegmentRun {
        version: "seg-1".into(),
        computed_at: at(10),
        reference: at(9),
        k: 2,
        silhouette: 0.61,
        clusters: vec!["big spenders".into(), "one-off buyers".into()],
    };
    // More members than one multi-row INSERT holds.
    let members: Vec<SegmentMember> = (0..2_500)
        .map(|i| {
            let segment = if i % 5 == 0 { "champions" } else { "at_risk" };
            member(&format!("u{i:05}"), segment, i64::from(i))
        })
        .collect();
    store.save_segments(&run, &members).await.unwrap();
    assert_eq!(store.latest_segment_run().await.unwrap(), Some(run));
    let champions: i64 = (0..2_500).filter(|i| i % 5 == 0).sum();
    let at_risk: i64 = (0..2_500).filter(|i| i % 5 != 0).sum();
    assert_eq!(
        store.segment_sizes("seg-1").await.unwrap(),
        [
            ("at_risk".to_owned(), 2_000, at_risk),
            ("champions".to_owned(), 500, champions)
        ]
    );
    let page = store
        .segment_members_page("seg-1", Some("champions"), 1, 2)
        .await
        .unwrap();
    assert_eq!(page, [members[5].clone(), members[10].clone()]);
    assert_eq!(
        store.segment_members("seg-1", None).await.unwrap().len(),
        2_500
    );
}

async fn new_events_are_found_by_polling(db: TestDatabase) {
    let store = db.open().await;
    store
        .insert_events(&[view("e1", "u1", "A", 1), view("e2", "u2", "A", 5)])
        .await
        .unwrap();
    // Only events timed after the model's data count.
    let (users, seq) = store.users_with_events_after(0, at(3)).await.unwrap();
    assert_eq!(users.len(), 1);
    let (u2_name, u2_seq) = users[0].clone();
    assert_eq!(u2_name, "u2");
    assert!(seq >= 2 && u2_seq <= seq);
    store
        .insert_events(&[view("e3", "u3", "B", 6)])
        .await
        .unwrap();
    let (users, next) = store.users_with_events_after(seq, at(3)).await.unwrap();
    // u3 is new, with a number past the last poll; a backend may report u2 again
    // (PostgreSQL looks back) but then with the number it had, so it is not taken as new.
    assert!(next > seq);
    for (user, newest) in &users {
        match user.as_str() {
            "u3" => assert!(*newest > seq && *newest <= next),
            "u2" => assert_eq!(*newest, u2_seq),
            other => panic!("{other} has no new event: {users:?}"),
        }
    }
    assert!(users.iter().any(|(u, _)| u == "u3"), "{users:?}");
    let u2 = UserId::new("u2").unwrap();
    let recent = store.events_of_user_after(&u2, at(3), 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0], view("e2", "u2", "A", 5));
    assert!(
        store
            .events_of_user_after(&u2, at(5), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A load big enough for PostgreSQL's COPY path (the INSERT path on SQLite): events come back
/// in input order and exactly as sent (quotes, commas, newlines and backslashes in the context,
/// missing values, sessions), and retried ids, already stored or repeated in the load, count as
/// duplicates.
async fn large_event_loads_keep_order_retries_and_text(db: TestDatabase) {
    let store = db.open().await;
    store
        .insert_events(&[view("e00003", "u1", "A", 1)])
        .await
        .unwrap();
    let mut events: Vec<Event> = (0..12_000)
        .map(|i| {
            let mut e = view(
                &format!("e{i:05}"),
                &format!("u{}", i % 97),
                "A",
                1 + i % 20,
            );
            match i % 4 {
                0 => e.context = None,
                1 => {
                    e.context = Some(serde_json::json!({
                        "q": "say \"hi\", then\nleave \\ here,\t\"\"",
                        "n": i,
                    }));
                }
                2 => {
                    e.actor = Actor::Session(SessionId::new(format!("s,\"{i}")).unwrap());
                    e.kind = EventKind::Rating;
                    e.value = Some(4.5);
                }
                _ => e.item = None,
            }
            if i % 4 == 3 {
                e.kind = EventKind::Click;
            }
            e
        })
        .collect();
    // The same event twice in one load.
    events.push(events[10].clone());
    let done = store.insert_events(&events).await.unwrap();
    assert_eq!(
        done,
        EventsInserted {
            inserted: 11_999,
            duplicates: 2
        }
    );
    let mut back = Vec::new();
    store
        .for_each_event(None, |e| {
            back.push(e);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(back.len(), 12_000);
    assert_eq!(back[0].id.as_str(), "e00003");
    let mut expected: Vec<Event> = events[..12_000].to_vec();
    expected.remove(3);
    assert_eq!(&back[1..], &expected[..]);
}

/// Events are read back in pages of 50,000: two full pages (the read ends on an empty
/// page), then one more event (it ends on a short page), all in insertion order.
async fn event_reads_span_pages_in_order(db: TestDatabase) {
    let store = db.open().await;
    let event = |i: usize| {
        let mut e = view(&format!("p{i:06}"), &format!("u{}", i % 89), "A", 1);
        e.context = None;
        e
    };
    let events: Vec<Event> = (0..100_000).map(event).collect();
    for chunk in events.chunks(20_000) {
        store.insert_events(chunk).await.unwrap();
    }
    let expected: Vec<String> = events.iter().map(|e| e.id.as_str().to_owned()).collect();
    assert_eq!(event_ids(&store, None).await, expected);
    store.insert_events(&[event(100_000)]).await.unwrap();
    let back = event_ids(&store, None).await;
    assert_eq!(back.len(), 100_001);
    assert_eq!(back[100_000], "p100000");
    assert_eq!(back[..100_000], expected[..]);
}

async fn impressions_keep_their_items_in_order_once(db: TestDatabase) {
    use marquee_store::kpis::DateRange;
    use marquee_store::{
        Attribution, GroupBy, Impression, ImpressionBatch, Outcome, RecommendationId,
    };
    let store = db.open().await;
    let ids = |v: &[&str]| marquee_store::ShownItems::new(v.iter().copied());
    let rid = |seq| RecommendationId { source: 0xabc, seq };
    let a = Impression {
        id: rid(1),
        at: at(3),
        placement: "home:top_picks".into(),
        user: Some(UserId::new("u1").unwrap()),
        session: None,
        model_version: "v1".into(),
        experiment: None,
        variant: None,
        items: ids(&["c", "a", "b"]),
    };
    let b = Impression {
        id: rid(2),
        at: at(4),
        placement: "session".into(),
        user: None,
        session: Some(SessionId::new("s9").unwrap()),
        model_version: "v2".into(),
        experiment: Some("new-ease".into()),
        variant: Some("treatment".into()),
        items: ids(&["z"]),
    };
    let mut a2 = a.clone();
    a2.id = rid(3);
    store
        .write_impressions(&ImpressionBatch {
            impressions: vec![a.clone(), b.clone()],
            first_sightings: vec![0, 1],
        })
        .await
        .unwrap();
    // The same visitor again in a later batch, not a first sighting: counted as an answer,
    // not as another user.
    store
        .write_impressions(&ImpressionBatch {
            impressions: vec![a2.clone()],
            first_sightings: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.impression(rid(1)).await.unwrap(), Some(a.clone()));
    assert_eq!(store.impression(rid(3)).await.unwrap(), Some(a2.clone()));
    assert_eq!(store.impression(rid(4)).await.unwrap(), None);
    let all = store
        .impression_batches_after(0, at(1), None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].1, vec![a.clone(), b.clone()]);
    assert_eq!(store.newest_impression_batch().await.unwrap(), all[1].0);
    let later = store
        .impression_batches_after(all[0].0, at(1), None, 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert!(
        store
            .impression_batches_after(0, at(1), Some(0xabc), 10)
            .await
            .unwrap()
            .is_empty(),
        "a source's own batches are left out when asked"
    );

    let credit = |shown: &Impression, key: &str, outcome, item: &str, revenue| {
        Attribution::to(
            shown,
            key.into(),
            shown.at,
            outcome,
            ItemId::new(item).unwrap(),
            revenue,
        )
    };
    let credited = vec![
        credit(&a, "e:1", Outcome::Click, "a", 0),
        credit(&a, "e:2", Outcome::Click, "a", 0), // the same answer and item: one click
        credit(&a, "e:3", Outcome::Purchase, "a", 0),
        credit(&a, "o:o1:0", Outcome::Order, "a", 1_500), // the same sale: one purchase
        credit(&b, "e:4", Outcome::AddToCart, "z", 0),
    ];
    assert_eq!(store.insert_attributions(&credited).await.unwrap(), 5);
    assert_eq!(
        store.insert_attributions(&credited[..1]).await.unwrap(),
        0,
        "an event is credited once"
    );
    let kpis = store
        .recommendation_kpis(DateRange::default(), GroupBy::Placement)
        .await
        .unwrap();
    let home = kpis.iter().find(|k| k.key == "home:top_picks").unwrap();
    assert_eq!(
        (
            home.impressions,
            home.users,
            home.clicks,
            home.purchases,
            home.revenue
        ),
        (2, 1, 1, 1, 1_500)
    );
    assert!(
        (home.ctr - 0.5).abs() < 1e-12
            && (home.revenue_per_1k_impressions - 750_000.0).abs() < 1e-6
    );
    let session = kpis.iter().find(|k| k.key == "session").unwrap();
    assert_eq!(
        (session.impressions, session.add_to_carts, session.clicks),
        (1, 1, 0)
    );
    let by_variant = store
        .recommendation_kpis(DateRange::default(), GroupBy::Variant)
        .await
        .unwrap();
    let keys: Vec<&str> = by_variant.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["/", "new-ease/treatment"]);
    let by_day = store
        .recommendation_kpis(DateRange::new(Some(at(4)), None).unwrap(), GroupBy::Day)
        .await
        .unwrap();
    assert_eq!(by_day.len(), 1, "{by_day:?}");
    assert_eq!(by_day[0].impressions, 1);
    let counts = store.experiment_counts("new-ease").await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].impressions, counts[0].users), (1, 1));
}

async fn experiments_round_trip_and_refuse_clashes(db: TestDatabase) {
    use marquee_store::{Experiment, Variant};
    let store = db.open().await;
    let e = Experiment {
        name: "spring".into(),
        placement: "home".into(),
        metric: "ctr".into(),
        state: "running".into(),
        variants: vec![
            Variant {
                name: "a".into(),
                model_version: "v1".into(),
                share: 0.5,
            },
            Variant {
                name: "b".into(),
                model_version: "v2".into(),
                share: 0.5,
            },
        ],
        created_at: at(2),
        stopped_at: None,
    };
    store.create_experiment(&e).await.unwrap();
    assert_eq!(store.experiment("spring").await.unwrap(), Some(e.clone()));
    let again = store.create_experiment(&e).await.unwrap_err();
    assert!(again.to_string().contains("spring"), "{again}");
    let mut other = e.clone();
    other.name = "summer".into();
    let busy = store.create_experiment(&other).await.unwrap_err();
    assert!(busy.to_string().contains("stop it first"), "{busy}");
    assert!(store.stop_experiment("spring", at(3)).await.unwrap());
    assert!(!store.stop_experiment("spring", at(3)).await.unwrap());
    store.create_experiment(&other).await.unwrap();
    let all = store.experiments().await.unwrap();
    assert_eq!(all.len(), 2);
    let stopped = all.iter().find(|x| x.name == "spring").unwrap();
    assert_eq!(
        (stopped.state.as_str(), stopped.stopped_at),
        ("stopped", Some(at(3)))
    );
}

async fn placements_are_saved_replaced_and_deleted(db: TestDatabase) {
    use marquee_store::StoredPlacement;
    let store = db.open().await;
    let spec = serde_json::json!({"strategy": "personal", "filter": "price < 10 && category == \"Ünïcode\""});
    let p = StoredPlacement {
        name: "deals".into(),
        spec: spec.clone(),
        updated_at: at(1),
    };
    assert!(store.put_placement(&p).await.unwrap(), "new");
    let other = StoredPlacement {
        name: "ab".into(),
        spec: spec.clone(),
        updated_at: at(2),
    };
    assert!(store.put_placement(&other).await.unwrap());
    let replaced = StoredPlacement {
        spec: serde_json::json!({"strategy": "popular"}),
        updated_at: at(3),
        ..p.clone()
    };
    assert!(!store.put_placement(&replaced).await.unwrap(), "replaced");
    assert_eq!(store.placements().await.unwrap(), [other.clone(), replaced]);
    assert!(store.delete_placement("deals").await.unwrap());
    assert!(!store.delete_placement("deals").await.unwrap());
    assert_eq!(store.placements().await.unwrap(), [other]);
}

async fn publishable_keys_keep_their_origins_and_stay_readable(db: TestDatabase) {
    let store = db.open().await;
    let origins = vec!["https://shop.example/".to_owned(), "self".to_owned()];
    let pk = store
        .create_publishable_key("web tracker", &origins)
        .await
        .unwrap();
    assert!(pk.key.starts_with("mq_pk_"));
    let access = store.key_access(&pk.key).await.unwrap().unwrap();
    assert_eq!(access.role, ApiKeyRole::Publishable);
    assert_eq!(access.origins, ["https://shop.example", "self"]);
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(
        listed[0].key.as_deref(),
        Some(pk.key.as_str()),
        "shown again"
    );
    assert_eq!(listed[0].origins, ["https://shop.example", "self"]);
    let bad = store
        .create_publishable_key("x", &["ftp://shop.example".to_owned()])
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("http://"), "{bad}");
    assert!(store.create_publishable_key("x", &[]).await.is_err());
    assert!(
        store
            .create_api_key(ApiKeyRole::Publishable, "no origins")
            .await
            .is_err()
    );
    // Other roles are never kept in clear.
    let sf = store
        .create_api_key(ApiKeyRole::Storefront, "web")
        .await
        .unwrap();
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed[1].key, None);
    assert_eq!(
        store.key_access(&sf.key).await.unwrap().unwrap().origins,
        Vec::<String>::new()
    );
}

async fn identified_sessions_count_for_their_user(db: TestDatabase) {
    let store = db.open().await;
    let anon = |id: &str, session: &str, item: &str, day: u32| Event {
        actor: Actor::Session(SessionId::new(session).unwrap()),
        ..view(id, "nobody", item, day)
    };
    store
        .insert_events(&[
            anon("a1", "anon-1", "i1", 3),
            anon("a2", "anon-1", "i2", 4),
            anon("b1", "anon-2", "i3", 4),
            view("u1", "u1", "i4", 5),
        ])
        .await
        .unwrap();
    let session = SessionId::new("anon-1").unwrap();
    let u1 = UserId::new("u1").unwrap();
    assert_eq!(store.identity_of(&session).await.unwrap(), None);
    assert_eq!(store.events_of_user(&u1, 10).await.unwrap().len(), 1);
    assert!(store.link_session(&session, &u1).await.unwrap());
    // The first link wins.
    assert!(
        !store
            .link_session(&session, &UserId::new("u2").unwrap())
            .await
            .unwrap()
    );
    assert_eq!(store.identity_of(&session).await.unwrap(), Some(u1.clone()));
    let mine: Vec<String> = store
        .events_of_user(&u1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    assert_eq!(
        mine,
        ["u1", "a2", "a1"],
        "newest first, the session's included"
    );
    let session_only = store.events_of_session(&session, 10).await.unwrap();
    assert_eq!(session_only.len(), 2);
    // Training and analytics read the session's events as the user's.
    let mut actors = Vec::new();
    store
        .for_each_event(None, |e| {
            actors.push((e.id.as_str().to_owned(), e.actor.interaction_key()));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        actors,
        [
            ("a1".to_owned(), "u1".to_owned()),
            ("a2".to_owned(), "u1".to_owned()),
            ("b1".to_owned(), "session:anon-2".to_owned()),
            ("u1".to_owned(), "u1".to_owned()),
        ]
    );
}
