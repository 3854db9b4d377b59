//! Generic interaction files: CSV or Parquet with columns `user` and `item`, and optionally
//! `rating` and `timestamp` (MovieLens' `ratings.csv` reads as is: `userId`, `movieId` are
//! accepted as aliases).
//!
//! A row with a rating becomes a `rating` event; a row without one becomes an event of the
//! kind asked for (default `view`). Timestamps may be unix seconds, milliseconds or ISO 8601;
//! rows without one get the import time. Users and items are created as placeholders when the
//! store does not know them yet (an existing catalog is never overwritten). Event ids are
//! `ix:{user}:{item}:{timestamp or -}:{n}` with `n` counting exact repeats in the file, so a
//! re-import of the same file stores nothing twice.

use crate::{Bundle, Error, Location, Result};
use marquee_datasets::text::{column, csv_reader, line_of, parse_timestamp, required_column};
use marquee_domain::{Actor, Event, EventId, EventKind, Item, ItemId, Timestamp, User, UserId};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const USER: [&str; 5] = ["user", "user_id", "userId", "customer_id", "session"];
const ITEM: [&str; 6] = ["item", "item_id", "itemId", "movieId", "product_id", "aid"];
const RATING: [&str; 3] = ["rating", "stars", "score"];
const TIME: [&str; 4] = ["timestamp", "ts", "time", "ts_ms"];

struct Row {
    user: String,
    item: String,
    rating: Option<f32>,
    timestamp: Option<Timestamp>,
    raw_time: Option<String>,
    location: Location,
}

/// Reads an interactions file; rows without a rating become `default_kind` events.
pub fn read(path: &Path, default_kind: EventKind) -> Result<Bundle> {
    if default_kind == EventKind::Rating || default_kind == EventKind::Dwell {
        return Err(Error::unsupported(
            path,
            "the kind for rows without a rating must be one without a value (view, click, add_to_cart, wishlist, purchase, ...)",
        ));
    }
    let rows = match marquee_datasets::text::extension(path).as_str() {
        "csv" | "tsv" | "txt" => read_csv(path)?,
        "parquet" => read_parquet(path)?,
        other => {
            return Err(Error::unsupported(
                path,
                format!("expected a .csv or .parquet file, not .{other}"),
            ));
        }
    };
    build(path, rows, default_kind)
}

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let delimiter = if marquee_datasets::text::extension(path) == "tsv" {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv_reader(path, delimiter)?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let user = required_column(path, &headers, &USER)?;
    let item = required_column(path, &headers, &ITEM)?;
    let rating = column(&headers, &RATING);
    let time = column(&headers, &TIME);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let at = line_of(&record);
        let rating = match rating.map(|i| record[i].trim()) {
            None | Some("") => None,
            Some(text) => Some(text.parse::<f32>().map_err(|_| {
                Error::malformed(path, at, "rating", format!("{text:?} is not a number"))
            })?),
        };
        let (timestamp, raw_time) = match time.map(|i| record[i].trim()) {
            None | Some("") => (None, None),
            Some(text) => (
                Some(parse_timestamp(text).ok_or_else(|| {
                    Error::malformed(path, at, "timestamp", format!("{text:?} is not a time"))
                })?),
                Some(text.to_owned()),
            ),
        };
        rows.push(Row {
            user: record[user].trim().to_owned(),
            item: record[item].trim().to_owned(),
            rating,
            timestamp,
            raw_time,
            location: at,
        });
    }
    Ok(rows)
}

fn find<'a>(df: &'a DataFrame, names: &[&str]) -> Option<&'a Column> {
    df.columns().iter().find(|c| {
        names
            .iter()
            .any(|n| c.name().as_str().eq_ignore_ascii_case(n))
    })
}

