//! RFM per customer, from orders.
//!
//! For every customer with at least one order that is not cancelled or refunded:
//!
//! - `recency_days`: whole days from their latest such order to the reference time (default:
//!   midnight UTC after the day of the newest order in the data, so the latest buyers score 0);
//! - `frequency`: the number of such orders;
//! - `monetary`: Σ quantity × unit price over their orders, cancelled and refunded lines
//!   subtracted, in minor units (cents);
//! - `tenure_days`: whole days from their first such order to the reference time;
//! - `avg_basket`: monetary / frequency, in minor units;
//! - `favourite_category`: the category they spent most on (ties: alphabetical; `""` when no
//!   line has a known category);
//! - `r_score`, `f_score`, `m_score`: quintile scores 1–5, higher is better (recent, frequent,
//!   spending). A customer's score is `1 + ⌊5 · b / n⌋` where `n` is the number of customers and
//!   `b` those strictly worse on that value, so equal values share a score.
//!
//! Orders without a customer are left out. Amounts are summed as they are: a store selling in
//! several currencies gets sums across them (this data model keeps one currency per order).

use crate::Result;
use marquee_domain::{Item, Order, Timestamp};
use polars::prelude::*;
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

/// One customer's RFM row (the frame [`rfm`] returns, as plain values).
#[derive(Debug, Clone, PartialEq)]
pub struct Rfm {
    pub user_id: String,
    pub recency_days: i64,
    pub frequency: u32,
    pub monetary: i64,
    pub tenure_days: i64,
    pub avg_basket: f64,
    pub favourite_category: String,
    pub r_score: u8,
    pub f_score: u8,
    pub m_score: u8,
}

/// The default reference time: midnight UTC after the newest order's day.
pub fn default_reference(orders: &[Order]) -> Option<Timestamp> {
    let newest = orders
        .iter()
        .map(|o| o.created_at.timestamp_millis())
        .max()?;
    Timestamp::from_timestamp_millis((newest.div_euclid(DAY_MS) + 1) * DAY_MS)
}

