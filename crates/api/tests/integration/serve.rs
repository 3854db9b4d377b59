//! The real `serve` binary on a free port: keys printed on first start, health, events posted
//! for a visitor that change their next recommendations, and a clean stop on SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    KillOnDrop, add_customers, free_port, http, http_raw, read_keys, spawn_serve, try_http,
};

#[test]
fn serve_answers_and_learns_from_events() {
    let shop = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::common::shop());
    let (models, url) = (&shop.model, &shop.url);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(add_customers(url));
    let tools = std::path::Path::new(env!("CARGO_BIN_EXE_serve"))
        .parent()
        .unwrap();
    for tool in ["train", "segments"] {
        assert!(
            tools.join(tool).is_file(),
            "the {tool} binary is missing beside serve: run `cargo test --workspace`, which builds it"
        );
    }

    let port = free_port();
    let admin_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
        .arg("--model")
        .arg(models)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Stops the server if an assertion fails before the SIGTERM below.
    let mut child = KillOnDrop(child);
    let (key, admin_key) = read_keys(&mut child);
    assert!(key.starts_with("mq_sf_"), "{key}");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(port, "GET", "/healthz", "", "").0, 200);

    let visitor = |key: &str| {
        http(
            port,
            "GET",
            "/v1/recommendations?user_id=visitor&k=3",
            key,
            "",
        )
    };
    let (s, before) = visitor(&key);
    assert_eq!(
        (s, before["basis"].as_str()),
        (200, Some("cold_start")),
        "{before}"
    );
    let events = r#"{"events": [
        {"event_id": "v-1", "user_id": "visitor", "item_id": "b2", "kind": "purchase"},
        {"event_id": "v-2", "user_id": "visitor", "item_id": "b6", "kind": "wishlist"}
    ]}"#;
    let (s, v) = http(port, "POST", "/v1/events", &key, events);
    assert_eq!((s, v["accepted"].as_u64()), (202, Some(2)), "{v}");
    let (s, after) = visitor(&key);
    assert_eq!(
        (s, after["basis"].as_str()),
        (200, Some("personal")),
        "{after}"
    );
    let ids: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| i.starts_with('b')), "{ids:?}");
    assert_eq!(after["model_version"], "v1");

    // Admin jobs run the real tools: retrain (popularity, quick) and the new version serves;
    // recompute segments and download the CRM export.
    let wait = |id: u64| -> Value {
        let start = Instant::now();
        loop {
            let (s, job) = http(
                admin_port,
                "GET",
                &format!("/v1/admin/jobs/{id}"),
                &admin_key,
                "",
            );
            assert_eq!(s, 200, "{job}");
            if job["state"] != "running" {
                return job;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "{job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let body = r#"{"set": ["models=popularity"]}"#;
    let (s, job) = http(
        admin_port,
        "POST",
        "/v1/admin/jobs/retrain",
        &admin_key,
        body,
    );
    assert_eq!(s, 202, "{job}");
    let job = wait(job["id"].as_u64().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, now) = visitor(&key);
    assert_ne!(now["model_version"], "v1", "{job}");
    assert!(
        job["result"]
            .as_str()
            .unwrap()
            .contains(now["model_version"].as_str().unwrap())
    );

    let (s, job) = http(
        admin_port,
        "POST",
        "/v1/admin/segments/recompute",
        &admin_key,
        r#"{"k": 2}"#,
    );
    assert_eq!(s, 202, "{job}");
    let job = wait(job["id"].as_u64().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let (s, head, csv) = http_raw(
        admin_port,
        "GET",
        "/v1/admin/segments/export?segment=all&format=csv",
        &admin_key,
        "",
    );
    assert_eq!(s, 200, "{csv}");
    assert!(
        head.to_ascii_lowercase().contains("x-left-out: 10"),
        "{head}"
    );
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("user_id,"), "{csv}");
    assert_eq!(rows.len(), 1 + 10, "the ten consenting customers: {csv}");
    let (s, head, _) = http_raw(
        admin_port,
        "GET",
        "/v1/admin/segments/export?segment=all&format=parquet&include_non_consenting=true",
        &admin_key,
        "",
    );
    assert_eq!(s, 200);
    assert!(head.contains("application/vnd.apache.parquet"), "{head}");
    let (s, v) = http(
        admin_port,
        "GET",
        "/v1/admin/segments/export?segment=all&format=xlsx",
        &admin_key,
        "",
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_format"))
    );

    // SIGTERM: a graceful stop.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The embedded default on a fresh clone: an empty store and no model. `serve` seeds the store
/// from the demo shop, fits a first model, and answers personal recommendations; the second
/// start changes nothing.
#[test]
fn first_start_seeds_the_store_and_fits_a_first_model() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let model = dir.path().join("models/default");
    let seed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../notebooks-data/demo-store");
    let start = |port: u16| {
        let mut child = KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_serve"))
                .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
                .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
                .arg("--model")
                .arg(&model)
                .arg("--seed")
                .arg(&seed)
                .env("DATABASE_URL", &url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "serve did not start"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (child, lines)
    };
    let port = free_port();
    let (child, mut lines) = start(port);
    let printed: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    let key = printed[0]
        .strip_prefix("storefront key: ")
        .expect(&printed[0])
        .to_owned();
    assert!(
        printed[2].starts_with("seeded the empty store from"),
        "{printed:?}"
    );
    assert!(printed[3].starts_with("no model in"), "{printed:?}");
    assert!(printed[4].starts_with("saved "), "{printed:?}");
    let (s, v) = http(port, "GET", "/v1/recommendations?user_id=u1&k=5", &key, "");
    assert_eq!((s, v["basis"].as_str()), (200, Some("personal")), "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let (_, ready) = http(port, "GET", "/readyz", "", "");
    assert_eq!(ready["model_kind"], "ease", "{ready}");
    drop(child);

    // A second start: nothing seeded, no new model, no new keys.
    let port = free_port();
    let (child, mut lines) = start(port);
    let (s, _) = http(port, "GET", "/v1/categories", &key, "");
    assert_eq!(s, 200);
    drop(child);
    assert!(lines.next().is_none(), "a second start prints nothing");
    let versions = std::fs::read_dir(&model)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(versions, 1);
}

/// Crash safety: batches of events and orders are posted to the real binary, which is killed
/// with SIGKILL at a random moment, 20 times. After each restart the batch or order whose
/// answer never came is sent again (idempotent retry). At the end every acknowledged event and
/// order is in the store exactly once. Recommendations asked for meanwhile have their
/// impressions stored, except those of the last interval before each kill.
#[test]
fn acknowledged_writes_survive_sigkill() {
    use marquee_domain::rng::SeededRng;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let shop = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let shop = crate::common::shop().await;
        // Prices, so that orders can be placed.
        let store = marquee_store::Store::open(&shop.url).await.unwrap();
        let priced: Vec<marquee_domain::Item> = shop
            .catalog
            .iter()
            .cloned()
            .map(|mut i| {
                i.price = Some(marquee_domain::Money::new(
                    250,
                    marquee_domain::Currency::new("EUR").unwrap(),
                ));
                i
            })
            .collect();
        store.upsert_items(&priced).await.unwrap();
        shop
    });
    let mut key = String::new();
    let mut rng = SeededRng::new(2026);
    let mut acked_events: Vec<String> = Vec::new();
    let mut acked_orders: Vec<String> = Vec::new();
    // The recommendation ids answered, with when (relative to the kill) they were answered.
    let mut answered: Vec<String> = Vec::new();
    // What was sent without an answer when the server died: retried after the restart.
    let mut pending: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut next = 0usize;
    let kills = 20;
    // One round more than kills: the last one only retries what is pending.
    for round in 0..=kills {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_serve"))
            .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
            .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
            .arg("--model")
            .arg(&shop.model)
            .arg("--no-first-start")
            .env("DATABASE_URL", &shop.url)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        if round == 0 {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let line = lines.next().unwrap().unwrap();
            key = line
                .strip_prefix("storefront key: ")
                .expect(&line)
                .to_owned();
            // Read the admin key line too: a closed pipe would fail serve's next print.
            lines.next().unwrap().unwrap();
        }
        let start = Instant::now();
        while try_http(port, "GET", "/readyz", "", "").map(|r| r.0).ok() != Some(200) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Retry what had no answer: it is stored once whether or not it got in before.
        for (path, body, ids) in std::mem::take(&mut pending) {
            let (s, _, text) = try_http(port, "POST", &path, &key, &body).unwrap();
            assert!((200..=202).contains(&s), "{s} {text}");
            if path == "/v1/orders" {
                acked_orders.extend(ids);
            } else {
                acked_events.extend(ids);
            }
        }
        if round == kills {
            break;
        }
        // A killer at a random moment while writes go on.
        let pid = child.id().to_string();
        let dead = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dead);
        let delay = Duration::from_millis(30 + rng.index(300) as u64);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        loop {
            next += 1;
            // An answer (its impression queued) between the writes.
            if let Ok((200, _, text)) =
                try_http(port, "GET", "/v1/recommendations?user_id=u3&k=3", &key, "")
            {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(id) = v["recommendation_id"].as_str() {
                    answered.push(id.to_owned());
                }
            }
            let (path, body, ids) = if next.is_multiple_of(5) {
                let id = format!("crash-order-{next}");
                let body = format!(
                    r#"{{"order_id": "{id}", "user_id": "u3", "lines": [{{"item_id": "b1", "quantity": 2}}]}}"#
                );
                ("/v1/orders".to_owned(), body, vec![id])
            } else {
                let ids: Vec<String> = (0..50).map(|j| format!("crash-{next}-{j}")).collect();
                let events: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        format!(
                            r#"{{"event_id": "{id}", "user_id": "crash-user", "item_id": "a1", "kind": "view"}}"#
                        )
                    })
                    .collect();
                let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
                ("/v1/events".to_owned(), body, ids)
            };
            match try_http(port, "POST", &path, &key, &body) {
                Ok((s, _, _)) if s == 202 || s == 201 => {
                    if path == "/v1/orders" {
                        acked_orders.extend(ids);
                    } else {
                        acked_events.extend(ids);
                    }
                }
                Ok((s, _, text)) => panic!("{path}: {s} {text}"),
                Err(_) => {
                    pending.push((path, body, ids));
                    break;
                }
            }
            if dead.load(Ordering::SeqCst) {
                break;
            }
        }
        killer.join().unwrap();
        let _ = child.wait();
    }
    let (stored_events, stored_orders, impressions) =
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = marquee_store::Store::open(&shop.url).await.unwrap();
            let mut impressions = 0usize;
            for id in &answered {
                let found = store.impression(id.parse().unwrap()).await.unwrap();
                impressions += usize::from(found.is_some());
            }
            let user = marquee_domain::UserId::new("crash-user").unwrap();
            let events = store.events_of_user(&user, u32::MAX).await.unwrap();
            let mut orders = Vec::new();
            for id in &acked_orders {
                let o = store
                    .order(&marquee_domain::OrderId::new(id.as_str()).unwrap())
                    .await
                    .unwrap();
                orders.push(o.is_some());
            }
            (
                events
                    .iter()
                    .map(|e| e.id.as_str().to_owned())
                    .collect::<Vec<_>>(),
                orders,
                impressions,
            )
        });
    let stored: std::collections::HashSet<&str> =
        stored_events.iter().map(String::as_str).collect();
    assert_eq!(
        stored.len(),
        stored_events.len(),
        "an event is stored twice"
    );
    let missing: Vec<&String> = acked_events
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        stored_orders.iter().all(|found| *found),
        "an acknowledged order was lost"
    );
    let acked: std::collections::HashSet<&str> = acked_events.iter().map(String::as_str).collect();
    assert_eq!(
        acked.len(),
        acked_events.len(),
        "each batch was acknowledged once"
    );
    assert!(
        acked_events.len() >= kills * 50,
        "{} events acknowledged",
        acked_events.len()
    );
    // Impressions are stored every 200 ms, so a kill loses the answers of the interval
    // before it; those of the rest of each round are stored.
    assert!(
        impressions > 0 && impressions <= answered.len(),
        "{impressions} of {} answers stored",
        answered.len()
    );
    eprintln!(
        "{kills} kills: {} events and {} orders acknowledged, all found once ({} events stored); \
         {impressions} of {} answers' impressions stored",
        acked_events.len(),
        acked_orders.len(),
        stored_events.len(),
        answered.len()
    );
}

