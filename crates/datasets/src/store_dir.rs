//! This project's own exchange format: a folder with one CSV file per table (`items.csv`,
//! `users.csv`, `orders.csv`, `order_lines.csv`, `events.csv`). The generator writes it, the
//! demo store in `notebooks-data/` is one, and `data import store DIR` reads it back exactly.
//! Every column is described in `notebooks-data/README.md`.

use crate::text::{csv_reader, line_of, required_column};
use crate::{Bundle, Error, Location, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use marquee_domain::{
    Actor, Currency, Event, EventId, EventKind, Item, ItemId, Money, Order, OrderId, OrderLine,
    OrderStatus, SessionId, Timestamp, User, UserId,
};
use std::collections::HashMap;
use std::path::Path;

/// The files of a store folder, in the order they must be loaded.
pub const FILES: [&str; 5] = [
    "items.csv",
    "users.csv",
    "orders.csv",
    "order_lines.csv",
    "events.csv",
];

const ITEM_COLUMNS: [&str; 10] = [
    "id",
    "title",
    "category",
    "genres",
    "price_minor",
    "currency",
    "in_stock",
    "hidden",
    "created_at",
    "attributes",
];
const USER_COLUMNS: [&str; 5] = ["id", "created_at", "country", "marketing_consent", "email"];
const ORDER_COLUMNS: [&str; 4] = ["id", "user_id", "created_at", "status"];
const LINE_COLUMNS: [&str; 5] = [
    "order_id",
    "item_id",
    "quantity",
    "unit_price_minor",
    "currency",
];
const EVENT_COLUMNS: [&str; 8] = [
    "event_id",
    "user_id",
    "session_id",
    "item_id",
    "kind",
    "value",
    "timestamp",
    "context",
];

fn time_text(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Streams a bundle into a store folder, a chunk at a time.
pub struct StoreDirWriter {
    items: csv::Writer<std::fs::File>,
    users: csv::Writer<std::fs::File>,
    orders: csv::Writer<std::fs::File>,
    lines: csv::Writer<std::fs::File>,
    events: csv::Writer<std::fs::File>,
    dir: std::path::PathBuf,
}

impl StoreDirWriter {
    /// Creates the folder (if needed) and the five files with their headers.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let open = |name: &str, header: &[&str]| -> Result<csv::Writer<std::fs::File>> {
            let path = dir.join(name);
            let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let mut w = csv::Writer::from_writer(file);
            w.write_record(header).map_err(|e| Error::csv(&path, &e))?;
            Ok(w)
        };
        Ok(Self {
            items: open(FILES[0], &ITEM_COLUMNS)?,
            users: open(FILES[1], &USER_COLUMNS)?,
            orders: open(FILES[2], &ORDER_COLUMNS)?,
            lines: open(FILES[3], &LINE_COLUMNS)?,
            events: open(FILES[4], &EVENT_COLUMNS)?,
            dir: dir.to_owned(),
        })
    }

    fn fail(&self, e: &csv::Error) -> Error {
        Error::csv(&self.dir, e)
    }

    /// Appends a chunk.
    pub fn write(&mut self, bundle: &Bundle) -> Result<()> {
        for it in &bundle.items {
            let record = [
                it.id.to_string(),
                it.title.clone(),
                it.category.clone(),
                it.genres.join("|"),
                it.price.map(|p| p.minor.to_string()).unwrap_or_default(),
                it.price.map(|p| p.currency.to_string()).unwrap_or_default(),
                u8::from(it.in_stock).to_string(),
                u8::from(it.hidden).to_string(),
                time_text(it.created_at),
                it.attributes.to_string(),
            ];
            self.items
                .write_record(&record)
                .map_err(|e| self.fail(&e))?;
        }
        for u in &bundle.users {
            let record = [
                u.id.to_string(),
                time_text(u.created_at),
                u.country.clone().unwrap_or_default(),
                u8::from(u.marketing_consent).to_string(),
                u.email.clone().unwrap_or_default(),
            ];
            self.users
                .write_record(&record)
                .map_err(|e| self.fail(&e))?;
        }
        for o in &bundle.orders {
            let record = [
                o.id.to_string(),
                o.user.as_ref().map(ToString::to_string).unwrap_or_default(),
                time_text(o.created_at),
                o.status.as_str().to_owned(),
            ];
            self.orders
                .write_record(&record)
                .map_err(|e| self.fail(&e))?;
            for l in &o.lines {
                let record = [
                    o.id.to_string(),
                    l.item.to_string(),
                    l.quantity.to_string(),
                    l.unit_price.minor.to_string(),
                    l.unit_price.currency.to_string(),
                ];
                self.lines
                    .write_record(&record)
                    .map_err(|e| self.fail(&e))?;
            }
        }
        for e in &bundle.events {
            let (user, session) = match &e.actor {
                Actor::User(u) => (u.to_string(), String::new()),
                Actor::Session(s) => (String::new(), s.to_string()),
            };
            let record = [
                e.id.to_string(),
                user,
                session,
                e.item.as_ref().map(ToString::to_string).unwrap_or_default(),
                e.kind.as_str().to_owned(),
                e.value.map(|v| v.to_string()).unwrap_or_default(),
                time_text(e.timestamp),
                e.context
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ];
            self.events
                .write_record(&record)
                .map_err(|e| self.fail(&e))?;
        }
        Ok(())
    }

    /// Flushes every file.
    pub fn finish(mut self) -> Result<()> {
        for w in [
            &mut self.items,
            &mut self.users,
            &mut self.orders,
            &mut self.lines,
            &mut self.events,
        ] {
            w.flush().map_err(|e| Error::io(&self.dir, e))?;
            w.get_ref()
                .sync_all()
                .map_err(|e| Error::io(&self.dir, e))?;
        }
        Ok(())
    }
}