fn read_parquet(path: &Path) -> Result<Vec<Row>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| crate::polars_error(path, &e))?;
    let strings = |names: &[&str]| -> Result<Vec<Option<String>>> {
        let col = find(&df, names).ok_or_else(|| {
            Error::malformed(
                path,
                Location::File,
                names[0],
                format!("no column named {}", names.join(" or ")),
            )
        })?;
        let as_text = if col.dtype().is_float() {
            col.cast(&DataType::Int64)
                .and_then(|c| c.cast(&DataType::String))
        } else {
            col.cast(&DataType::String)
        }
        .map_err(|e| crate::polars_error(path, &e))?;
        Ok(as_text
            .str()
            .map_err(|e| crate::polars_error(path, &e))?
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    };
    let users = strings(&USER)?;
    let items = strings(&ITEM)?;
    let ratings: Vec<Option<f32>> = match find(&df, &RATING) {
        None => vec![None; df.height()],
        Some(c) => c
            .cast(&DataType::Float64)
            .map_err(|e| crate::polars_error(path, &e))?
            .f64()
            .map_err(|e| crate::polars_error(path, &e))?
            .iter()
            .map(|v| v.map(|v| v as f32))
            .collect(),
    };
    let times: Vec<Option<(Timestamp, String)>> = match find(&df, &TIME) {
        None => vec![None; df.height()],
        Some(c) => match c.dtype() {
            DataType::Datetime(_, _) => c
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .map_err(|e| crate::polars_error(path, &e))?
                .datetime()
                .map_err(|e| crate::polars_error(path, &e))?
                .physical()
                .iter()
                .map(|v| {
                    v.and_then(|ms| {
                        chrono::DateTime::from_timestamp_millis(ms).map(|t| (t, ms.to_string()))
                    })
                })
                .collect(),
            _ => c
                .cast(&DataType::String)
                .map_err(|e| crate::polars_error(path, &e))?
                .str()
                .map_err(|e| crate::polars_error(path, &e))?
                .iter()
                .enumerate()
                .map(|(row, v)| match v {
                    None => Ok(None),
                    Some(text) => parse_timestamp(text)
                        .map(|t| Some((t, text.to_owned())))
                        .ok_or_else(|| {
                            Error::malformed(
                                path,
                                Location::Row(row as u64),
                                "timestamp",
                                format!("{text:?} is not a time"),
                            )
                        }),
                })
                .collect::<Result<_>>()?,
        },
    };
    let mut rows = Vec::with_capacity(df.height());
    for (row, (((user, item), rating), time)) in users
        .into_iter()
        .zip(items)
        .zip(ratings)
        .zip(times)
        .enumerate()
    {
        let at = Location::Row(row as u64);
        let (timestamp, raw_time) = time.map_or((None, None), |(t, raw)| (Some(t), Some(raw)));
        rows.push(Row {
            user: user.ok_or_else(|| Error::malformed(path, at, "user", "value is missing"))?,
            item: item.ok_or_else(|| Error::malformed(path, at, "item", "value is missing"))?,
            rating,
            timestamp,
            raw_time,
            location: at,
        });
    }
    Ok(rows)
}

fn build(path: &Path, rows: Vec<Row>, default_kind: EventKind) -> Result<Bundle> {
    let now = chrono::Utc::now();
    let mut repeats: HashMap<(String, String, Option<String>), u32> = HashMap::new();
    let mut users: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut items: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let bad =
            |field: &str, message: String| Error::malformed(path, row.location, field, message);
        let user = UserId::new(row.user.as_str()).map_err(|e| bad("user", e.to_string()))?;
        let item = ItemId::new(row.item.as_str()).map_err(|e| bad("item", e.to_string()))?;
        let key = (row.user.clone(), row.item.clone(), row.raw_time.clone());
        let n = repeats.entry(key).or_default();
        let id = format!(
            "ix:{}:{}:{}:{n}",
            row.user,
            row.item,
            row.raw_time.as_deref().unwrap_or("-")
        );
        *n += 1;
        let timestamp = row.timestamp.unwrap_or(now);
        let event = Event {
            id: EventId::new(id).map_err(|e| bad("user", e.to_string()))?,
            actor: Actor::User(user),
            item: Some(item),
            kind: if row.rating.is_some() {
                EventKind::Rating
            } else {
                default_kind
            },
            value: row.rating,
            timestamp,
            context: None,
        };
        event.validate(now).map_err(|e| {
            let field = match e.field() {
                "value" => "rating",
                other => other,
            };
            bad(field, e.to_string())
        })?;
        let u = users.entry(row.user).or_insert(timestamp);
        *u = (*u).min(timestamp);
        let i = items.entry(row.item).or_insert(timestamp);
        *i = (*i).min(timestamp);
        events.push(event);
    }
    let users = users
        .into_iter()
        .map(|(id, first)| {
            User::new(
                UserId::new(id).unwrap_or_else(|_| unreachable!("checked above")),
                first,
            )
        })
        .collect();
    let items = items
        .into_iter()
        .map(|(id, first)| {
            let item_id =
                ItemId::new(id.as_str()).unwrap_or_else(|_| unreachable!("checked above"));
            Item::new(item_id, id, "unknown", first)
        })
        .collect();
    Ok(Bundle {
        items,
        items_are_placeholders: true,
        users,
        users_are_placeholders: true,
        orders: Vec::new(),
        events,
        notes: Vec::new(),
    })
}
