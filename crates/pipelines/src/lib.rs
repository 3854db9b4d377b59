//! Feature pipelines for training only (never on the request path): Polars lazy frames for
//! the statistics and KPIs, plain Rust over interned ids where a frame would only be turned
//! back into indices (the interaction matrix, co-purchase counts).
//!
//! [`EventWeights`] is the one definition of how much each behaviour counts; training uses it
//! here and the serving engine uses the same values (they are written into every model's
//! manifest) when it folds new events into a user's vector.
//!
//! [`interactions`] turns events and order lines into the users × items confidence matrix:
//! each event weighs by its kind (a rating by its stars), each line of a placed, paid or
//! shipped order adds a purchase, each line of a cancelled or refunded order subtracts one,
//! everything decays exponentially with age when a half-life is set, weights are summed per
//! (user, item), and pairs that end at zero or below are dropped. Anonymous sessions count as
//! users named `session:<id>`.
//!
//! Threading: Polars runs a plan on its own thread pool; the functions block until done.

pub mod kpis;
mod rfm;
mod stats;

pub use rfm::{Rfm, default_reference, quintiles, rfm};
pub use stats::{co_purchase, item_stats};

pub use marquee_domain::EventWeights;
use marquee_domain::{Actor, Event, Order, Timestamp};
use marquee_models::{IdMap, Interactions};
use polars::prelude::*;
use rayon::slice::ParallelSliceMut;
use std::borrow::Cow;

/// What went wrong in a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pipeline failed: {0}")]
    Polars(#[from] PolarsError),
    #[error("invalid setting {name}: {message}")]
    Setting { name: &'static str, message: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of [`interactions`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InteractionSettings {
    pub weights: EventWeights,
    /// Age at which a behaviour counts half; `None` (or 0) for no decay.
    pub half_life_days: Option<f64>,
    /// Count order lines (true) or only events (false).
    pub use_orders: bool,
}

impl Default for InteractionSettings {
    fn default() -> Self {
        Self {
            weights: EventWeights::default(),
            half_life_days: None,
            use_orders: true,
        }
    }
}

/// The number of distinct orders in an `order` column among the rows whose `valid` column is
/// true (orders not cancelled or refunded), as `UInt32` named `alias`.
fn distinct_valid_orders(alias: &str) -> Expr {
    col("order")
        .filter(col("valid"))
        .n_unique()
        .cast(DataType::UInt32)
        .alias(alias)
}

fn actor_key(actor: &Actor) -> String {
    actor.interaction_key()
}

/// [`Actor::interaction_key`], borrowed for a user.
fn actor_name(actor: &Actor) -> Cow<'_, str> {
    match actor {
        Actor::User(u) => Cow::Borrowed(u.as_str()),
        session => Cow::Owned(session.interaction_key()),
    }
}

