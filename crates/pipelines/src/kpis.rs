//! Shop KPIs for the admin dashboard, exact in minor units (cents):
//!
//! - [`revenue_by_period`]: per day or month, orders (not cancelled or refunded) and net
//!   revenue (Σ quantity × unit price, cancelled and refunded lines subtracted);
//! - [`top_products`]: items by net revenue or by net units in a date range;
//! - [`funnel`]: distinct visitors (users or sessions) who viewed, added to cart and bought,
//!   with the conversion rates between the steps;
//! - [`new_vs_returning`]: per month, customers whose first valid order falls in it, and the
//!   others who ordered in it.
//!
//! Date ranges are half-open `[from, to)` in UTC; `from` after `to` is refused.

use crate::{Error, Result};
use marquee_domain::{Event, EventKind, Order, Timestamp};
use polars::prelude::*;
use std::collections::HashMap;

/// Grouping of [`revenue_by_period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    fn key(self, t: Timestamp) -> String {
        match self {
            Self::Day => t.format("%Y-%m-%d").to_string(),
            Self::Month => t.format("%Y-%m").to_string(),
        }
    }
}

/// A half-open UTC range; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Range {
    fn check(&self) -> Result<()> {
        if let (Some(a), Some(b)) = (self.from, self.to)
            && a > b
        {
            return Err(Error::Setting {
                name: "from",
                message: format!("{a} is after to = {b}"),
            });
        }
        Ok(())
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

/// One period of [`revenue_by_period`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevenueRow {
    pub period: String,
    pub orders: u32,
    pub revenue_minor: i64,
}

/// Orders and net revenue per period, oldest first.
pub fn revenue_by_period(
    orders: &[Order],
    period: Period,
    range: Range,
) -> Result<Vec<RevenueRow>> {
    range.check()?;
    let mut key = Vec::new();
    let mut id = Vec::new();
    let mut valid = Vec::new();
    let mut amount = Vec::new();
    for o in orders.iter().filter(|o| range.contains(o.created_at)) {
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        key.push(period.key(o.created_at));
        id.push(o.id.as_str().to_owned());
        valid.push(sign > 0);
        amount.push(sign * o.total_minor());
    }
    let df = df!("period" => key, "order" => id, "valid" => valid, "amount" => amount)?
        .lazy()
        .group_by([col("period")])
        .agg([
            crate::distinct_valid_orders("orders"),
            col("amount").sum().alias("revenue"),
        ])
        .sort(["period"], SortMultipleOptions::default())
        .collect()?;
    let periods = df.column("period")?.str()?.clone();
    let counts = df.column("orders")?.u32()?.clone();
    let revenue = df.column("revenue")?.i64()?.clone();
    Ok((0..df.height())
        .map(|i| RevenueRow {
            period: periods.get(i).unwrap_or("").to_owned(),
            orders: counts.get(i).unwrap_or(0),
            revenue_minor: revenue.get(i).unwrap_or(0),
        })
        .collect())
}

/// What [`top_products`] ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    Revenue,
    Units,
}

/// One item of [`top_products`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductRow {
    pub item: String,
    pub revenue_minor: i64,
    pub units: i64,
}

/// The `limit` items with the most net revenue (or units) in the range; ties by item id.
pub fn top_products(
    orders: &[Order],
    range: Range,
    by: RankBy,
    limit: usize,
) -> Result<Vec<ProductRow>> {
    range.check()?;
    let mut totals: HashMap<&str, (i64, i64)> = HashMap::new();
    for o in orders.iter().filter(|o| range.contains(o.created_at)) {
        let sign = if o.status.is_reversal() { -1 } else { 1 };
        for l in &o.lines {
            let t = totals.entry(l.item.as_str()).or_default();
            t.0 += sign * i64::from(l.quantity) * l.unit_price.minor;
            t.1 += sign * i64::from(l.quantity);
        }
    }
    let mut rows: Vec<ProductRow> = totals
        .into_iter()
        .map(|(item, (revenue_minor, units))| ProductRow {
            item: item.to_owned(),
            revenue_minor,
            units,
        })
        .collect();
    rows.sort_by(|a, b| {
        let (x, y) = match by {
            RankBy::Revenue => (a.revenue_minor, b.revenue_minor),
            RankBy::Units => (a.units, b.units),
        };
        y.cmp(&x).then_with(|| a.item.cmp(&b.item))
    });
    rows.truncate(limit);
    Ok(rows)
}

