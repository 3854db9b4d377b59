//! Item statistics for reports and non-personalised rows.
//!
//! [`item_stats`]: per item, the distinct users who touched it (events or order lines), the
//! number of events, net units sold (cancelled and refunded lines subtract), and recent
//! growth: `recent_users` are users whose latest touch falls in the last `window_days` before
//! the reference time, `previous_users` those in the window before that, and
//! `trending = recent × (recent + 1) / (previous + 1)`, the same definition as the `trending`
//! model. Sorted by trending, then users, descending.
//!
//! [`co_purchase`]: the pairs of items most often bought in the same (not cancelled or
//! refunded) order, with the number of such orders.

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

/// The `limit` pairs of items bought together most often (columns `item_a, item_b, orders`,
/// `item_a < item_b`), each in at least `min_orders` orders, most frequent first (ties in id
/// order).
pub fn co_purchase(orders: &[Order], min_orders: u32, limit: usize) -> Result<DataFrame> {
    // Counted in plain Rust: as a Polars self-join of the lines, Online Retail's large
    // orders made tens of millions of rows (7 s of `train`), and as a hash map of pairs
    // still 1.7 s. Each item's partners are counted in one array over the orders that hold
    // it (an index from item to orders), so a pair costs an array increment. Items are
    // numbers in byte order of their ids, so sorting by number sorts by id.
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
    let n = rank.len();
    // Each order's distinct items, sorted, one after another in `baskets`.
    let mut baskets: Vec<u32> = Vec::with_capacity(codes.len());
    let mut bounds = vec![0usize];
    let mut start = 0;
    for end in ends {
        let first = baskets.len();
        baskets.extend(codes[start..end].iter().map(|&c| rank[c as usize]));
        start = end;
        baskets[first..].sort_unstable();
        let kept = dedup_tail(&mut baskets, first);
        baskets.truncate(first + kept);
        bounds.push(baskets.len());
    }
    // The orders holding each item, with the item's place in each (its partners follow it).
    let mut holders_start = vec![0usize; n + 1];
    for &i in &baskets {
        holders_start[i as usize + 1] += 1;
    }
    for i in 0..n {
        holders_start[i + 1] += holders_start[i];
    }
    let mut next = holders_start.clone();
    let mut holders = vec![0usize; baskets.len()];
    for (at, &i) in baskets.iter().enumerate() {
        let slot = &mut next[i as usize];
        holders[*slot] = at;
        *slot += 1;
    }
    // Where the basket holding each position ends.
    let mut basket_end = vec![0usize; baskets.len()];
    for w in bounds.windows(2) {
        basket_end[w[0]..w[1]].fill(w[1]);
    }
    let mut count = vec![0u32; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut pairs: Vec<((u32, u32), u32)> = Vec::new();
    for a in 0..n {
        for &at in &holders[holders_start[a]..holders_start[a + 1]] {
            for &b in &baskets[at + 1..basket_end[at]] {
                let c = &mut count[b as usize];
                if *c == 0 {
                    touched.push(b);
                }
                *c += 1;
            }
        }
        for &b in &touched {
            let c = std::mem::take(&mut count[b as usize]);
            if c >= min_orders {
                pairs.push(((a as u32, b), c));
            }
        }
        touched.clear();
    }
    let order = |x: &((u32, u32), u32), y: &((u32, u32), u32)| y.1.cmp(&x.1).then(x.0.cmp(&y.0));
    if pairs.len() > limit {
        pairs.select_nth_unstable_by(limit, order);
        pairs.truncate(limit);
    }
    pairs.sort_unstable_by(order);
    let names = items.sorted();
    Ok(df!(
        "item_a" => pairs.iter().map(|p| names[p.0.0 as usize]).collect::<Vec<_>>(),
        "item_b" => pairs.iter().map(|p| names[p.0.1 as usize]).collect::<Vec<_>>(),
        "orders" => pairs.iter().map(|p| p.1).collect::<Vec<u32>>(),
    )?)
}

/// Removes repeats from the sorted `v[first..]`, in place; the number of values kept there.
fn dedup_tail(v: &mut [u32], first: usize) -> usize {
    let tail = &mut v[first..];
    if tail.is_empty() {
        return 0;
    }
    let mut kept = 1;
    for k in 1..tail.len() {
        if tail[k] != tail[kept - 1] {
            tail[kept] = tail[k];
            kept += 1;
        }
    }
    kept
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
        let pairs = pairs_of(&co_purchase(&orders, 1, 100).unwrap());
        let want = [("a", "b", 2), ("a", "c", 1), ("b", "c", 1), ("c", "d", 1)];
        let want: Vec<_> = want.map(|(a, b, n)| (a.to_owned(), b.to_owned(), n)).into();
        assert_eq!(pairs, want);
        assert_eq!(co_purchase(&orders, 2, 100).unwrap().height(), 1);
        assert_eq!(
            strings(&co_purchase(&orders, 1, 2).unwrap(), "item_b"),
            ["b", "c"]
        );
    }

    /// A co-purchase table's rows: item a, item b, orders.
    fn pairs_of(df: &DataFrame) -> Vec<(String, String, u32)> {
        let n = df.column("orders").unwrap().u32().unwrap().clone();
        strings(df, "item_a")
            .into_iter()
            .zip(strings(df, "item_b"))
            .zip(n.iter().flatten())
            .map(|((a, b), n)| (a.to_owned(), b.to_owned(), n))
            .collect()
    }

    /// On many random orders (repeated lines, reversals, large baskets) the table equals a
    /// plain count of every order's distinct pairs, ties in id order.
    #[test]
    fn co_purchase_equals_a_plain_count_of_pairs() {
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let orders: Vec<Order> = (0..400)
            .map(|k| {
                let size = if k % 50 == 0 {
                    60
                } else {
                    1 + next(6) as usize
                };
                let names: Vec<String> = (0..size).map(|_| format!("i{}", next(40))).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let status = if k % 9 == 0 {
                    OrderStatus::Refunded
                } else {
                    OrderStatus::Paid
                };
                order(&format!("o{k}"), &names, status)
            })
            .collect();
        let mut plain: std::collections::BTreeMap<(String, String), u32> = Default::default();
        for o in orders.iter().filter(|o| !o.status.is_reversal()) {
            let mut items: Vec<&str> = o.lines.iter().map(|l| l.item.as_str()).collect();
            items.sort_unstable();
            items.dedup();
            for (k, a) in items.iter().enumerate() {
                for b in &items[k + 1..] {
                    *plain.entry((a.to_string(), b.to_string())).or_insert(0) += 1;
                }
            }
        }
        for (min_orders, limit) in [(1, usize::MAX), (3, usize::MAX), (1, 10), (2, 1)] {
            let mut expected: Vec<(String, String, u32)> = plain
                .iter()
                .filter(|&(_, &n)| n >= min_orders)
                .map(|((a, b), &n)| (a.clone(), b.clone(), n))
                .collect();
            expected.sort_by(|x, y| y.2.cmp(&x.2).then((&x.0, &x.1).cmp(&(&y.0, &y.1))));
            assert!(expected.len() > 100, "{}", expected.len());
            expected.truncate(limit);
            let got = pairs_of(&co_purchase(&orders, min_orders, limit).unwrap());
            assert_eq!(got, expected, "at least {min_orders} orders, {limit} pairs");
        }
    }
}
