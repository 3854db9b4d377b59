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
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // Chunked or not, the JSON object is the part between the outer braces.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => "null",
    };
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
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

    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--storefront-addr", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--model")
        .arg(models)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut key = String::new();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        if let Some(k) = line.strip_prefix("storefront key: ") {
            key = k.to_owned();
        } else {
            assert!(line.starts_with("admin key: "), "{line}");
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