/// Builds the weighted users × items matrix from events and orders. Time decay is measured
/// from `reference` (default: the newest event or order).
///
/// Computes what [`weighted_frame`] computes, with the same user and item numbering (users
/// in byte order of their keys, items in order of first appearance in the frame's rows), in
/// plain Rust over interned ids: the frame's string group-by and sort took most of `train`'s
/// feature time, and the matrix needs only indices.
pub fn interactions(
    events: &[Event],
    orders: &[Order],
    settings: &InteractionSettings,
    reference: Option<Timestamp>,
) -> Result<Interactions> {
    check_half_life(settings)?;
    let w = &settings.weights;
    // (user, item, weight, time in Unix ms), numbered in order of first sight for now.
    let (mut users, mut items, mut rows) = intern_events(events, w);
    if settings.use_orders {
        for o in orders {
            let Some(u) = &o.user else { continue };
            let sign = if o.status.is_reversal() { -1.0 } else { 1.0 };
            let user = users.intern(Cow::Borrowed(u.as_str()));
            for line in &o.lines {
                rows.push((
                    user,
                    items.intern(Cow::Borrowed(line.item.as_str())),
                    f64::from(sign * w.purchase),
                    o.created_at.timestamp_millis(),
                ));
            }
        }
    }
    if let Some(days) = settings.half_life_days.filter(|&h| h > 0.0) {
        let newest = rows.iter().map(|r| r.3).max().unwrap_or(0);
        let reference = reference.map_or(newest, |r| r.timestamp_millis());
        let half_life_ms = days * 86_400_000.0;
        for r in &mut rows {
            r.2 *= 0.5f64.powf((reference - r.3) as f64 / half_life_ms);
        }
    }
    // Sum per pair in (user, item) byte order, as the frame's group-by and sort do.
    let (user_rank, item_rank) = (users.ranks(), items.ranks());
    for r in &mut rows {
        r.0 = user_rank[r.0 as usize];
        r.1 = item_rank[r.1 as usize];
    }
    rows.par_sort_unstable_by_key(|r| (r.0, r.1));
    let mut pairs: Vec<(u32, u32, f64, i64)> = Vec::with_capacity(rows.len());
    for (u, i, weight, t) in rows {
        match pairs.last_mut() {
            Some(last) if last.0 == u && last.1 == i => {
                last.2 += weight;
                last.3 = last.3.max(t);
            }
            _ => pairs.push((u, i, weight, t)),
        }
    }
    pairs.retain(|p| p.2 > 0.0);
    // Final numbering: users in byte order, items in order of first appearance, each
    // looked up by rank in a table (no hashing per pair).
    let (user_names, item_names) = (users.sorted(), items.sorted());
    let number = |table: &mut Vec<u32>, ids: &mut Vec<String>, rank: u32, names: &[&str]| {
        let n = &mut table[rank as usize];
        if *n == u32::MAX {
            *n = ids.len() as u32;
            ids.push(names[rank as usize].to_owned());
        }
        *n
    };
    let (mut user_table, mut item_table) = (
        vec![u32::MAX; user_names.len()],
        vec![u32::MAX; item_names.len()],
    );
    let (mut user_ids, mut item_ids) = (Vec::new(), Vec::new());
    let mut coo: Vec<(u32, u32, f32, i64)> = pairs
        .into_iter()
        .map(|(u, i, weight, t)| {
            (
                number(&mut user_table, &mut user_ids, u, &user_names),
                number(&mut item_table, &mut item_ids, i, &item_names),
                weight as f32,
                t,
            )
        })
        .collect();
    // Each user's entries (consecutive) in the new item order, so the matrix is built from
    // sorted entries.
    for row in coo.chunk_by_mut(|a, b| a.0 == b.0) {
        row.sort_unstable_by_key(|e| e.1);
    }
    Ok(Interactions::from_timed_coo(
        IdMap::from_ids(user_ids),
        IdMap::from_ids(item_ids),
        coo,
    ))
}

/// One interaction row: user, item, weight, time in Unix ms.
type Row = (u32, u32, f64, i64);

/// The rows of the events that name an item, with users and items numbered in order of
/// first sight. A million events are cut into one piece per core, interned side by side,
/// and the pieces' names then numbered in piece order, which is the order of first sight
/// overall.
fn intern_events<'a>(events: &'a [Event], w: &EventWeights) -> (Names<'a>, Names<'a>, Vec<Row>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    intern_in_pieces(events, w, if events.len() < 200_000 { 1 } else { threads })
}

/// [`intern_events`] with the events cut into `pieces` pieces (fewer when there are fewer
/// events), each interned on a thread of its own.
fn intern_in_pieces<'a>(
    events: &'a [Event],
    w: &EventWeights,
    pieces: usize,
) -> (Names<'a>, Names<'a>, Vec<Row>) {
    let piece = |events: &'a [Event]| {
        let (mut users, mut items) = (Names::default(), Names::default());
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let Some(it) = &e.item else { continue };
            rows.push((
                users.intern(actor_name(&e.actor)),
                items.intern(Cow::Borrowed(it.as_str())),
                f64::from(w.weight(e.kind, e.value)),
                e.timestamp.timestamp_millis(),
            ));
        }
        (users, items, rows)
    };
    if pieces < 2 || events.len() < 2 {
        return piece(events);
    }
    let mut done: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .chunks(events.len().div_ceil(pieces))
            .map(|chunk| scope.spawn(move || piece(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let (mut users, mut items, mut rows) = done.remove(0);
    for (piece_users, piece_items, piece_rows) in done {
        let user_of: Vec<u32> = piece_users
            .names
            .into_iter()
            .map(|n| users.intern(n))
            .collect();
        let item_of: Vec<u32> = piece_items
            .names
            .into_iter()
            .map(|n| items.intern(n))
            .collect();
        rows.extend(
            piece_rows
                .into_iter()
                .map(|(u, i, weight, t)| (user_of[u as usize], item_of[i as usize], weight, t)),
        );
    }
    (users, items, rows)
}

/// Names numbered in order of first sight, borrowed where the caller's data lives long
/// enough.
#[derive(Default)]
pub(crate) struct Names<'a> {
    /// foldhash, not SipHash: the ids are the operator's own data, not an attacker's, and
    /// SipHash stood out in a profile of `train` interning a million events' ids.
    index: foldhash::HashMap<Cow<'a, str>, u32>,
    names: Vec<Cow<'a, str>>,
}

impl<'a> Names<'a> {
    pub(crate) fn intern(&mut self, name: Cow<'a, str>) -> u32 {
        if let Some(&n) = self.index.get(name.as_ref()) {
            return n;
        }
        let n = self.names.len() as u32;
        self.index.insert(name.clone(), n);
        self.names.push(name);
        n
    }

    /// The names in byte order.
    pub(crate) fn sorted(&self) -> Vec<&str> {
        let mut sorted: Vec<&str> = self.names.iter().map(|n| n.as_ref()).collect();
        sorted.sort_unstable();
        sorted
    }

    /// Each name's position in byte order.
    pub(crate) fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0; order.len()];
        for (r, &n) in order.iter().enumerate() {
            rank[n as usize] = r as u32;
        }
        rank
    }
}