/// The storefront and admin keys a first start prints on standard output.
/// Polls `check` every 50 ms until it holds; returns how long that took, or panics after
/// `limit` with the last value seen.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> (bool, Value)) -> Duration {
    let start = Instant::now();
    loop {
        let (done, seen) = check();
        if done {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; last answer {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two `serve` replicas over one PostgreSQL database and one model folder: an activation
/// through one is served by the other within 5 s, an event posted to one changes the other's
/// answer, a catalog edit through one reaches the other, and the admin jobs run `train` and
/// `segments` against PostgreSQL. Needs `MARQUEE_TEST_POSTGRES_URL` (see `.ci/run`).
#[test]
fn two_replicas_share_postgres_and_the_model_folder() {
    let Some(db) = marquee_store::testing::TestDatabase::postgres() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shop = rt.block_on(crate::common::shop_in(Some(db.url())));
    rt.block_on(add_customers(db.url()));
    // A second version for activation: trained on the other taste pairing.
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let rows: Vec<(String, String)> = (0..20)
        .flat_map(|u| {
            (0..4).map(move |k| {
                (
                    format!("u{u}"),
                    format!("{}{}", ["b", "a"][u % 2], (u + k) % 8),
                )
            })
        })
        .collect();
    let rows: Vec<(&str, &str, f32, i64)> = rows
        .iter()
        .map(|(u, i)| (u.as_str(), i.as_str(), 1.0, t0))
        .collect();
    crate::common::save_version(&shop.model, "v2", &rows);

    let (port_a, admin_a) = (free_port(), free_port());
    let mut a = spawn_serve(db.url(), &shop.model, port_a, admin_a);
    let (key, admin_key) = read_keys(&mut a);
    let (port_b, admin_b) = (free_port(), free_port());
    let _b = spawn_serve(db.url(), &shop.model, port_b, admin_b);
    let recs = |port: u16, user: &str| {
        http(
            port,
            "GET",
            &format!("/v1/recommendations?user_id={user}&k=3"),
            &key,
            "",
        )
    };

    // An event posted to A changes B's answer.
    let (s, before) = recs(port_b, "visitor");
    assert_eq!(
        (s, before["basis"].as_str()),
        (200, Some("cold_start")),
        "{before}"
    );
    let events = r#"{"events": [
        {"event_id": "r-1", "user_id": "visitor", "item_id": "b2", "kind": "purchase"},
        {"event_id": "r-2", "user_id": "visitor", "item_id": "b6", "kind": "wishlist"}
    ]}"#;
    assert_eq!(http(port_a, "POST", "/v1/events", &key, events).0, 202);
    let took = within(Duration::from_secs(5), "B folds in A's events", || {
        let (_, v) = recs(port_b, "visitor");
        (v["basis"] == "personal", v)
    });
    eprintln!("replica B answered from A's events after {took:?}");

    // A catalog edit through A's admin API reaches B's answers.
    let (_, v) = recs(port_b, "visitor");
    let first = v["items"][0]["item"].as_str().unwrap().to_owned();
    let (s, v) = http(
        admin_a,
        "DELETE",
        &format!("/v1/admin/items/{first}"),
        &admin_key,
        "",
    );
    assert!(s == 200 || s == 204, "{s} {v}");
    let took = within(
        Duration::from_secs(5),
        "B stops recommending the hidden item",
        || {
            let (_, v) = recs(port_b, "visitor");
            let items = v["items"].as_array().cloned().unwrap_or_default();
            (
                !items.is_empty() && items.iter().all(|i| i["item"] != first.as_str()),
                v,
            )
        },
    );
    eprintln!("replica B left out the item hidden through A after {took:?}");

    // An activation through A's admin API: B serves it within 5 s.
    let (s, v) = http(
        admin_a,
        "POST",
        "/v1/admin/models/v2/activate",
        &admin_key,
        "",
    );
    assert_eq!((s, v["model_version"].as_str()), (200, Some("v2")), "{v}");
    let took = within(Duration::from_secs(5), "B serves v2", || {
        let (_, v) = recs(port_b, "u0");
        (v["model_version"] == "v2", v)
    });
    eprintln!("replica B served the version activated through A after {took:?}");
    assert_eq!(
        std::fs::read_to_string(shop.model.join("active")).unwrap(),
        "v2",
        "the activation is recorded for restarts"
    );

    // An experiment started through A is followed by B; a click B's answer drew, posted to
    // A with its recommendation_id, is credited to that answer; a stop through A reaches B.
    let (s, v) = http(
        admin_a,
        "POST",
        "/v1/admin/experiments",
        &admin_key,
        r#"{"name": "replicas", "placement": "recommendations", "metric": "ctr",
            "variants": [{"name": "a", "model_version": "v1", "share": 0.5},
                         {"name": "b", "model_version": "v2", "share": 0.5}]}"#,
    );
    assert_eq!(s, 201, "{v}");
    let mut shown = Value::Null;
    let took = within(Duration::from_secs(5), "B follows the experiment", || {
        let (_, v) = recs(port_b, "u0");
        shown = v.clone();
        (v["experiment"] == "replicas", v)
    });
    eprintln!("replica B assigned requests to the experiment started through A after {took:?}");
    let item = shown["items"][0]["item"].as_str().unwrap().to_owned();
    let click = format!(
        r#"{{"events": [{{"event_id": "replica-click", "user_id": "u0", "item_id": "{item}",
             "kind": "click", "recommendation_id": "{}"}}]}}"#,
        shown["recommendation_id"].as_str().unwrap()
    );
    // B stores its impressions every 200 ms.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(http(port_a, "POST", "/v1/events", &key, &click).0, 202);
    let (_, results) = http(
        admin_a,
        "GET",
        "/v1/admin/experiments/replicas",
        &admin_key,
        "",
    );
    let clicks: u64 = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["clicks"].as_u64().unwrap())
        .sum();
    assert_eq!(clicks, 1, "{results}");
    let (s, _) = http(
        admin_a,
        "POST",
        "/v1/admin/experiments/replicas/stop",
        &admin_key,
        "",
    );
    assert_eq!(s, 200);
    within(Duration::from_secs(5), "B follows the stop", || {
        let (_, v) = recs(port_b, "u0");
        (v.get("experiment").is_none(), v)
    });

    // The admin jobs run the real tools against PostgreSQL; a retrained version activated
    // through A reaches B too.
    let wait = |id: u64| -> Value {
        let mut last = Value::Null;
        within(Duration::from_secs(120), "the job ends", || {
            let (_, job) = http(
                admin_a,
                "GET",
                &format!("/v1/admin/jobs/{id}"),
                &admin_key,
                "",
            );
            last = job.clone();
            (job["state"] != "running", job)
        });
        last
    };
    let (s, job) = http(
        admin_a,
        "POST",
        "/v1/admin/jobs/retrain",
        &admin_key,
        r#"{"set": ["models=popularity"]}"#,
    );
    assert_eq!(s, 202, "{job}");
    let job = wait(job["id"].as_u64().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, on_a) = recs(port_a, "u0");
    let retrained = on_a["model_version"].as_str().unwrap().to_owned();
    assert_ne!(retrained, "v2", "{job}");
    within(
        Duration::from_secs(5),
        "B serves the retrained version",
        || {
            let (_, v) = recs(port_b, "u0");
            (v["model_version"] == retrained.as_str(), v)
        },
    );
    let (s, job) = http(
        admin_a,
        "POST",
        "/v1/admin/segments/recompute",
        &admin_key,
        r#"{"k": 2}"#,
    );
    assert_eq!(s, 202, "{job}");
    let job = wait(job["id"].as_u64().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    // Segments computed through A are listed by B (one store).
    let (s, v) = http(admin_b, "GET", "/v1/admin/segments", &admin_key, "");
    assert_eq!(s, 200, "{v}");
    let customers: u64 = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(customers, 20, "{v}");
}

/// A log written to a file (not a terminal) is plain text: no ANSI colour codes, which
/// would otherwise land in the file as escape sequences. And a graceful stop (SIGTERM)
/// stores the impressions of the answers given before it.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes_and_a_stop_flushes_impressions() {
    let shop = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::common::shop());
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--model")
        .arg(&shop.model)
        .arg("--no-first-start")
        .env("DATABASE_URL", &shop.url)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let (key, _) = read_keys(&mut child);
    let start = Instant::now();
    while try_http(port, "GET", "/readyz", "", "").map(|r| r.0).ok() != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, answer) = http(port, "GET", "/v1/recommendations?user_id=u0&k=3", &key, "");
    assert_eq!(s, 200, "{answer}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    // A graceful stop records what was shown before it.
    let id = answer["recommendation_id"].as_str().unwrap();
    let stored = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = marquee_store::Store::open(&shop.url).await.unwrap();
        store.impression(id.parse().unwrap()).await.unwrap()
    });
    assert_eq!(stored.map(|i| i.id.to_string()).as_deref(), Some(id));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("INFO"), "serve logged nothing at info:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "the log file holds escape codes:\n{log:?}"
    );
}
