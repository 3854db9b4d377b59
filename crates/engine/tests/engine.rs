//! The engine over real artifacts written to a temporary folder: filters, exclusions, fold-in
//! of new events, cold start, similar items, home rows, hot swap and refusal of a bad model.

use chrono::{TimeZone, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, EventWeights, Item, ItemId, Money, Timestamp,
    UserId,
};
use marquee_engine::{Basis, Engine, Error, Filters};
use marquee_models::features::FeatureList;
use marquee_models::search::Candidate;
use marquee_models::{AlsParams, Artifact, BprParams, EaseParams, Interactions, TwoTowerParams};
use std::path::{Path, PathBuf};

const DAY: i64 = 86_400_000;

fn uid(id: &str) -> marquee_domain::UserId {
    marquee_domain::UserId::new(id).unwrap()
}

fn iid(id: &str) -> marquee_domain::ItemId {
    marquee_domain::ItemId::new(id).unwrap()
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Two taste groups: even users take items a0..a9, odd users b0..b9.
fn data() -> Interactions {
    let users: Vec<String> = (0..40).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|g| (0..10).map(move |i| format!("{g}{i}")))
        .collect();
    let mut rows = Vec::new();
    for (u, user) in users.iter().enumerate() {
        let group = u % 2;
        for k in 0..6 {
            let i = group * 10 + (u / 2 + k * 3) % 10;
            let at = t0().timestamp_millis() + (u + k) as i64 * DAY;
            rows.push((user.as_str(), items[i].as_str(), 1.0, at));
        }
    }
    Interactions::from_timed_triplets(rows)
}

fn catalog() -> Vec<Item> {
    let mut items = Vec::new();
    for g in ["a", "b"] {
        for i in 0..10 {
            let mut item = Item::new(
                ItemId::new(format!("{g}{i}")).unwrap(),
                format!("{g} {i}"),
                g.to_uppercase(),
                t0(),
            );
            item.price = Some(Money::new(
                100 * i64::from(i + 1),
                Currency::new("EUR").unwrap(),
            ));
            items.push(item);
        }
    }
    items[1].hidden = true; // a1
    items[2].in_stock = false; // a2
    items
}

/// The content features of the items of `x`, from [`catalog`] (the two-tower model's input).
fn features(x: &Interactions, buckets: u32) -> Vec<FeatureList> {
    let catalog = catalog();
    x.items
        .ids()
        .iter()
        .map(|id| {
            let item = catalog.iter().find(|i| i.id.as_str() == id).unwrap();
            marquee_models::features::item_features(item, buckets)
        })
        .collect()
}

fn save(root: &Path, version: &str, candidate: Candidate) -> PathBuf {
    let x = data();
    let features = features(&x, TwoTowerParams::default().buckets);
    let (model, _) =
        marquee_neural::fit(&candidate, &x, Some(&features), &mut |_, _| true).unwrap();
    let mut artifact = Artifact::new(
        "shop",
        version,
        model,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    );
    let dir = root.join("shop").join(version);
    artifact.save(&dir).unwrap();
    std::fs::write(root.join("shop/latest"), version).unwrap();
    dir
}

fn als() -> Candidate {
    Candidate::Als(AlsParams {
        factors: 8,
        iterations: 10,
        regularization: 0.1,
        ..AlsParams::default()
    })
}

fn bpr() -> Candidate {
    Candidate::Bpr(BprParams {
        factors: 8,
        epochs: 60,
        learning_rate: 0.05,
        batch_size: 32,
        ..BprParams::default()
    })
}

fn two_tower() -> Candidate {
    Candidate::TwoTower(TwoTowerParams {
        dim: 8,
        hidden: 16,
        epochs: 60,
        learning_rate: 0.02,
        batch_size: 32,
        negatives: 16,
        history: 8,
        temperature: 0.5,
        ..TwoTowerParams::default()
    })
}

fn ease() -> Candidate {
    Candidate::Ease(EaseParams {
        lambda: 5.0,
        ..EaseParams::default()
    })
}

