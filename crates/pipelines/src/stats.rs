//! Item statistics for reports and non-personalised rows.
//!
//! [`item_stats`]: per item, the distinct users who touched it (events or order lines), the
//! number of events, net units sold (cancelled and refunded lines subtract), and recent
//! growth: `recent_users` are users whose latest touch falls in the last `window_days` before
//! the reference time, `previous_users` those in the window before that, and
//! `trending = recent × (recent + 1) / (previous + 1)`, the same definition as the `trending`
//! model. Sorted by trending, then users, descending.
//!
//! [`co_purchase`]: pairs of items bought in the same (not cancelled or refunded) order, with
//! the number of such orders.

use crate::{Names, Result, actor_name};
use marquee_domain::{Event, Order, Timestamp};
use polars::prelude::*;
use std::borrow::Cow;

/// Builds the per-item statistics frame (columns `item, users, events, net_units,
/// recent_users, previous_users, trending`).
pub fn item_stats(
    events: &[Event],
    orders: &[Order],
    reference: Option<Timestamp>,
    window_days: f64,
) -> Result<DataFrame> {
    if window_days.is_nan() || window_days <= 0.0 {
        return Err(crate::Error::Setting {
            name: "window_days",
            message: format!("{window_days} is not positive"),
        });
    }
    // Users and items go into the frame as numbers: grouping by number is several times
    // faster than by string. Items are numbered in byte order of their ids, so sorting by
    // number sorts by id; the ids replace the numbers at the end.
    let mut users = Names::default();
    let mut items = Names::default();
    let mut user = Vec::new();
    let mut item = Vec::new();
    let mut ts = Vec::new();
    let mut is_event = Vec::new();
    let mut units = Vec::new();
    for e in events {
        let Some(it) = &e.item else { continue };
        user.push(users.intern(actor_name(&e.actor)));
        item.push(items.intern(Cow::Borrowed(it.as_str())));
        ts.push(e.timestamp.timestamp_millis());
        is_event.push(1u32);
        units.push(0i64);
    }
    for o in orders {
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        let buyer = users.intern(o.user.as_ref().map_or_else(
            || Cow::Owned(format!("order:{}", o.id.as_str())),
            |u| Cow::Borrowed(u.as_str()),
        ));
        for line in &o.lines {
            user.push(buyer);
            item.push(items.intern(Cow::Borrowed(line.item.as_str())));
            ts.push(o.created_at.timestamp_millis());
            is_event.push(0);
            units.push(sign * i64::from(line.quantity));
        }
    }
    let rank = items.ranks();
    item.iter_mut().for_each(|i| *i = rank[*i as usize]);
    let newest = ts.iter().copied().max().unwrap_or(0);
    let reference = reference.map_or(newest, |r| r.timestamp_millis());
    let window = (window_days * 86_400_000.0) as i64;
    let frame = df!(
        "user" => user,
        "item" => item,
        "ts" => ts,
        "is_event" => is_event,
        "units" => units,
    )?
    .lazy();
    let per_item = frame.clone().group_by([col("item")]).agg([
        col("user").n_unique().alias("users"),
        col("is_event").sum().alias("events"),
        col("units").sum().alias("net_units"),
    ]);
    let age = lit(reference) - col("last_ts");
    let growth = frame
        .group_by([col("user"), col("item")])
        .agg([col("ts").max().alias("last_ts")])
        .group_by([col("item")])
        .agg([
            age.clone()
                .lt(lit(window))
                .cast(DataType::UInt32)
                .sum()
                .alias("recent_users"),
            (age.clone().gt_eq(lit(window)).and(age.lt(lit(2 * window))))
                .cast(DataType::UInt32)
                .sum()
                .alias("previous_users"),
        ]);
    let recent = col("recent_users").cast(DataType::Float64);
    let out = per_item
        .join(
            growth,
            [col("item")],
            [col("item")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column(
            (recent.clone() * (recent + lit(1.0))
                / (col("previous_users").cast(DataType::Float64) + lit(1.0)))
            .alias("trending"),
        )
        .sort(
            ["trending", "users", "item"],
            SortMultipleOptions::default().with_order_descending_multi([true, true, false]),
        )
        .collect()?;
    named(out, "item", &items.sorted())
}

/// `frame` with the numbers in column `name` replaced by `names[number]`.
fn named(mut frame: DataFrame, name: &str, names: &[&str]) -> Result<DataFrame> {
    let ids: StringChunked = frame
        .column(name)?
        .u32()?
        .iter()
        .map(|n| n.map(|n| names[n as usize]))
        .collect();
    frame.with_column(ids.with_name(name.into()).into_column())?;
    Ok(frame)
}

/// Pairs of items bought together (columns `item_a, item_b, orders`, `item_a < item_b`), in
/// at least `min_orders` orders, most frequent first.
pub fn co_purchase(orders: &[Order], min_orders: u32) -> Result<DataFrame> {
    // Counted in plain Rust, each order's distinct items pair by pair into a hash map: as a
    // Polars self-join of the lines, Online Retail's large orders made tens of millions of
    // rows (7 s of `train`). Items are numbers in byte order of their ids, so sorting by
    // number sorts by id.
    let mut items = Names::default();
    let mut codes = Vec::new();
    let mut ends = Vec::new();
    for o in orders.iter().filter(|o| !o.status.is_reversal()) {
        codes.extend(
            o.lines
                .iter()
                .map(|line| items.intern(Cow::Borrowed(line.item.as_str()))),
        );
        ends.push(codes.len());
    }
    let rank = items.ranks();
    let mut counts: foldhash::HashMap<(u32, u32), u32> = Default::default();
    let mut basket = Vec::new();
    let mut start = 0;
    for end in ends {
        basket.clear();
        basket.extend(codes[start..end].iter().map(|&c| rank[c as usize]));
        start = end;
        basket.sort_unstable();
        basket.dedup();
        for (k, &a) in basket.iter().enumerate() {
            for &b in &basket[k + 1..] {
                *counts.entry((a, b)).or_insert(0) += 1;
            }
        }
    }
    let mut pairs: Vec<((u32, u32), u32)> = counts
        .into_iter()
        .filter(|&(_, n)| n >= min_orders)
        .collect();
    pairs.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let names = items.sorted();
    Ok(df!(
        "item_a" => pairs.iter().map(|p| names[p.0.0 as usize]).collect::<Vec<_>>(),
        "item_b" => pairs.iter().map(|p| names[p.0.1 as usize]).collect::<Vec<_>>(),
        "orders" => pairs.iter().map(|p| p.1).collect::<Vec<u32>>(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};
    use marquee_domain::{
        Actor, Currency, EventId, EventKind, ItemId, Money, OrderId, OrderLine, OrderStatus, UserId,
    };

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
    }

    fn view(user: &str, item: &str, days_ago: i64) -> Event {
        Event {
            id: EventId::new(format!("{user}-{item}-{days_ago}")).unwrap(),
            actor: Actor::User(UserId::new(user).unwrap()),
            item: Some(ItemId::new(item).unwrap()),
            kind: EventKind::View,
            value: None,
            timestamp: now() - TimeDelta::days(days_ago),
            context: None,
        }
    }

    fn order(id: &str, items: &[&str], status: OrderStatus) -> Order {
        Order {
            id: OrderId::new(id).unwrap(),
            user: Some(UserId::new("buyer").unwrap()),
            created_at: now() - TimeDelta::days(20),
            status,
            lines: items
                .iter()
                .map(|i| OrderLine {
                    item: ItemId::new(*i).unwrap(),
                    quantity: 2,
                    unit_price: Money::new(100, Currency::new("EUR").unwrap()),
                })
                .collect(),
        }
    }

    /// The values of a string column.
    fn strings<'a>(df: &'a DataFrame, name: &str) -> Vec<&'a str> {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect()
    }

    #[test]
    fn stats_count_users_units_and_growth() {
        let events = vec![
            view("u1", "rising", 1),
            view("u2", "rising", 2),
            view("u1", "steady", 1),
            view("u2", "steady", 9),
            view("u2", "steady", 10),
        ];
        let orders = vec![
            order("o1", &["steady"], OrderStatus::Paid),
            order("o2", &["steady"], OrderStatus::Refunded),
            order("o3", &["steady"], OrderStatus::Shipped),
        ];
        let df = item_stats(&events, &orders, Some(now()), 7.0).unwrap();
        let items = strings(&df, "item");
        assert_eq!(items, ["rising", "steady"]);
        let get_u = |name: &str| -> Vec<u32> {
            let c = df.column(name).unwrap().cast(&DataType::UInt32).unwrap();
            c.u32().unwrap().iter().flatten().collect()
        };
        assert_eq!(get_u("users"), [2, 3]);
        assert_eq!(get_u("events"), [2, 3]);
        assert_eq!(get_u("recent_users"), [2, 1]);
        // u2's latest touch of "steady" was 9 days ago; the buyer's 20 days ago.
        assert_eq!(get_u("previous_users"), [0, 1]);
        let units: Vec<i64> = df
            .column("net_units")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(units, [0, 2]);
        let trending: Vec<f64> = df
            .column("trending")
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(trending, [6.0, 1.0]);
        assert!(item_stats(&events, &orders, None, 0.0).is_err());
    }

    /// Items with equal trending and users come in byte order of their ids, whatever order
    /// they were first seen in.
    #[test]
    fn ties_come_in_id_order() {
        let events = vec![
            view("u1", "zeta", 1),
            view("u1", "beta", 1),
            view("u1", "Alpha", 1),
            view("u1", "alpha", 1),
        ];
        let df = item_stats(&events, &[], Some(now()), 7.0).unwrap();
        let items = strings(&df, "item");
        assert_eq!(items, ["Alpha", "alpha", "beta", "zeta"]);
    }

    #[test]
    fn co_purchase_counts_orders_not_lines() {
        let orders = vec![
            order("o1", &["a", "b", "c"], OrderStatus::Paid),
            order("o2", &["b", "a", "a"], OrderStatus::Placed),
            order("o3", &["a", "b"], OrderStatus::Cancelled),
            order("o4", &["c", "d"], OrderStatus::Shipped),
        ];
        let df = co_purchase(&orders, 1).unwrap();
        let a = strings(&df, "item_a");
        let b = strings(&df, "item_b");
        let n: Vec<u32> = df
            .column("orders")
            .unwrap()
            .u32()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(a, ["a", "a", "b", "c"]);
        assert_eq!(b, ["b", "c", "c", "d"]);
        assert_eq!(n, [2, 1, 1, 1]);
        assert_eq!(co_purchase(&orders, 2).unwrap().height(), 1);
    }
}