/// Writes a whole bundle to a store folder.
pub fn write(dir: &Path, bundle: &Bundle) -> Result<()> {
    let mut w = StoreDirWriter::create(dir)?;
    w.write(bundle)?;
    w.finish()
}

struct Fields<'a> {
    path: &'a Path,
    record: &'a csv::StringRecord,
    at: Location,
}

impl Fields<'_> {
    fn bad(&self, field: &str, message: impl Into<String>) -> Error {
        Error::malformed(self.path, self.at, field, message)
    }
    fn text(&self, i: usize) -> &str {
        self.record.get(i).unwrap_or("").trim()
    }
    fn opt(&self, i: usize) -> Option<String> {
        let t = self.text(i);
        (!t.is_empty()).then(|| t.to_owned())
    }
    fn time(&self, i: usize, field: &str) -> Result<Timestamp> {
        DateTime::parse_from_rfc3339(self.text(i))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                self.bad(
                    field,
                    format!("{:?} is not an RFC 3339 time: {e}", self.text(i)),
                )
            })
    }
    fn flag(&self, i: usize, field: &str) -> Result<bool> {
        match self.text(i) {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            other => Err(self.bad(field, format!("{other:?} is not 0 or 1"))),
        }
    }
    fn int(&self, i: usize, field: &str) -> Result<i64> {
        self.text(i)
            .parse()
            .map_err(|_| self.bad(field, format!("{:?} is not a whole number", self.text(i))))
    }
    fn currency(&self, i: usize, field: &str) -> Result<Currency> {
        Currency::new(self.text(i)).map_err(|e| self.bad(field, e.to_string()))
    }
    fn json(&self, i: usize, field: &str) -> Result<Option<serde_json::Value>> {
        self.opt(i)
            .map(|t| {
                serde_json::from_str(&t).map_err(|e| self.bad(field, format!("not JSON: {e}")))
            })
            .transpose()
    }
}

fn each_record(
    path: &Path,
    columns: &[&str],
    mut f: impl FnMut(&Fields<'_>, &[usize]) -> Result<()>,
) -> Result<()> {
    let mut reader = csv_reader(path, b',')?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let idx = columns
        .iter()
        .map(|c| required_column(path, &headers, &[c]))
        .collect::<Result<Vec<_>>>()?;
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let fields = Fields {
            path,
            record: &record,
            at: line_of(&record),
        };
        f(&fields, &idx)?;
    }
    Ok(())
}