fn check_half_life(settings: &InteractionSettings) -> Result<()> {
    match settings.half_life_days {
        Some(h) if h.is_nan() || h < 0.0 => Err(Error::Setting {
            name: "half_life_days",
            message: format!("{h} is not zero or positive"),
        }),
        _ => Ok(()),
    }
}

/// The (user, item, weight, last_ts) frame behind [`interactions`], sorted by user and item;
/// `last_ts` is the newest behaviour's time in Unix milliseconds.
pub fn weighted_frame(
    events: &[Event],
    orders: &[Order],
    settings: &InteractionSettings,
    reference: Option<Timestamp>,
) -> Result<DataFrame> {
    check_half_life(settings)?;
    let w = &settings.weights;
    let mut user = Vec::with_capacity(events.len());
    let mut item = Vec::with_capacity(events.len());
    let mut base = Vec::with_capacity(events.len());
    let mut ts = Vec::with_capacity(events.len());
    for e in events {
        let Some(it) = &e.item else { continue };
        user.push(actor_key(&e.actor));
        item.push(it.as_str().to_owned());
        base.push(w.weight(e.kind, e.value));
        ts.push(e.timestamp.timestamp_millis());
    }
    if settings.use_orders {
        for o in orders {
            let Some(u) = &o.user else { continue };
            let sign = if o.status.is_reversal() { -1.0 } else { 1.0 };
            for line in &o.lines {
                user.push(u.as_str().to_owned());
                item.push(line.item.as_str().to_owned());
                base.push(sign * w.purchase);
                ts.push(o.created_at.timestamp_millis());
            }
        }
    }
    let newest = ts.iter().copied().max().unwrap_or(0);
    let reference = reference.map_or(newest, |r| r.timestamp_millis());
    let df = df!(
        "user" => user,
        "item" => item,
        "base" => base,
        "ts" => ts,
    )?;
    let decayed = match settings.half_life_days.filter(|&h| h > 0.0) {
        Some(days) => {
            let half_life_ms = days * 86_400_000.0;
            col("base")
                * lit(0.5f64)
                    .pow((lit(reference) - col("ts")).cast(DataType::Float64) / lit(half_life_ms))
        }
        None => col("base").cast(DataType::Float64),
    };
    let out = df
        .lazy()
        .with_column(decayed.alias("weight"))
        .group_by([col("user"), col("item")])
        .agg([col("weight").sum(), col("ts").max().alias("last_ts")])
        .filter(col("weight").gt(lit(0.0)))
        .sort(["user", "item"], SortMultipleOptions::default())
        .collect()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};
    use marquee_domain::{
        Currency, EventId, EventKind, ItemId, Money, OrderId, OrderLine, OrderStatus, SessionId,
        UserId,
    };

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap()
    }

    fn event(user: &str, item: &str, kind: EventKind, value: Option<f32>, days_ago: i64) -> Event {
        Event {
            id: EventId::new(format!("{user}-{item}-{kind:?}-{days_ago}")).unwrap(),
            actor: Actor::User(UserId::new(user).unwrap()),
            item: Some(ItemId::new(item).unwrap()),
            kind,
            value,
            timestamp: now() - TimeDelta::days(days_ago),
            context: None,
        }
    }

    fn order(user: &str, item: &str, status: OrderStatus) -> Order {
        Order {
            id: OrderId::new(format!("{user}-{item}-{status:?}")).unwrap(),
            user: Some(UserId::new(user).unwrap()),
            created_at: now(),
            status,
            lines: vec![OrderLine {
                item: ItemId::new(item).unwrap(),
                quantity: 2,
                unit_price: Money::new(100, Currency::new("EUR").unwrap()),
            }],
        }
    }

    /// The plain-Rust sums that `serve` fits its first model on equal this pipeline's
    /// interactions without decay, on random events (sessions, ratings, dwell) and orders
    /// (cancellations and refunds).
    #[test]
    fn plain_pair_weights_equal_the_pipeline() {
        let (events, orders) = random_behaviour(7, 2_000);
        let settings = InteractionSettings::default();
        let x = interactions(&events, &orders, &settings, None).unwrap();
        let mut plain = marquee_domain::PairWeights::new(settings.weights);
        events.iter().for_each(|e| plain.add_event(e));
        orders.iter().for_each(|o| plain.add_order(o));
        let y = Interactions::from_timed_triplets(
            plain
                .into_rows()
                .iter()
                .map(|(u, i, w, t)| (u.as_str(), i.as_str(), *w, *t)),
        );
        assert!(x.nnz() > 500, "{}", x.nnz());
        let key = |m: &Interactions| -> Vec<(String, String, i64, i64)> {
            let mut v: Vec<_> = m
                .entries()
                .map(|(u, i, w, t)| {
                    (
                        m.users.id(u as usize).to_owned(),
                        m.items.id(i as usize).to_owned(),
                        (f64::from(w) * 1e4).round() as i64,
                        t,
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(key(&x), key(&y));
    }

    /// Random events (sessions, ratings, dwell) over 60 days and orders (cancellations and
    /// refunds).
    fn random_behaviour(seed: u64, n: usize) -> (Vec<Event>, Vec<Order>) {
        let mut rng = marquee_domain::rng::SeededRng::new(seed);
        let kinds = EventKind::ALL;
        let mut events = Vec::new();
        let mut orders = Vec::new();
        for k in 0..n {
            let user = format!("u{}", rng.index(40));
            let item = format!("i{}", rng.index(30));
            let kind = kinds[rng.index(kinds.len())];
            let value = match kind {
                EventKind::Rating => Some(1.0 + rng.index(9) as f32 / 2.0),
                EventKind::Dwell => Some(rng.index(600) as f32),
                _ => None,
            };
            let mut e = event(&user, &item, kind, value, rng.index(60) as i64);
            e.id = EventId::new(format!("e{k}")).unwrap();
            if rng.chance(0.1) {
                e.actor = Actor::Session(SessionId::new(format!("s{}", rng.index(5))).unwrap());
            }
            events.push(e);
            if rng.chance(0.2) {
                let status = [
                    OrderStatus::Paid,
                    OrderStatus::Cancelled,
                    OrderStatus::Refunded,
                ][rng.index(3)];
                let mut o = order(&user, &item, status);
                o.id = OrderId::new(format!("o{k}")).unwrap();
                orders.push(o);
            }
        }
        (events, orders)
    }

    /// The matrix equals the Polars frame's, numbering included (models are seeded by index,
    /// so a different numbering would change what they compute), with and without decay.
    #[test]
    fn the_matrix_equals_the_polars_frame_numbering_included() {
        for (seed, half_life) in [(3, None), (4, Some(7.0)), (5, Some(0.0))] {
            let (events, orders) = random_behaviour(seed, 3_000);
            let settings = InteractionSettings {
                half_life_days: half_life,
                ..InteractionSettings::default()
            };
            let x = interactions(&events, &orders, &settings, None).unwrap();
            let frame = weighted_frame(&events, &orders, &settings, None).unwrap();
            let users = frame.column("user").unwrap().str().unwrap().clone();
            let items = frame.column("item").unwrap().str().unwrap().clone();
            let weights = frame.column("weight").unwrap();
            let weights = weights.cast(&DataType::Float32).unwrap();
            let weights = weights.f32().unwrap().clone();
            let times = frame.column("last_ts").unwrap().i64().unwrap().clone();
            let y = Interactions::from_timed_triplets(
                users
                    .iter()
                    .zip(items.iter())
                    .zip(weights.iter())
                    .zip(times.iter())
                    .map(|(((u, i), w), t)| (u.unwrap(), i.unwrap(), w.unwrap(), t.unwrap())),
            );
            assert!(x.nnz() > 500, "{}", x.nnz());
            assert_eq!(x.users.ids(), y.users.ids());
            assert_eq!(x.items.ids(), y.items.ids());
            let (a, b): (Vec<_>, Vec<_>) = (x.entries().collect(), y.entries().collect());
            assert_eq!(a.len(), b.len());
            for ((u, i, w, t), (u2, i2, w2, t2)) in a.into_iter().zip(b) {
                assert_eq!((u, i, t), (u2, i2, t2));
                assert!((w - w2).abs() <= 1e-5 * w2.abs().max(1.0), "{w} != {w2}");
            }
        }
    }

    /// Events interned in pieces on several threads get the numbers and rows that interning
    /// them in one go gives (the pieces' names are numbered in piece order).
    #[test]
    fn interning_in_pieces_equals_interning_at_once() {
        let (events, _) = random_behaviour(8, 3_000);
        let w = EventWeights::default();
        let names = |n: &Names<'_>| n.names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (users, items, rows) = intern_in_pieces(&events, &w, 1);
        assert!(users.names.len() > 10 && items.names.len() > 10);
        for pieces in [2, 3, 7] {
            let (u, i, r) = intern_in_pieces(&events, &w, pieces);
            assert_eq!(names(&u), names(&users), "{pieces} pieces");
            assert_eq!(names(&i), names(&items), "{pieces} pieces");
            assert_eq!(r, rows, "{pieces} pieces");
        }
    }

    #[test]
    fn weights_sum_per_pair_and_reversals_subtract() {
        let events = vec![
            event("u1", "a", EventKind::View, None, 0),
            event("u1", "a", EventKind::AddToCart, None, 0),
            event("u1", "b", EventKind::Rating, Some(4.5), 0),
            event("u2", "a", EventKind::View, None, 0),
        ];
        let orders = vec![
            order("u1", "c", OrderStatus::Paid),
            order("u2", "a", OrderStatus::Refunded),
        ];
        let m = interactions(
            &events,
            &orders,
            &InteractionSettings::default(),
            Some(now()),
        )
        .unwrap();
        let u1 = m.users.get("u1").unwrap() as usize;
        let got: Vec<(&str, f32)> = m.row(u1).iter().map(|(i, w)| (m.items.id(i), w)).collect();
        assert_eq!(got, [("a", 4.0), ("b", 4.5), ("c", 5.0)]);
        // u2 viewed a (1) and had it refunded (−5): the pair, u2's only one, is dropped.
        assert!(m.users.get("u2").is_none());
        assert_eq!(m.nnz(), 3);
    }

    #[test]
    fn half_life_halves_the_weight_and_sessions_are_rows() {
        let mut events = vec![
            event("u1", "a", EventKind::Purchase, None, 10),
            event("u1", "b", EventKind::Purchase, None, 0),
        ];
        let mut anon = event("x", "a", EventKind::View, None, 0);
        anon.actor = Actor::Session(SessionId::new("s9").unwrap());
        events.push(anon);
        let settings = InteractionSettings {
            half_life_days: Some(10.0),
            ..InteractionSettings::default()
        };
        let m = interactions(&events, &[], &settings, Some(now())).unwrap();
        let u1 = m.users.get("u1").unwrap() as usize;
        let got: Vec<f32> = m.row(u1).iter().map(|(_, w)| w).collect();
        assert!(
            (got[0] - 2.5).abs() < 1e-5 && (got[1] - 5.0).abs() < 1e-5,
            "{got:?}"
        );
        assert!(m.users.get("session:s9").is_some());
        let bad = InteractionSettings {
            half_life_days: Some(-1.0),
            ..InteractionSettings::default()
        };
        assert!(interactions(&events, &[], &bad, None).is_err());
    }

    #[test]
    fn weights_by_kind() {
        let w = EventWeights::default();
        assert_eq!(w.weight(EventKind::Rating, Some(4.0)), 4.0);
        assert_eq!(w.weight(EventKind::Dwell, Some(60.0)), 0.5);
        assert_eq!(w.weight(EventKind::Dwell, Some(36_000.0)), 3.0);
        assert_eq!(w.weight(EventKind::Purchase, None), 5.0);
    }
}