fn event(user: &str, item: &str, kind: EventKind, day: i64) -> Event {
    Event {
        id: EventId::new(format!("{user}-{item}-{day}")).unwrap(),
        actor: Actor::User(UserId::new(user).unwrap()),
        item: Some(ItemId::new(item).unwrap()),
        kind,
        value: None,
        timestamp: t0() + chrono::TimeDelta::milliseconds(day * DAY),
        context: None,
    }
}

fn ids(answer: &marquee_engine::Answer) -> Vec<&str> {
    ids_of(&answer.items)
}

fn ids_of(items: &[marquee_engine::Recommendation]) -> Vec<&str> {
    items.iter().map(|r| r.item.as_str()).collect()
}

/// The items user `u<n>` has in [`data`].
fn data_items_of(user: &str) -> Vec<String> {
    let u: usize = user[1..].parse().unwrap();
    let group = ["a", "b"][u % 2];
    (0..6)
        .map(|k| format!("{group}{}", (u / 2 + k * 3) % 10))
        .collect()
}

#[test]
fn recommendations_respect_history_filters_and_the_catalog() {
    let root = tempfile::tempdir().unwrap();
    for (version, candidate) in [("v-als", als()), ("v-ease", ease())] {
        let dir = save(root.path(), version, candidate);
        let engine = Engine::open(&dir, catalog()).unwrap();
        assert_eq!(engine.version(), version);
        let history = data();
        for user in ["u0", "u1", "u6"] {
            let u = history.users.get(user).unwrap() as usize;
            let seen: Vec<&str> = history
                .row(u)
                .items
                .iter()
                .map(|&i| history.items.id(i as usize))
                .collect();
            let a = engine
                .recommend(Some(&uid(user)), &[], 5, &Filters::default())
                .unwrap();
            assert_eq!(a.basis, Basis::Personal);
            assert_eq!(a.model_version, version);
            assert_eq!(a.items.len(), 5);
            for item in ids(&a) {
                assert!(
                    !seen.contains(&item),
                    "{version}: {user} already has {item}"
                );
                assert!(
                    item != "a1" && item != "a2",
                    "{version}: hidden or out of stock"
                );
            }
            // The user's own group comes first.
            let group = if user == "u1" { 'b' } else { 'a' };
            assert!(
                ids(&a)[0].starts_with(group),
                "{version} {user}: {:?}",
                ids(&a)
            );
            assert!(a.items.windows(2).all(|w| w[0].score >= w[1].score));

            // Filters: category, price range, exclusions, seen items on request.
            let b_only = Filters {
                category: Some("B".into()),
                max_price: Some(500),
                exclude: vec![iid("b0")],
                ..Filters::default()
            };
            let a = engine
                .recommend(Some(&uid(user)), &[], 10, &b_only)
                .unwrap();
            for item in ids(&a) {
                let n: i64 = item[1..].parse().unwrap();
                assert!(item.starts_with('b') && (n + 1) * 100 <= 500 && item != "b0");
                assert!(!seen.contains(&item));
            }
            let all = Filters {
                include_seen: true,
                include_out_of_stock: true,
                ..Filters::default()
            };
            let a = engine.recommend(Some(&uid(user)), &[], 20, &all).unwrap();
            assert_eq!(a.items.len(), 19, "everything but the hidden item");
            assert!(!ids(&a).contains(&"a1"));
        }
        // An unknown category matches nothing.
        let none = Filters {
            category: Some("Z".into()),
            ..Filters::default()
        };
        assert!(
            engine
                .recommend(Some(&uid("u0")), &[], 5, &none)
                .unwrap()
                .items
                .is_empty()
        );
        assert!(matches!(
            engine.recommend(Some(&uid("u0")), &[], 0, &Filters::default()),
            Err(Error::BadK(0))
        ));
        assert!(
            engine
                .recommend(Some(&uid("u0")), &[], 1_000_000_000, &Filters::default())
                .is_err()
        );
    }
}

