//! OTTO sessions (the RecSys 2022 data set of the German shop OTTO): anonymous sessions of
//! clicks, carts and orders.
//!
//! Reads `sessions.jsonl` (one `{"session":N,"events":[{"aid":..,"ts":<ms>,"type":..}]}` a
//! line) or the flattened `events.csv` (`session,aid,ts_ms,type`). `clicks` become `click`,
//! `carts` `add_to_cart`, `orders` `purchase` events of the anonymous session; articles become
//! placeholder items (`Article <aid>`, category `otto`). Event ids are `otto:{session}:{aid}:
//! {ts}:{type}` plus a counter for exact repeats, so a re-import stores nothing twice.

use crate::text::{csv_reader, line_of, required_column, unix_to_ts};
use crate::{Bundle, Error, Location, Result};
use marquee_domain::{Actor, Event, EventId, EventKind, Item, ItemId, SessionId, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

#[derive(serde::Deserialize)]
struct SessionLine {
    session: u64,
    events: Vec<RawEvent>,
}

#[derive(serde::Deserialize)]
struct RawEvent {
    aid: u64,
    ts: i64,
    #[serde(rename = "type")]
    kind: String,
}

fn kind_of(name: &str) -> Option<EventKind> {
    match name {
        "clicks" => Some(EventKind::Click),
        "carts" => Some(EventKind::AddToCart),
        "orders" => Some(EventKind::Purchase),
        _ => None,
    }
}

/// Reads OTTO sessions from `.jsonl` or `.csv`.
pub fn read(path: &Path) -> Result<Bundle> {
    let mut rows: Vec<(u64, u64, i64, String, Location)> = Vec::new();
    match crate::text::extension(path).as_str() {
        "jsonl" | "json" | "ndjson" => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                let at = Location::Line(n as u64 + 1);
                let line = line.map_err(|e| Error::malformed(path, at, "record", e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let session: SessionLine = serde_json::from_str(&line)
                    .map_err(|e| Error::malformed(path, at, json_field(&e), e.to_string()))?;
                for e in session.events {
                    rows.push((session.session, e.aid, e.ts, e.kind, at));
                }
            }
        }
        "csv" => {
            let mut reader = csv_reader(path, b',')?;
            let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
            let session = required_column(path, &headers, &["session"])?;
            let aid = required_column(path, &headers, &["aid"])?;
            let ts = required_column(path, &headers, &["ts_ms", "ts"])?;
            let kind = required_column(path, &headers, &["type"])?;
            for record in reader.records() {
                let record = record.map_err(|e| Error::csv(path, &e))?;
                let at = line_of(&record);
                let int = |i: usize, field: &str| -> Result<i64> {
                    record[i].trim().parse::<i64>().map_err(|_| {
                        Error::malformed(
                            path,
                            at,
                            field,
                            format!("{:?} is not a whole number", &record[i]),
                        )
                    })
                };
                let (s, a, t) = (
                    int(session, "session")?,
                    int(aid, "aid")?,
                    int(ts, "ts_ms")?,
                );
                if s < 0 || a < 0 {
                    return Err(Error::malformed(
                        path,
                        at,
                        "session",
                        "ids must not be negative",
                    ));
                }
                rows.push((s as u64, a as u64, t, record[kind].trim().to_owned(), at));
            }
        }
        other => {
            return Err(Error::unsupported(
                path,
                format!("expected a .jsonl or .csv file, not .{other}"),
            ));
        }
    }
    build(path, rows)
}

fn json_field(e: &serde_json::Error) -> &'static str {
    let text = e.to_string();
    ["session", "events", "aid", "ts", "type"]
        .into_iter()
        .find(|f| text.contains(&format!("`{f}`")))
        .unwrap_or("record")
}

fn build(path: &Path, rows: Vec<(u64, u64, i64, String, Location)>) -> Result<Bundle> {
    let now = chrono::Utc::now();
    let mut first_seen: BTreeMap<u64, Timestamp> = BTreeMap::new();
    let mut repeats: HashMap<String, u32> = HashMap::new();
    let mut events = Vec::with_capacity(rows.len());
    for (session, aid, ts, kind_name, at) in rows {
        let bad = |field: &str, message: String| Error::malformed(path, at, field, message);
        let kind = kind_of(&kind_name).ok_or_else(|| {
            bad(
                "type",
                format!("{kind_name:?} is not one of clicks, carts, orders"),
            )
        })?;
        // OTTO timestamps are milliseconds; tiny values would be seconds of 1970.
        let timestamp = chrono::DateTime::from_timestamp_millis(ts)
            .filter(|_| ts >= 100_000_000_000)
            .or_else(|| unix_to_ts(ts).filter(|_| ts > 0))
            .ok_or_else(|| bad("ts", format!("{ts} is not a time in milliseconds")))?;
        let base = format!("otto:{session}:{aid}:{ts}:{kind_name}");
        let n = repeats.entry(base.clone()).or_default();
        let id = if *n == 0 { base } else { format!("{base}:{n}") };
        *n += 1;
        let event = Event {
            id: EventId::new(id).map_err(|e| bad("session", e.to_string()))?,
            actor: Actor::Session(
                SessionId::new(session.to_string()).map_err(|e| bad("session", e.to_string()))?,
            ),
            item: Some(ItemId::new(aid.to_string()).map_err(|e| bad("aid", e.to_string()))?),
            kind,
            value: None,
            timestamp,
            context: None,
        };
        event.validate(now).map_err(|e| bad("ts", e.to_string()))?;
        let first = first_seen.entry(aid).or_insert(timestamp);
        *first = (*first).min(timestamp);
        events.push(event);
    }
    let items = first_seen
        .into_iter()
        .map(|(aid, first)| {
            Item::new(
                ItemId::new(aid.to_string())
                    .unwrap_or_else(|_| unreachable!("digits are a valid id")),
                format!("Article {aid}"),
                "otto",
                first,
            )
        })
        .collect();
    Ok(Bundle {
        items,
        items_are_placeholders: true,
        users: Vec::new(),
        users_are_placeholders: true,
        orders: Vec::new(),
        events,
        notes: Vec::new(),
    })
}
