//! Shop KPIs computed by the database, exact in minor units (cents), for the admin API.
//!
//! - revenue and orders per day or month: an order counts when it is not cancelled or
//!   refunded; revenue is Σ quantity × unit price over its lines, with the lines of cancelled
//!   and refunded orders subtracted;
//! - top products by net revenue or net units in a range (ties by item id);
//! - the view → add_to_cart → purchase funnel: distinct visitors (a user, or `session:<id>`
//!   for an anonymous session) with an event of each step in the range (a click counts as a
//!   view), and the conversion rates between the steps;
//! - new vs returning customers per month: among the customers with a valid order in the
//!   month, those whose first valid order falls in it, and the others.
//!
//! Ranges are half-open `[from, to)` over order or event times in UTC. Periods are the UTC
//! calendar day (`YYYY-MM-DD`) or month (`YYYY-MM`).

use crate::{Error, Result};
use marquee_domain::Timestamp;

/// Grouping of revenue by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(format!("unknown period {other:?}: use day or month")),
        }
    }
}

/// What top products are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    Revenue,
    Units,
}

impl std::str::FromStr for RankBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "revenue" => Ok(Self::Revenue),
            "units" => Ok(Self::Units),
            other => Err(format!("unknown ranking {other:?}: use revenue or units")),
        }
    }
}

/// A half-open UTC range; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl DateRange {
    /// Refuses `from` after `to`.
    pub fn new(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<Self> {
        if let (Some(a), Some(b)) = (from, to)
            && a > b
        {
            return Err(Error::Conflict(format!(
                "the range starts ({a}) after it ends ({b})"
            )));
        }
        Ok(Self { from, to })
    }

    pub(crate) fn bounds_ms(&self) -> (Option<i64>, Option<i64>) {
        (
            self.from.map(|t| t.timestamp_millis()),
            self.to.map(|t| t.timestamp_millis()),
        )
    }
}

/// Orders and net revenue of one period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevenueRow {
    pub period: String,
    pub orders: u64,
    pub revenue_minor: i64,
}

/// Net revenue and units of one item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductRow {
    pub item: String,
    pub revenue_minor: i64,
    pub units: i64,
}

/// The view → add_to_cart → purchase funnel.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Funnel {
    pub viewed: u64,
    pub added_to_cart: u64,
    pub purchased: u64,
    /// added_to_cart / viewed (0 when nobody viewed).
    pub view_to_cart: f64,
    /// purchased / added_to_cart (0 when nobody added to cart).
    pub cart_to_purchase: f64,
    /// purchased / viewed (0 when nobody viewed).
    pub view_to_purchase: f64,
}

impl Funnel {
    pub(crate) fn from_counts(viewed: u64, added_to_cart: u64, purchased: u64) -> Self {
        let rate = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Self {
            viewed,
            added_to_cart,
            purchased,
            view_to_cart: rate(added_to_cart, viewed),
            cart_to_purchase: rate(purchased, added_to_cart),
            view_to_purchase: rate(purchased, viewed),
        }
    }
}

/// New and returning customers of one month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CustomersRow {
    pub month: String,
    pub new_customers: u64,
    pub returning_customers: u64,
}