/// The view → add_to_cart → purchase funnel.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Funnel {
    pub viewed: u64,
    pub added_to_cart: u64,
    pub purchased: u64,
    /// added_to_cart / viewed (0 when nobody viewed).
    pub view_to_cart: f64,
    /// purchased / added_to_cart.
    pub cart_to_purchase: f64,
    /// purchased / viewed.
    pub view_to_purchase: f64,
}

/// Distinct visitors (users, or sessions for anonymous visitors) at each step in the range.
pub fn funnel(events: &[Event], range: Range) -> Result<Funnel> {
    range.check()?;
    let mut steps: [std::collections::HashSet<String>; 3] = Default::default();
    for e in events.iter().filter(|e| range.contains(e.timestamp)) {
        let step = match e.kind {
            EventKind::View | EventKind::Click => 0,
            EventKind::AddToCart => 1,
            EventKind::Purchase => 2,
            _ => continue,
        };
        steps[step].insert(crate::actor_key(&e.actor));
    }
    let [v, c, p] = steps.map(|s| s.len() as u64);
    let rate = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(Funnel {
        viewed: v,
        added_to_cart: c,
        purchased: p,
        view_to_cart: rate(c, v),
        cart_to_purchase: rate(p, c),
        view_to_purchase: rate(p, v),
    })
}

/// One month of [`new_vs_returning`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CustomersRow {
    pub month: String,
    pub new_customers: u32,
    pub returning_customers: u32,
}