#[test]
fn new_events_change_the_next_answer_and_strangers_get_trending() {
    let root = tempfile::tempdir().unwrap();
    for (version, candidate) in [
        ("v-als", als()),
        ("v-ease", ease()),
        ("v-bpr", bpr()),
        ("v-tower", two_tower()),
    ] {
        let dir = save(root.path(), version, candidate);
        let engine = Engine::open(&dir, catalog()).unwrap();
        // A stranger: cold start.
        let cold = engine
            .recommend(Some(&uid("newcomer")), &[], 5, &Filters::default())
            .unwrap();
        assert_eq!(cold.basis, Basis::ColdStart);
        assert_eq!(cold.items.len(), 5);
        // The stranger buys two b items after training: the answer turns to group b.
        let after = 100;
        let events = vec![
            event("newcomer", "b3", EventKind::Purchase, after),
            event("newcomer", "b4", EventKind::AddToCart, after + 1),
        ];
        let warm = engine
            .recommend(Some(&uid("newcomer")), &events, 5, &Filters::default())
            .unwrap();
        assert_eq!(warm.basis, Basis::Personal);
        let top = ids(&warm);
        // The two-tower user tower over two items is a coarser signal than a least-squares
        // fold-in or item-item scores on this toy data: b items lead but need not fill the top.
        let (among, want) = if version == "v-tower" { (5, 2) } else { (3, 3) };
        assert!(
            top.iter()
                .take(among)
                .filter(|i| i.starts_with('b'))
                .count()
                >= want,
            "{version}: {top:?}"
        );
        assert_ne!(warm.items, cold.items, "{version}");
        assert!(!top.contains(&"b3") && !top.contains(&"b4"));
        assert!(warm.items.iter().any(|r| r.because.is_some()));
        // An a-user who now buys b items drifts towards b; events older than the training
        // data are already in the model and change nothing.
        let base = engine
            .recommend(Some(&uid("u0")), &[], 5, &Filters::default())
            .unwrap();
        let old = vec![event("u0", "b5", EventKind::Purchase, -10)];
        assert_eq!(
            engine
                .recommend(Some(&uid("u0")), &old, 5, &Filters::default())
                .unwrap(),
            base
        );
        let drift: Vec<Event> = (0..6)
            .map(|k| event("u0", &format!("b{k}"), EventKind::Purchase, after + k))
            .collect();
        let moved = engine
            .recommend(Some(&uid("u0")), &drift, 5, &Filters::default())
            .unwrap();
        assert_ne!(moved, base, "{version}");
        assert!(
            ids(&moved).iter().filter(|i| i.starts_with('b')).count() >= 2,
            "{version}: {:?}",
            ids(&moved)
        );
    }
}

#[test]
fn similar_items_sessions_and_home_rows() {
    let root = tempfile::tempdir().unwrap();
    let dir = save(root.path(), "v1", ease());
    let engine = Engine::open(&dir, catalog()).unwrap();
    let similar = engine.similar(&iid("b3"), 5, &Filters::default()).unwrap();
    assert_eq!(similar.basis, Basis::Similar);
    assert!(!similar.items.is_empty());
    assert!(
        ids(&similar)
            .iter()
            .all(|i| i.starts_with('b') && *i != "b3")
    );
    assert!(matches!(
        engine.similar(&iid("nope"), 5, &Filters::default()),
        Err(Error::UnknownItem(_))
    ));

    let session = engine
        .session(
            &[iid("a3"), iid("a4"), iid("unknown")],
            4,
            &Filters::default(),
        )
        .unwrap();
    assert_eq!(session.basis, Basis::Session);
    assert!(
        ids(&session)
            .iter()
            .all(|i| i.starts_with('a') && *i != "a3" && *i != "a4")
    );
    let empty = engine.session(&[], 4, &Filters::default()).unwrap();
    assert_eq!(empty.basis, Basis::ColdStart);

    // A title the model has never seen, newer than the rest of its category.
    let mut shelf = catalog();
    let later = t0() + chrono::TimeDelta::days(90);
    shelf.push(Item::new(
        ItemId::new("a-new").unwrap(),
        "a new",
        "A",
        later,
    ));
    engine.set_catalog(shelf);
    let rows = engine.home(Some(&uid("u0")), &[], 4).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        names,
        [
            "top_picks",
            "because_you_watched",
            "new_in_category",
            "trending"
        ]
    );
    assert!(rows[1].title.starts_with("Because you watched a"));
    assert_eq!(rows[1].about.as_deref(), Some(&rows[1].title[20..]));
    assert_eq!(rows[2].title, "New in A");
    let new_in = ids_of(&rows[2].items);
    assert_eq!(new_in[0], "a-new", "the newest item leads: {new_in:?}");
    let u0_has: Vec<String> = data_items_of("u0");
    for id in &new_in {
        assert!(id.starts_with('a'), "{new_in:?}");
        assert!(
            !["a1", "a2"].contains(id),
            "hidden or out of stock: {new_in:?}"
        );
        assert!(!u0_has.contains(&(*id).to_owned()), "seen: {new_in:?}");
    }
    let stranger = engine.home(None, &[], 4).unwrap();
    assert_eq!(
        stranger.iter().map(|r| r.id).collect::<Vec<_>>(),
        ["trending"]
    );
}

