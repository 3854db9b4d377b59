//! What the API tests share: a small shop with two taste groups (users u0..u19; even users
//! take items a0..a7, odd users b0..b7), an EASE model of it saved as `<dir>/models/shop/v1`
//! (with a `latest` pointer), and a store at `<dir>/s.db` (or a given database) holding the
//! catalog.

use marquee_domain::{EventWeights, Item, ItemId};
use marquee_models::search::Candidate;
use marquee_models::{Artifact, EaseParams, Interactions};
use marquee_store::Store;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Shop {
    /// Keeps the folder alive for the test's duration.
    pub _dir: tempfile::TempDir,
    pub model: PathBuf,
    pub url: String,
    /// The catalog (not every test needs it).
    pub catalog: Vec<Item>,
}

pub async fn shop() -> Shop {
    shop_in(None).await
}

/// [`shop`] with its store in the database `url` names (`None`: a SQLite file in the folder).
pub async fn shop_in(url: Option<&str>) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let users: Vec<String> = (0..20).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|g| (0..8).map(move |i| format!("{g}{i}")))
        .collect();
    let mut rows = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for k in 0..4 {
            let i = (u % 2) * 8 + (u / 2 + k * 3) % 8;
            rows.push((user.as_str(), items[i].as_str(), 1.0, t0.timestamp_millis()));
        }
    }
    let model = dir.path().join("models/shop");
    save_version(&model, "v1", &rows);
    std::fs::write(model.join("latest"), "v1\n").unwrap();
    let url = url.map_or_else(
        || format!("sqlite://{}", dir.path().join("s.db").display()),
        str::to_owned,
    );
    let store = Store::open(&url).await.unwrap();
    let catalog: Vec<Item> = items
        .iter()
        .map(|i| Item::new(ItemId::new(i.as_str()).unwrap(), i.as_str(), &i[..1], t0))
        .collect();
    store.upsert_items(&catalog).await.unwrap();
    Shop {
        _dir: dir,
        model,
        url,
        catalog,
    }
}

/// Fits EASE on `rows` and saves it as version `version` of the model folder `model`.
pub fn save_version(model: &std::path::Path, version: &str, rows: &[(&str, &str, f32, i64)]) {
    let x = Interactions::from_timed_triplets(rows.to_vec());
    let fitted = Candidate::Ease(EaseParams {
        lambda: 5.0,
        ..EaseParams::default()
    })
    .fit(&x)
    .unwrap();
    Artifact::new(
        "shop",
        version,
        fitted,
        x,
        "test",
        serde_json::Value::Null,
        serde_json::to_value(EventWeights::default()).unwrap(),
    )
    .save(&model.join(version))
    .unwrap();
}

// Helpers for tests that run the real `serve` binary (not every test file uses each).

pub struct KillOnDrop(pub std::process::Child);

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

/// A port nothing listens on, for a server a test starts. Taken below the kernel's range
/// of ephemeral ports (32768–60999 on Linux), so that the outgoing connections of other
/// tests running meanwhile cannot take it before the server binds it; spread by process id
/// and a counter so that parallel tests do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7_919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (base.wrapping_add(n.wrapping_mul(127)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Customers and their orders, for retraining and segments through the admin API: one paid
/// order of each shop user's four items; even users consent to marketing.
pub async fn add_customers(url: &str) {
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
}

pub fn read_keys(child: &mut KillOnDrop) -> (String, String) {
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
    (key, admin_key)
}

/// Starts `serve` on `port` and `admin_port` over the store `url` and the model folder `model`,
/// and waits until it answers. Its standard output is piped (keys are printed there).
pub fn spawn_serve(url: &str, model: &std::path::Path, port: u16, admin_port: u16) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
        .arg("--model")
        .arg(model)
        .arg("--no-first-start")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A minimal HTTP/1.1 exchange; returns the status code and the JSON body.
pub fn http(port: u16, method: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http_raw(port, method, path, key, body);
    // Chunked or not, the JSON object is the part between the outer braces.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => "null",
    };
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A minimal HTTP/1.1 exchange; returns the status code, the head and the body as text.
pub fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (u16, String, String) {
    try_http(port, method, path, key, body).unwrap()
}

/// [`http_raw`] that reports a refused, reset or cut-off connection instead of panicking.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let status: u16 = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&*text, ""));
    Ok((status, head.to_owned(), body.to_owned()))
}