/// Per month (oldest first), customers ordering for the first time and those who had ordered
/// before (valid orders only; anonymous orders left out).
pub fn new_vs_returning(orders: &[Order]) -> Vec<CustomersRow> {
    let mut first: HashMap<&str, String> = HashMap::new();
    let mut active: std::collections::BTreeMap<String, std::collections::HashSet<&str>> =
        Default::default();
    let mut valid: Vec<&Order> = orders
        .iter()
        .filter(|o| !o.status.is_reversal() && o.user.is_some())
        .collect();
    valid.sort_by_key(|o| o.created_at);
    for o in valid {
        let Some(u) = &o.user else { continue };
        let month = Period::Month.key(o.created_at);
        first.entry(u.as_str()).or_insert_with(|| month.clone());
        active.entry(month).or_default().insert(u.as_str());
    }
    active
        .into_iter()
        .map(|(month, users)| {
            let new = users.iter().filter(|u| first[**u] == month).count() as u32;
            CustomersRow {
                new_customers: new,
                returning_customers: users.len() as u32 - new,
                month,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use marquee_domain::{
        Actor, Currency, EventId, ItemId, Money, OrderId, OrderLine, OrderStatus, SessionId, UserId,
    };

    fn at(month: u32, day: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, month, day, 12, 0, 0).unwrap()
    }

    fn order(
        id: &str,
        user: &str,
        t: Timestamp,
        status: OrderStatus,
        lines: &[(&str, u32, i64)],
    ) -> Order {
        Order {
            id: OrderId::new(id).unwrap(),
            user: Some(UserId::new(user).unwrap()),
            created_at: t,
            status,
            lines: lines
                .iter()
                .map(|&(i, q, p)| OrderLine {
                    item: ItemId::new(i).unwrap(),
                    quantity: q,
                    unit_price: Money::new(p, Currency::new("EUR").unwrap()),
                })
                .collect(),
        }
    }

    fn orders() -> Vec<Order> {
        vec![
            order(
                "o1",
                "ann",
                at(1, 5),
                OrderStatus::Paid,
                &[("mug", 2, 1_099), ("tea", 1, 450)],
            ),
            order(
                "o2",
                "bob",
                at(1, 5),
                OrderStatus::Shipped,
                &[("tea", 4, 450)],
            ),
            order(
                "o3",
                "ann",
                at(2, 1),
                OrderStatus::Paid,
                &[("mug", 1, 1_099)],
            ),
            order(
                "o4",
                "ann",
                at(2, 3),
                OrderStatus::Refunded,
                &[("mug", 1, 1_099)],
            ),
            order(
                "o5",
                "cid",
                at(2, 9),
                OrderStatus::Cancelled,
                &[("tea", 9, 450)],
            ),
        ]
    }

    #[test]
    fn revenue_is_net_and_exact_per_period() {
        let months = revenue_by_period(&orders(), Period::Month, Range::default()).unwrap();
        assert_eq!(
            months,
            [
                RevenueRow {
                    period: "2026-01".into(),
                    orders: 2,
                    revenue_minor: 2 * 1_099 + 450 + 4 * 450
                },
                RevenueRow {
                    period: "2026-02".into(),
                    orders: 1,
                    revenue_minor: 1_099 - 1_099 - 9 * 450
                },
            ]
        );
        let days = revenue_by_period(
            &orders(),
            Period::Day,
            Range {
                from: Some(at(2, 2)),
                to: Some(at(2, 9)),
            },
        )
        .unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(
            (
                days[0].period.as_str(),
                days[0].orders,
                days[0].revenue_minor
            ),
            ("2026-02-03", 0, -1_099)
        );
        let backwards = Range {
            from: Some(at(3, 1)),
            to: Some(at(1, 1)),
        };
        assert!(revenue_by_period(&orders(), Period::Day, backwards).is_err());
        assert!(top_products(&orders(), backwards, RankBy::Units, 3).is_err());
    }

    #[test]
    fn top_products_by_revenue_and_units() {
        let by_revenue = top_products(&orders(), Range::default(), RankBy::Revenue, 5).unwrap();
        assert_eq!(
            by_revenue[0],
            ProductRow {
                item: "mug".into(),
                revenue_minor: 2 * 1_099,
                units: 2
            }
        );
        assert_eq!(
            by_revenue[1],
            ProductRow {
                item: "tea".into(),
                revenue_minor: 5 * 450 - 9 * 450,
                units: -4
            }
        );
        let january = Range {
            from: Some(at(1, 1)),
            to: Some(at(2, 1)),
        };
        let by_units = top_products(&orders(), january, RankBy::Units, 1).unwrap();
        assert_eq!(
            by_units,
            [ProductRow {
                item: "tea".into(),
                revenue_minor: 5 * 450,
                units: 5
            }]
        );
    }

    #[test]
    fn funnel_counts_distinct_visitors() {
        let ev = |id: &str, who: Actor, kind: EventKind| Event {
            id: EventId::new(id).unwrap(),
            actor: who,
            item: Some(ItemId::new("mug").unwrap()),
            kind,
            value: None,
            timestamp: at(1, 2),
            context: None,
        };
        let user = |u: &str| Actor::User(UserId::new(u).unwrap());
        let session = Actor::Session(SessionId::new("s1").unwrap());
        let events = vec![
            ev("1", user("ann"), EventKind::View),
            ev("2", user("ann"), EventKind::View),
            ev("3", user("bob"), EventKind::View),
            ev("4", session.clone(), EventKind::View),
            ev("5", user("ann"), EventKind::AddToCart),
            ev("6", session, EventKind::AddToCart),
            ev("7", user("ann"), EventKind::Purchase),
        ];
        let f = funnel(&events, Range::default()).unwrap();
        assert_eq!((f.viewed, f.added_to_cart, f.purchased), (3, 2, 1));
        assert!((f.view_to_cart - 2.0 / 3.0).abs() < 1e-12);
        assert!((f.cart_to_purchase - 0.5).abs() < 1e-12);
        let none = funnel(
            &events,
            Range {
                from: Some(at(5, 1)),
                to: None,
            },
        )
        .unwrap();
        assert_eq!((none.viewed, none.view_to_cart), (0, 0.0));
    }

    #[test]
    fn new_and_returning_customers_by_month() {
        let rows = new_vs_returning(&orders());
        assert_eq!(
            rows,
            [
                CustomersRow {
                    month: "2026-01".into(),
                    new_customers: 2,
                    returning_customers: 0
                },
                CustomersRow {
                    month: "2026-02".into(),
                    new_customers: 0,
                    returning_customers: 1
                },
            ]
        );
    }
}