/// Reads a store folder back into a bundle, validating every row.
pub fn read(dir: &Path) -> Result<Bundle> {
    if !dir.is_dir() {
        return Err(Error::unsupported(
            dir,
            "not a folder (expected items.csv, users.csv, orders.csv, order_lines.csv, events.csv)",
        ));
    }
    for name in FILES {
        if !dir.join(name).is_file() {
            return Err(Error::unsupported(
                &dir.join(name),
                "missing from the store folder",
            ));
        }
    }
    let now = Utc::now();
    let mut b = Bundle::default();
    each_record(&dir.join(FILES[0]), &ITEM_COLUMNS, |f, c| {
        let id = ItemId::new(f.text(c[0])).map_err(|e| f.bad("id", e.to_string()))?;
        let mut item = Item::new(id, f.text(c[1]), f.text(c[2]), f.time(c[8], "created_at")?);
        item.genres = f
            .text(c[3])
            .split('|')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        item.price = match (f.opt(c[4]), f.opt(c[5])) {
            (None, None) => None,
            (Some(_), Some(_)) => Some(Money::new(
                f.int(c[4], "price_minor")?,
                f.currency(c[5], "currency")?,
            )),
            _ => return Err(f.bad("currency", "price_minor and currency go together")),
        };
        item.in_stock = f.flag(c[6], "in_stock")?;
        item.hidden = f.flag(c[7], "hidden")?;
        item.attributes = f
            .json(c[9], "attributes")?
            .unwrap_or_else(|| serde_json::json!({}));
        item.validate()
            .map_err(|e| f.bad(e.field(), e.to_string()))?;
        b.items.push(item);
        Ok(())
    })?;
    each_record(&dir.join(FILES[1]), &USER_COLUMNS, |f, c| {
        let id = UserId::new(f.text(c[0])).map_err(|e| f.bad("id", e.to_string()))?;
        let mut user = User::new(id, f.time(c[1], "created_at")?);
        user.country = f.opt(c[2]);
        user.marketing_consent = f.flag(c[3], "marketing_consent")?;
        user.email = f.opt(c[4]);
        user.validate()
            .map_err(|e| f.bad(e.field(), e.to_string()))?;
        b.users.push(user);
        Ok(())
    })?;
    let mut index: HashMap<String, usize> = HashMap::new();
    each_record(&dir.join(FILES[2]), &ORDER_COLUMNS, |f, c| {
        let id = OrderId::new(f.text(c[0])).map_err(|e| f.bad("id", e.to_string()))?;
        if index.insert(id.to_string(), b.orders.len()).is_some() {
            return Err(f.bad("id", format!("order {id} appears twice")));
        }
        b.orders.push(Order {
            id,
            user: f
                .opt(c[1])
                .map(UserId::new)
                .transpose()
                .map_err(|e| f.bad("user_id", e.to_string()))?,
            created_at: f.time(c[2], "created_at")?,
            status: OrderStatus::parse(f.text(c[3])).map_err(|e| f.bad("status", e.to_string()))?,
            lines: Vec::new(),
        });
        Ok(())
    })?;
    each_record(&dir.join(FILES[3]), &LINE_COLUMNS, |f, c| {
        let Some(&i) = index.get(f.text(c[0])) else {
            return Err(f.bad(
                "order_id",
                format!("order {} is not in orders.csv", f.text(c[0])),
            ));
        };
        let item = ItemId::new(f.text(c[1])).map_err(|e| f.bad("item_id", e.to_string()))?;
        let price = Money::new(
            f.int(c[3], "unit_price_minor")?,
            f.currency(c[4], "currency")?,
        );
        let line = OrderLine::from_signed(item, f.int(c[2], "quantity")?, price)
            .map_err(|e| f.bad(e.field(), e.to_string()))?;
        b.orders[i].lines.push(line);
        Ok(())
    })?;
    for o in &b.orders {
        o.validate().map_err(|e| {
            Error::malformed(
                &dir.join(FILES[3]),
                Location::File,
                e.field(),
                format!("order {}: {e}", o.id),
            )
        })?;
    }
    each_record(&dir.join(FILES[4]), &EVENT_COLUMNS, |f, c| {
        let actor = match (f.opt(c[1]), f.opt(c[2])) {
            (Some(u), None) => {
                Actor::User(UserId::new(u).map_err(|e| f.bad("user_id", e.to_string()))?)
            }
            (None, Some(s)) => {
                Actor::Session(SessionId::new(s).map_err(|e| f.bad("session_id", e.to_string()))?)
            }
            _ => {
                return Err(f.bad(
                    "user_id",
                    "exactly one of user_id and session_id must be set",
                ));
            }
        };
        let value = f
            .opt(c[5])
            .map(|v| {
                v.parse::<f32>()
                    .map_err(|_| f.bad("value", format!("{v:?} is not a number")))
            })
            .transpose()?;
        let event = Event {
            id: EventId::new(f.text(c[0])).map_err(|e| f.bad("event_id", e.to_string()))?,
            actor,
            item: f
                .opt(c[3])
                .map(ItemId::new)
                .transpose()
                .map_err(|e| f.bad("item_id", e.to_string()))?,
            kind: EventKind::parse(f.text(c[4])).map_err(|e| f.bad("kind", e.to_string()))?,
            value,
            timestamp: f.time(c[6], "timestamp")?,
            context: f.json(c[7], "context")?,
        };
        event
            .validate(now)
            .map_err(|e| f.bad(e.field(), e.to_string()))?;
        b.events.push(event);
        Ok(())
    })?;
    Ok(b)
}