#[test]
fn hot_swap_keeps_serving_and_a_bad_model_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let v1 = save(root.path(), "v1", ease());
    let v2 = save(root.path(), "v2", als());
    let engine = std::sync::Arc::new(Engine::open(&root.path().join("shop"), catalog()).unwrap());
    assert_eq!(engine.version(), "v2", "the model folder's latest version");
    engine.swap(&v1).unwrap();
    assert_eq!(engine.version(), "v1");

    // Requests keep being answered, by one version or the other, while models swap: each
    // swap waits until every reader has answered since the one before, so answers and swaps
    // interleave however the threads are scheduled.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let counts: std::sync::Arc<[AtomicUsize; 2]> = std::sync::Arc::new(Default::default());
    let readers: Vec<_> = (0..2)
        .map(|n| {
            let (engine, stop, counts) = (engine.clone(), stop.clone(), counts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let a = engine
                        .recommend(Some(&uid("u3")), &[], 5, &Filters::default())
                        .unwrap();
                    assert!(a.model_version == "v1" || a.model_version == "v2");
                    assert_eq!(a.items.len(), 5);
                    counts[n].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut seen = [0, 0];
    for n in 0..20 {
        for (reader, last) in seen.iter_mut().enumerate() {
            let waited = std::time::Instant::now();
            while counts[reader].load(Ordering::Relaxed) == *last {
                if readers[reader].is_finished() {
                    break; // it failed: joining below reports why
                }
                assert!(
                    waited.elapsed() < std::time::Duration::from_secs(60),
                    "reader {reader} stopped answering during the swaps"
                );
                std::thread::yield_now();
            }
            *last = counts[reader].load(Ordering::Relaxed);
        }
        engine.swap(if n % 2 == 0 { &v2 } else { &v1 }).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(engine.version(), "v1");

    // A damaged artifact is refused and the active one stays.
    let tensors = v2.join("model.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    bytes[64] ^= 0xff;
    std::fs::write(&tensors, bytes).unwrap();
    let err = engine.swap(&v2).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    assert_eq!(engine.version(), "v1");
    assert!(engine.swap(&root.path().join("missing")).is_err());
    assert_eq!(engine.version(), "v1");

    // Catalog changes apply at once: a1 shown again, b-items all out of stock.
    let mut items = catalog();
    items[1].hidden = false;
    for item in items.iter_mut().filter(|i| i.id.as_str().starts_with('b')) {
        item.in_stock = false;
    }
    engine.set_catalog(items);
    let a = engine
        .recommend(Some(&uid("u1")), &[], 20, &Filters::default())
        .unwrap();
    assert!(ids(&a).iter().all(|i| i.starts_with('a')));
    assert!(ids(&a).contains(&"a1"));
}

/// What replicas rely on: an activation is recorded in the model folder's `active` file and
/// wins over `latest` on restart; another engine following the folder swaps it in once; a
/// truncated, missing or ill-named version is reported and the served one stays; a model
/// folder that disappears leaves the served model answering.
#[test]
fn activations_are_recorded_and_followed_and_faults_keep_the_served_model() {
    let root = tempfile::tempdir().unwrap();
    let v1 = save(root.path(), "v1", ease());
    let v2 = save(root.path(), "v2", als());
    let folder = root.path().join("shop");
    let a = Engine::open(&folder, catalog()).unwrap();
    let b = Engine::open(&folder, catalog()).unwrap();
    assert_eq!((a.version().as_str(), b.version().as_str()), ("v2", "v2"));
    assert_eq!(b.follow_active().unwrap(), None, "nothing activated yet");

    assert_eq!(a.activate(&v1).unwrap(), "v1");
    assert_eq!(
        std::fs::read_to_string(folder.join("active")).unwrap(),
        "v1"
    );
    assert_eq!(b.follow_active().unwrap().as_deref(), Some("v1"));
    assert_eq!(b.follow_active().unwrap(), None, "followed once");
    assert_eq!(a.follow_active().unwrap(), None, "its own activation");
    let restarted = Engine::open(&folder, catalog()).unwrap();
    assert_eq!(restarted.version(), "v1", "active wins over latest (v2)");

    // A truncated artifact: refused by activate (the file stays) and by followers.
    let tensors = v2.join("model.safetensors");
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    assert!(a.activate(&v2).is_err());
    assert_eq!(a.version(), "v1");
    assert_eq!(
        std::fs::read_to_string(folder.join("active")).unwrap(),
        "v1"
    );
    std::fs::write(folder.join("active"), "v2").unwrap();
    let err = b.follow_active().unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert_eq!(b.version(), "v1");
    assert_eq!(
        b.follow_active().unwrap(),
        None,
        "a failure is reported once"
    );

    // A version that is not there, or a name that is not a version.
    std::fs::write(folder.join("active"), "v9\n").unwrap();
    assert!(b.follow_active().is_err());
    std::fs::write(folder.join("active"), "../v1").unwrap();
    let err = b.follow_active().unwrap_err().to_string();
    assert!(err.contains("not a version name"), "{err}");
    assert_eq!(b.version(), "v1");

    // The whole model folder gone: nothing to follow, the loaded model keeps answering.
    drop(root);
    assert_eq!(b.follow_active().unwrap(), None);
    let answer = b
        .recommend(Some(&uid("u3")), &[], 5, &Filters::default())
        .unwrap();
    assert_eq!(
        (answer.model_version.as_str(), answer.items.len()),
        ("v1", 5)
    );
}

/// A large ALS catalog is scored in two passes (int8 for all items, exact for the best few):
/// the answers are the exact top-k of the factors, whatever the filters.
#[test]
fn large_als_catalogs_answer_the_exact_top_k() {
    use marquee_domain::rng::SeededRng;
    use marquee_models::{Als, Model};
    let (n_items, n_users, f) = (5_000, 60, 32);
    let mut rng = SeededRng::new(9);
    let items: Vec<String> = (0..n_items).map(|i| format!("i{i}")).collect();
    let users: Vec<String> = (0..n_users).map(|u| format!("u{u}")).collect();
    let mut rows = Vec::new();
    for (n, i) in items.iter().enumerate() {
        rows.push((
            users[n % n_users].as_str(),
            i.as_str(),
            1.0,
            t0().timestamp_millis(),
        ));
    }
    let history = Interactions::from_timed_triplets(rows);
    let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32 * 0.1).collect() };
    let als = Als {
        params: AlsParams {
            factors: f,
            ..AlsParams::default()
        },
        n_users: history.n_users(),
        n_items: history.n_items(),
        user_factors: random(history.n_users() * f),
        item_factors: random(history.n_items() * f),
    };
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("big");
    Artifact::new(
        "big",
        "v1",
        Model::Als(als.clone()),
        history.clone(),
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    )
    .save(&dir)
    .unwrap();
    // Every third item hidden or out of stock; two categories by parity.
    let catalog: Vec<Item> = (0..n_items)
        .map(|i| {
            let mut item = Item::new(
                ItemId::new(format!("i{i}")).unwrap(),
                "t",
                if i % 2 == 0 { "even" } else { "odd" },
                t0(),
            );
            item.hidden = i % 6 == 3;
            item.in_stock = i % 6 != 5;
            item
        })
        .collect();
    let engine = Engine::open(&dir, catalog.clone()).unwrap();
    for u in 0..n_users {
        let user = format!("u{u}");
        let urow = history.users.get(&user).unwrap() as usize;
        let x = &als.user_factors[urow * f..(urow + 1) * f];
        let own: Vec<u32> = history.row(urow).items.to_vec();
        for (filters, k) in [
            (Filters::default(), 10),
            (
                Filters {
                    category: Some("odd".into()),
                    ..Filters::default()
                },
                5,
            ),
            (
                Filters {
                    include_seen: true,
                    ..Filters::default()
                },
                20,
            ),
        ] {
            let mut exact: Vec<(f64, String)> = (0..history.n_items())
                .filter(|&j| filters.include_seen || !own.contains(&(j as u32)))
                .filter_map(|j| {
                    let id = history.items.id(j).to_owned();
                    let i: usize = id[1..].parse().unwrap();
                    let item = &catalog[i];
                    let allowed = !item.hidden
                        && item.in_stock
                        && filters
                            .category
                            .as_ref()
                            .is_none_or(|c| *c == item.category);
                    let y = &als.item_factors[j * f..(j + 1) * f];
                    let s: f64 = y
                        .iter()
                        .zip(x)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum();
                    allowed.then_some((s, id))
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: Vec<&str> = exact[..k].iter().map(|(_, id)| id.as_str()).collect();
            let got = engine
                .recommend(Some(&uid(&user)), &[], k, &filters)
                .unwrap();
            assert_eq!(ids(&got), want, "{user} {filters:?}");
        }
    }
}

#[test]
fn the_two_tower_model_places_new_catalog_items_by_their_features() {
    let root = tempfile::tempdir().unwrap();
    let dir = save(root.path(), "v-tower", two_tower());
    let mut items = catalog();
    let new = |id: &str, category: &str| {
        Item::new(
            ItemId::new(id).unwrap(),
            format!("{category} new"),
            category.to_uppercase(),
            t0(),
        )
    };
    items.push(new("a-new", "a"));
    items.push(new("b-new", "b"));
    let mut hidden = new("a-hidden", "a");
    hidden.hidden = true;
    let mut sold_out = new("a-sold-out", "a");
    sold_out.in_stock = false;
    items.extend([hidden, sold_out]);
    let engine = Engine::open(&dir, catalog()).unwrap();
    let all = Filters::default();
    // Before the items are in the catalog, nobody gets them.
    let before = engine.recommend(Some(&uid("u0")), &[], 30, &all).unwrap();
    assert!(!ids(&before).iter().any(|i| i.contains("new")));
    // Added through the catalog (as the admin API does): placed by their features at once.
    engine.set_catalog(items);
    for user in ["u0", "u2", "u4", "u1", "u3"] {
        let group = if user[1..].parse::<usize>().unwrap() % 2 == 0 {
            'a'
        } else {
            'b'
        };
        let answer = engine.recommend(Some(&uid(user)), &[], 30, &all).unwrap();
        let top = ids(&answer);
        let own = format!("{group}-new");
        let other = if group == 'a' { "b-new" } else { "a-new" };
        let at = |id: &str| top.iter().position(|i| *i == id);
        let own_at = at(&own).unwrap_or_else(|| panic!("{user}: {own} missing from {top:?}"));
        // The new item of the user's taste ranks above every item of the other taste.
        let first_other = top.iter().position(|i| !i.starts_with(group)).unwrap();
        assert!(own_at < first_other, "{user}: {top:?}");
        assert!(at(other).is_none_or(|o| o > own_at), "{user}: {top:?}");
        assert!(
            !top.contains(&"a-hidden") && !top.contains(&"a-sold-out"),
            "{top:?}"
        );
        assert!(answer.items.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // Filters apply to them like to any item, and what the user viewed is left out.
    let only_b = Filters {
        category: Some("B".into()),
        ..Filters::default()
    };
    let b = engine
        .recommend(Some(&uid("u0")), &[], 30, &only_b)
        .unwrap();
    assert!(ids(&b).iter().all(|i| i.starts_with('b')), "{:?}", ids(&b));
    let excluded = Filters {
        exclude: vec![iid("a-new")],
        ..Filters::default()
    };
    assert!(
        !ids(&engine
            .recommend(Some(&uid("u0")), &[], 30, &excluded)
            .unwrap())
        .contains(&"a-new")
    );
    let viewed = [event("u0", "a-new", EventKind::View, 100)];
    let after = engine
        .recommend(Some(&uid("u0")), &viewed, 30, &all)
        .unwrap();
    assert!(!ids(&after).contains(&"a-new"));
    // A model without content features (ALS) leaves unknown items to the "New in" row.
    let als_dir = save(root.path(), "v-als", als());
    engine.swap(&als_dir).unwrap();
    let answer = engine.recommend(Some(&uid("u0")), &[], 30, &all).unwrap();
    assert!(!ids(&answer).iter().any(|i| i.contains("new")));
}

/// Viewers walk a chain of titles: viewer `c<u>` watches 8 consecutive titles of s0..s29, in
/// order, a minute apart.
fn chain() -> Interactions {
    let mut rows = Vec::new();
    for u in 0..60 {
        let start = (u * 7) % 22;
        for step in 0..8 {
            let at = t0().timestamp_millis() + i64::from(u * 100 + step) * 60_000;
            rows.push((format!("c{u}"), format!("s{}", start + step), 1.0, at));
        }
    }
    Interactions::from_timed_triplets(
        rows.iter()
            .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
    )
}

/// Views of `items` by `user`, oldest first, an hour apart, long after training.
fn views(user: &str, items: &[&str]) -> Vec<Event> {
    items
        .iter()
        .enumerate()
        .map(|(n, item)| Event {
            id: EventId::new(format!("{user}-view-{n}")).unwrap(),
            actor: Actor::User(uid(user)),
            item: Some(iid(item)),
            kind: EventKind::View,
            value: None,
            timestamp: t0() + chrono::TimeDelta::days(30) + chrono::TimeDelta::hours(n as i64),
            context: None,
        })
        .collect()
}

#[test]
fn a_sequence_model_answers_what_follows_the_latest_items_in_time_order() {
    let root = tempfile::tempdir().unwrap();
    let x = chain();
    let params = marquee_models::SasrecParams {
        dim: 16,
        blocks: 1,
        heads: 1,
        max_len: 8,
        epochs: 100,
        learning_rate: 0.01,
        batch_size: 32,
        negatives: 0,
        dropout: 0.0,
        ..marquee_models::SasrecParams::default()
    };
    let (model, _) =
        marquee_neural::fit(&Candidate::Sasrec(params), &x, None, &mut |_, _| true).unwrap();
    let marquee_models::Model::Sasrec(sasrec) = &model else {
        panic!("not a SASRec model");
    };
    let sasrec = sasrec.clone();
    let mut artifact = Artifact::new(
        "chain",
        "v1",
        model,
        x.clone(),
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    );
    let dir = root.path().join("chain/v1");
    artifact.save(&dir).unwrap();
    let catalog: Vec<Item> = (0..30)
        .map(|i| Item::new(iid(&format!("s{i}")), format!("title {i}"), "S", t0()))
        .collect();
    let engine = Engine::open(&dir, catalog).unwrap();
    let index = |id: &str| x.items.get(id).unwrap();
    let filters = Filters::default();

    // A newcomer's three views, in time order: the engine's answer is burn's top 5 for that
    // sequence (seen items left out), led by the next title of the chain.
    let answer = engine
        .recommend(None, &views("new", &["s3", "s4", "s5"]), 5, &filters)
        .unwrap();
    let sequence = [index("s3"), index("s4"), index("s5")];
    let burn = marquee_neural::burn_next_scores(&sasrec, &sequence).unwrap();
    let mut seen = sequence.to_vec();
    seen.sort_unstable();
    let best = marquee_models::top_k(&burn, 5, &seen);
    let expected: Vec<&str> = best.iter().map(|&(i, _)| x.items.id(i as usize)).collect();
    assert_eq!(ids(&answer), expected);
    assert_eq!(answer.basis, Basis::Personal);
    assert_eq!(ids(&answer)[0], "s6");
    for (r, &(i, s)) in answer.items.iter().zip(&best) {
        assert_eq!(r.item.as_str(), x.items.id(i as usize));
        assert!((r.score - s).abs() < 1e-3, "{} vs {s}", r.score);
    }

    // The order of the views decides: the newest one's successor comes first.
    let a = engine
        .recommend(None, &views("new", &["s12", "s5"]), 3, &filters)
        .unwrap();
    let b = engine
        .recommend(None, &views("new", &["s5", "s12"]), 3, &filters)
        .unwrap();
    assert_eq!(ids(&a)[0], "s6", "{:?}", ids(&a));
    assert_eq!(ids(&b)[0], "s13", "{:?}", ids(&b));

    // A known viewer (c0 watched s0..s7): a fresh view changes the next answer to what burn
    // ranks first after the training sequence plus that view.
    let before = engine
        .recommend(Some(&uid("c0")), &[], 3, &filters)
        .unwrap();
    assert_eq!(ids(&before)[0], "s8", "{:?}", ids(&before));
    let fresh = views("c0", &["s20"]);
    let after = engine
        .recommend(Some(&uid("c0")), &fresh, 3, &filters)
        .unwrap();
    let mut sequence = sasrec
        .sequence_of(x.users.get("c0").unwrap() as usize)
        .to_vec();
    sequence.push(index("s20"));
    let burn = marquee_neural::burn_next_scores(&sasrec, &sequence).unwrap();
    let mut seen = sequence.clone();
    seen.sort_unstable();
    let first = marquee_models::top_k(&burn, 1, &seen)[0].0;
    assert_ne!(ids(&after)[0], ids(&before)[0]);
    assert_eq!(ids(&after)[0], x.items.id(first as usize));

    // An anonymous session (items newest first) of 20 items is read in order too: the answer
    // is burn's first after its newest 8, oldest first.
    let newest_first: Vec<String> = (0..=5)
        .rev()
        .chain((14..=27).rev())
        .map(|i| format!("s{i}"))
        .collect();
    let long: Vec<ItemId> = newest_first.iter().map(|i| iid(i)).collect();
    let session = engine.session(&long, 3, &filters).unwrap();
    assert_eq!(session.basis, Basis::Session);
    let window: Vec<u32> = newest_first[..8].iter().rev().map(|i| index(i)).collect();
    let burn = marquee_neural::burn_next_scores(&sasrec, &window).unwrap();
    let mut seen: Vec<u32> = newest_first.iter().map(|i| index(i)).collect();
    seen.sort_unstable();
    let first = marquee_models::top_k(&burn, 1, &seen)[0].0;
    assert_eq!(ids(&session)[0], x.items.id(first as usize));
    assert_eq!(ids(&session)[0], "s6", "{:?}", ids(&session));
    // A short one (two items) gets the item-kNN answer, without what it holds.
    let short = engine
        .session(&[iid("s5"), iid("s12")], 3, &filters)
        .unwrap();
    assert_eq!(short.basis, Basis::Session);
    assert_eq!(short.items.len(), 3);
    assert!(ids(&short).iter().all(|i| *i != "s5" && *i != "s12"));

    // The home screen's first row is "Up next", the same answer.
    let home = engine.home(Some(&uid("c0")), &fresh, 3).unwrap();
    assert_eq!(home[0].id, "up_next");
    assert_eq!(ids_of(&home[0].items), ids(&after));
    assert!(home.iter().all(|r| r.id != "top_picks"));
}
