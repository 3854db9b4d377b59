//! The real `serve` binary on a free port: keys printed on first start, health, events posted
//! for a visitor that change their next recommendations, and a clean stop on SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A minimal HTTP/1.1 exchange; returns the status code and the JSON body.
fn http(port: u16, method: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http_raw(port, method, path, key, body);
    // Chunked or not, the JSON object is the part between the outer braces.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => "null",
    };
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A minimal HTTP/1.1 exchange; returns the status code, the head and the body as text.
fn http_raw(port: u16, method: &str, path: &str, key: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&*text, ""));
    (status, head.to_owned(), body.to_owned())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_answers_and_learns_from_events() {
    let shop = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::shop());
    let (models, url) = (&shop.model, &shop.url);
    // Customers and their orders, for retraining and segments through the admin API: one
    // paid order of each shop user's four items; even users consent to marketing.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use marquee_domain::{Currency, ItemId, Money, Order, OrderId, OrderLine, OrderStatus};
        use marquee_domain::{User, UserId};
        let store = marquee_store::Store::open(url).await.unwrap();
        let now = chrono::Utc::now();
        let mut users = Vec::new();
        let mut orders = Vec::new();
        for u in 0..20usize {
            let id = UserId::new(format!("u{u}")).unwrap();
            let mut user = User::new(id.clone(), now - chrono::TimeDelta::days(90));
            user.marketing_consent = u % 2 == 0;
            users.push(user);
            let group = if u % 2 == 0 { "a" } else { "b" };
            orders.push(Order {
                id: OrderId::new(format!("o{u}")).unwrap(),
                user: Some(id),
                created_at: now - chrono::TimeDelta::days(1 + u as i64 * 3),
                status: OrderStatus::Paid,
                lines: (0..4)
                    .map(|k| OrderLine {
                        item: ItemId::new(format!("{group}{}", (u / 2 + k * 3) % 8)).unwrap(),
                        quantity: 1,
                        unit_price: Money::new(500 + u as i64, Currency::new("EUR").unwrap()),
                    })
                    .collect(),
            });
        }
        store.upsert_users(&users).await.unwrap();
        store.put_orders(&orders).await.unwrap();
    });
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
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut key = String::new();
    let mut admin_key = String::new();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        if let Some(k) = line.strip_prefix("storefront key: ") {
            key = k.to_owned();
        } else {
            admin_key = line.strip_prefix("admin key: ").expect(&line).to_owned();
        }
    }
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