/// Computes RFM for every customer (sorted by user id).
pub fn rfm(orders: &[Order], catalog: &[Item], reference: Option<Timestamp>) -> Result<Vec<Rfm>> {
    let Some(reference) = reference.or_else(|| default_reference(orders)) else {
        return Ok(Vec::new());
    };
    let categories: HashMap<&str, &str> = catalog
        .iter()
        .map(|i| (i.id.as_str(), i.category.as_str()))
        .collect();
    let mut user = Vec::new();
    let mut order = Vec::new();
    let mut ts = Vec::new();
    let mut valid = Vec::new();
    let mut amount = Vec::new();
    let mut category = Vec::new();
    for o in orders {
        let Some(u) = &o.user else { continue };
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        for line in &o.lines {
            user.push(u.as_str().to_owned());
            order.push(o.id.as_str().to_owned());
            ts.push(o.created_at.timestamp_millis());
            valid.push(sign > 0);
            amount.push(sign * i64::from(line.quantity) * line.unit_price.minor);
            category.push(
                categories
                    .get(line.item.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    let reference_ms = reference.timestamp_millis();
    let lines = df!(
        "user" => user,
        "order" => order,
        "ts" => ts,
        "valid" => valid,
        "amount" => amount,
        "category" => category,
    )?
    .lazy();
    let per_user = lines
        .clone()
        .group_by([col("user")])
        .agg([
            crate::distinct_valid_orders("frequency"),
            col("amount").sum().alias("monetary"),
            col("ts").filter(col("valid")).max().alias("last_ts"),
            col("ts").filter(col("valid")).min().alias("first_ts"),
        ])
        .filter(col("frequency").gt(lit(0u32)));
    let spend = lines
        .filter(col("valid").and(col("category").neq(lit(""))))
        .group_by([col("user"), col("category")])
        .agg([col("amount").sum().alias("spent")])
        .sort(
            ["user", "spent", "category"],
            SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
        )
        .group_by_stable([col("user")])
        .agg([col("category").first().alias("favourite_category")]);
    let frame = per_user
        .join(
            spend,
            [col("user")],
            [col("user")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["user"], SortMultipleOptions::default())
        .collect()?;

    let users = frame.column("user")?.str()?.clone();
    let frequency = frame.column("frequency")?.u32()?.clone();
    let monetary = frame.column("monetary")?.i64()?.clone();
    let last = frame.column("last_ts")?.i64()?.clone();
    let first = frame.column("first_ts")?.i64()?.clone();
    // Whole days, rounded down (also for a reference before an order).
    let days = |ts: Option<i64>| (reference_ms - ts.unwrap_or(reference_ms)).div_euclid(DAY_MS);
    let favourite = frame.column("favourite_category")?.str()?.clone();
    let mut rows: Vec<Rfm> = (0..frame.height())
        .map(|i| {
            let f = frequency.get(i).unwrap_or(0);
            let m = monetary.get(i).unwrap_or(0);
            Rfm {
                user_id: users.get(i).unwrap_or("").to_owned(),
                recency_days: days(last.get(i)),
                frequency: f,
                monetary: m,
                tenure_days: days(first.get(i)),
                avg_basket: m as f64 / f64::from(f.max(1)),
                favourite_category: favourite.get(i).unwrap_or("").to_owned(),
                r_score: 0,
                f_score: 0,
                m_score: 0,
            }
        })
        .collect();
    // Recency: fewer days is better, so the score counts customers with more days.
    let r = quintiles(
        &rows
            .iter()
            .map(|r| -r.recency_days as f64)
            .collect::<Vec<_>>(),
    );
    let f = quintiles(
        &rows
            .iter()
            .map(|r| f64::from(r.frequency))
            .collect::<Vec<_>>(),
    );
    let m = quintiles(&rows.iter().map(|r| r.monetary as f64).collect::<Vec<_>>());
    for (i, row) in rows.iter_mut().enumerate() {
        row.r_score = r[i];
        row.f_score = f[i];
        row.m_score = m[i];
    }
    Ok(rows)
}

/// `1 + ⌊5 · (values strictly smaller) / n⌋` for every value.
pub fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    values
        .iter()
        .map(|v| {
            let below = sorted.partition_point(|x| x < v);
            (1 + 5 * below / n.max(1)) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use marquee_domain::{Currency, ItemId, Money, OrderId, OrderLine, OrderStatus, UserId};

    fn order(
        id: &str,
        user: &str,
        day: u32,
        status: OrderStatus,
        lines: &[(&str, u32, i64)],
    ) -> Order {
        Order {
            id: OrderId::new(id).unwrap(),
            user: Some(UserId::new(user).unwrap()),
            created_at: Utc.with_ymd_and_hms(2026, 3, day, 15, 30, 0).unwrap(),
            status,
            lines: lines
                .iter()
                .map(|&(item, q, p)| OrderLine {
                    item: ItemId::new(item).unwrap(),
                    quantity: q,
                    unit_price: Money::new(p, Currency::new("GBP").unwrap()),
                })
                .collect(),
        }
    }

    fn item(id: &str, category: &str) -> Item {
        Item::new(
            ItemId::new(id).unwrap(),
            id,
            category,
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    #[test]
    fn hand_made_orders_give_known_answers() {
        let orders = vec![
            // alice: two paid orders (1 and 10 March), one cancelled order (12 March).
            order(
                "o1",
                "alice",
                1,
                OrderStatus::Paid,
                &[("mug", 2, 350), ("tea", 1, 500)],
            ),
            order("o2", "alice", 10, OrderStatus::Shipped, &[("tea", 3, 500)]),
            order(
                "o3",
                "alice",
                12,
                OrderStatus::Cancelled,
                &[("mug", 1, 350)],
            ),
            // bob: one order on the newest day, then part of it refunded.
            order("o4", "bob", 20, OrderStatus::Placed, &[("mug", 10, 350)]),
            order("o5", "bob", 20, OrderStatus::Refunded, &[("mug", 4, 350)]),
            // carol: only a cancelled order: not a customer.
            order("o6", "carol", 5, OrderStatus::Cancelled, &[("tea", 1, 500)]),
        ];
        let catalog = [item("mug", "kitchen"), item("tea", "food")];
        let rows = rfm(&orders, &catalog, None).unwrap();
        assert_eq!(rows.len(), 2);
        let (a, b) = (&rows[0], &rows[1]);
        // Reference: 21 March 00:00 UTC.
        assert_eq!(
            (a.user_id.as_str(), a.recency_days, a.tenure_days),
            ("alice", 10, 19)
        );
        assert_eq!(a.frequency, 2);
        assert_eq!(a.monetary, 2 * 350 + 500 + 3 * 500 - 350);
        assert_eq!(a.favourite_category, "food");
        assert!((a.avg_basket - 2350.0 / 2.0).abs() < 1e-9);
        assert_eq!(
            (b.user_id.as_str(), b.recency_days, b.frequency),
            ("bob", 0, 1)
        );
        assert_eq!(b.monetary, 6 * 350);
        assert_eq!(b.favourite_category, "kitchen");
        // Two customers: the better one on each value scores 3 (one of two is below it).
        assert_eq!((a.r_score, b.r_score), (1, 3));
        assert_eq!((a.f_score, b.f_score), (3, 1));
        assert_eq!((a.m_score, b.m_score), (3, 1));
        // An explicit reference date.
        let later = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let rows = rfm(&orders, &catalog, Some(later)).unwrap();
        assert_eq!(rows[1].recency_days, 11);
        assert!(rfm(&[], &catalog, None).unwrap().is_empty());
    }

    #[test]
    fn quintiles_share_scores_on_ties() {
        assert_eq!(quintiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), [1, 2, 3, 4, 5]);
        assert_eq!(quintiles(&[7.0, 7.0, 7.0]), [1, 1, 1]);
        let ten: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(quintiles(&ten), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }
}
