//! Product analytics over the behaviour data, exact at the event: custom funnels, weekly
//! retention cohorts, next purchase, and event counts by day and kind. Pure functions over
//! [`Touch`]es (an event, or an order with its items) and orders; [`crate::Store`] streams them in.
//!
//! A person is a user id, or `session:<id>` for an anonymous session that never identified
//! (a session linked to a user counts as that user). Orders that were cancelled or refunded
//! do not count anywhere. Times are UTC; weeks start on Monday.

use chrono::{TimeZone, Utc};
use marquee_domain::{EventKind, ItemId, Order, Timestamp};
use std::collections::{HashMap, HashSet};

/// What a person did once: an event of a kind, or an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchKind {
    Event(EventKind),
    /// An order (not cancelled or refunded); its items are its lines'.
    Order,
}

impl TouchKind {
    /// An event kind's name, or `order`.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name == "order" {
            return Ok(Self::Order);
        }
        EventKind::parse(name).map(Self::Event).map_err(|_| {
            format!(
                "{name:?} is not an event kind (view, click, add_to_cart, remove_from_cart, \
                 wishlist, purchase, rating, dwell) or `order`"
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event(k) => k.as_str(),
            Self::Order => "order",
        }
    }
}

/// One thing a person did.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub person: String,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: TouchKind,
    /// The event's item (none or one), or the order's items.
    pub items: Vec<ItemId>,
}

/// One step of a funnel: a kind, optionally only for one item or one category.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub kind: String,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

/// A checked step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: TouchKind,
    pub item: Option<ItemId>,
    pub category: Option<String>,
}

impl Step {
    /// Checks a step; the error names `steps[n]`.
    pub fn check(n: usize, spec: &StepSpec) -> Result<Self, String> {
        let kind = TouchKind::parse(&spec.kind).map_err(|m| format!("steps[{n}].kind: {m}"))?;
        let item = spec
            .item_id
            .as_deref()
            .map(|i| ItemId::new(i).map_err(|e| format!("steps[{n}].item_id: {e}")))
            .transpose()?;
        if item.is_some() && spec.category.is_some() {
            return Err(format!("steps[{n}]: give item_id or category, not both"));
        }
        Ok(Self {
            kind,
            item,
            category: spec.category.clone(),
        })
    }

    fn matches(&self, t: &Touch, categories: &HashMap<ItemId, String>) -> bool {
        if t.kind != self.kind {
            return false;
        }
        if let Some(item) = &self.item {
            return t.items.contains(item);
        }
        if let Some(category) = &self.category {
            return t
                .items
                .iter()
                .any(|i| categories.get(i).is_some_and(|c| c == category));
        }
        true
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepResult {
    pub kind: &'static str,
    pub item_id: Option<String>,
    pub category: Option<String>,
    /// People who reached this step.
    pub people: u64,
    /// `people` over the first step's people (1 for the first step; 0 when nobody entered).
    pub conversion: f64,
    /// `people` over the previous step's people.
    pub from_previous: f64,
    /// The median time from the previous step to this one among those who reached it
    /// (seconds; the mean of the two middle values for an even count); `None` for the first
    /// step or when nobody reached it.
    pub median_seconds_from_previous: Option<f64>,
}

/// The funnel: a person enters with a first-step touch in `[from, to)` and reaches step
/// `k + 1` with the earliest touch matching it at or after their step-`k` touch, within
/// `window_ms` of entering (touches in time order; ties in input order). Each person counts
/// once, with the entry that takes them furthest (the earliest such entry).
pub fn funnel(
    touches: &[Touch],
    steps: &[Step],
    window_ms: i64,
    from: Option<i64>,
    to: Option<i64>,
    categories: &HashMap<ItemId, String>,
) -> Vec<StepResult> {
    let mut reached = vec![0u64; steps.len()];
    let mut gaps: Vec<Vec<i64>> = vec![Vec::new(); steps.len()];
    for mine in by_person(touches) {
        let mut best: Option<Vec<i64>> = None;
        for (start, t) in mine.iter().enumerate() {
            let in_range = from.is_none_or(|f| t.at >= f) && to.is_none_or(|e| t.at < e);
            if !in_range || !steps[0].matches(t, categories) {
                continue;
            }
            let mut times = vec![t.at];
            let mut at = start + 1;
            for step in &steps[1..] {
                let found = mine[at..]
                    .iter()
                    .take_while(|u| u.at - t.at <= window_ms)
                    .position(|u| step.matches(u, categories));
                match found {
                    Some(p) => {
                        times.push(mine[at + p].at);
                        at += p + 1;
                    }
                    None => break,
                }
            }
            if best.as_ref().is_none_or(|b| times.len() > b.len()) {
                let done = times.len() == steps.len();
                best = Some(times);
                if done {
                    break;
                }
            }
        }
        if let Some(times) = best {
            for (k, at) in times.iter().enumerate() {
                reached[k] += 1;
                if k > 0 {
                    gaps[k].push(at - times[k - 1]);
                }
            }
        }
    }
    steps
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
            StepResult {
                kind: s.kind.as_str(),
                item_id: s.item.as_ref().map(|i| i.as_str().to_owned()),
                category: s.category.clone(),
                people: reached[k],
                conversion: share(reached[k], reached[0]),
                from_previous: if k == 0 {
                    share(reached[0], reached[0])
                } else {
                    share(reached[k], reached[k - 1])
                },
                median_seconds_from_previous: (k > 0)
                    .then(|| median_ms(&mut gaps[k]))
                    .flatten()
                    .map(|ms| ms / 1000.0),
            }
        })
        .collect()
}

/// Touches grouped by person, each group in time order (ties in input order).
fn by_person(touches: &[Touch]) -> Vec<Vec<&Touch>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<&Touch>> = Vec::new();
    for t in touches {
        let n = *index.entry(t.person.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[n].push(t);
    }
    for g in &mut groups {
        g.sort_by_key(|t| t.at);
    }
    groups
}

fn median_ms(values: &mut [i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0
    })
}

/// The Monday (UTC) starting the week of `ms`, as Unix milliseconds.
fn week_start(ms: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let days = ms.div_euclid(DAY);
    // 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7.
    (days - (days + 3).rem_euclid(7)) * DAY
}

/// One weekly cohort: the people first active in the week starting `week`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cohort {
    /// The Monday starting the cohort's week (`YYYY-MM-DD`).
    pub week: String,
    pub people: u64,
    /// People of the cohort active in week N after their first (N = 0, 1, ...; week 0 is
    /// everyone), up to the last week with data.
    pub active: Vec<u64>,
    /// `active` over `people`.
    pub share: Vec<f64>,
}

/// Weekly retention: each known user (anonymous sessions are not customers) belongs to the
/// week of their first touch of `kinds` (any kind when empty); they are active in week N
/// when they have such a touch in the N-th week after it. Cohorts whose week starts in
/// `[from, to)`, at most `weeks` columns each.
pub fn retention(
    touches: &[Touch],
    kinds: &[TouchKind],
    weeks: usize,
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<Cohort> {
    const WEEK: i64 = 7 * 86_400_000;
    let counts = |t: &Touch| {
        !t.person.starts_with("session:") && (kinds.is_empty() || kinds.contains(&t.kind))
    };
    let mut active: HashMap<&str, HashSet<i64>> = HashMap::new();
    let mut last_week = i64::MIN;
    for t in touches.iter().filter(|t| counts(t)) {
        let w = week_start(t.at);
        last_week = last_week.max(w);
        active.entry(t.person.as_str()).or_default().insert(w);
    }
    let mut cohorts: std::collections::BTreeMap<i64, Vec<&HashSet<i64>>> = Default::default();
    for weeks_of in active.values() {
        if let Some(&first) = weeks_of.iter().min() {
            cohorts.entry(first).or_default().push(weeks_of);
        }
    }
    cohorts
        .into_iter()
        .filter(|(w, _)| from.is_none_or(|f| *w >= week_start(f)) && to.is_none_or(|e| *w < e))
        .map(|(w, members)| {
            let columns = usize::try_from((last_week - w) / WEEK + 1)
                .unwrap_or(1)
                .min(weeks.max(1));
            let active: Vec<u64> = (0..columns)
                .map(|n| {
                    let week = w + n as i64 * WEEK;
                    members.iter().filter(|m| m.contains(&week)).count() as u64
                })
                .collect();
            let people = members.len() as u64;
            Cohort {
                week: Utc
                    .timestamp_millis_opt(w)
                    .single()
                    .map(|d| d.date_naive().to_string())
                    .unwrap_or_default(),
                people,
                share: active.iter().map(|&a| a as f64 / people as f64).collect(),
                active,
            }
        })
        .collect()
}

/// What the buyers of an item bought next.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NextPurchase {
    pub item_id: String,
    /// Customers with an order of the item.
    pub buyers: u64,
    /// Of those, the ones with an order after their first order of the item.
    pub buyers_with_later_orders: u64,
    pub items: Vec<NextItem>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NextItem {
    pub item_id: String,
    /// Buyers of the item with this item in a later order.
    pub customers: u64,
    /// `customers` over `buyers`.
    pub share: f64,
}

/// For the customers who bought `item` (a valid order with it on a line), the items on their
/// valid orders placed strictly after their first order of it, by how many of them bought
/// each (ties by item id), at most `limit`. The item itself is listed when re-bought.
pub fn next_purchase(orders: &[Order], item: &ItemId, limit: usize) -> NextPurchase {
    let valid = || {
        orders
            .iter()
            .filter(|o| !o.status.is_reversal() && o.user.is_some())
    };
    let mut first: HashMap<&str, Timestamp> = HashMap::new();
    for o in valid().filter(|o| o.lines.iter().any(|l| l.item == *item)) {
        let Some(user) = o.user.as_ref() else {
            continue;
        };
        let e = first.entry(user.as_str()).or_insert(o.created_at);
        *e = (*e).min(o.created_at);
    }
    let mut later: HashMap<&str, HashSet<&str>> = HashMap::new();
    for o in valid() {
        let Some(user) = o.user.as_ref() else {
            continue;
        };
        if let Some(t0) = first.get(user.as_str())
            && o.created_at > *t0
        {
            let set = later.entry(user.as_str()).or_default();
            set.extend(o.lines.iter().map(|l| l.item.as_str()));
        }
    }
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for items in later.values() {
        for i in items {
            *counts.entry(i).or_default() += 1;
        }
    }
    let buyers = first.len() as u64;
    let mut items: Vec<NextItem> = counts
        .into_iter()
        .map(|(i, n)| NextItem {
            item_id: i.to_owned(),
            customers: n,
            share: n as f64 / buyers.max(1) as f64,
        })
        .collect();
    items.sort_by(|a, b| {
        b.customers
            .cmp(&a.customers)
            .then_with(|| a.item_id.cmp(&b.item_id))
    });
    items.truncate(limit);
    NextPurchase {
        item_id: item.as_str().to_owned(),
        buyers,
        buyers_with_later_orders: later.len() as u64,
        items,
    }
}

/// Events per UTC day and kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DayCounts {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub total: u64,
    /// Kind name → events.
    pub kinds: std::collections::BTreeMap<&'static str, u64>,
}

/// Events (not orders) in `[from, to)` of `kind` (any when `None`), about `item` or an item
/// of `category` when given, counted per UTC day and kind, days in order.
pub fn event_counts(
    touches: &[Touch],
    from: Option<i64>,
    to: Option<i64>,
    kind: Option<EventKind>,
    item: Option<&ItemId>,
    category: Option<&str>,
    categories: &HashMap<ItemId, String>,
) -> Vec<DayCounts> {
    const DAY: i64 = 86_400_000;
    let mut days: std::collections::BTreeMap<i64, DayCounts> = Default::default();
    for t in touches {
        let TouchKind::Event(k) = t.kind else {
            continue;
        };
        if from.is_some_and(|f| t.at < f)
            || to.is_some_and(|e| t.at >= e)
            || kind.is_some_and(|want| want != k)
            || item.is_some_and(|i| !t.items.contains(i))
            || category.is_some_and(|c| {
                !t.items
                    .iter()
                    .any(|i| categories.get(i).is_some_and(|x| x == c))
            })
        {
            continue;
        }
        let day = t.at.div_euclid(DAY);
        let entry = days.entry(day).or_insert_with(|| DayCounts {
            day: Utc
                .timestamp_millis_opt(day * DAY)
                .single()
                .map(|d| d.date_naive().to_string())
                .unwrap_or_default(),
            total: 0,
            kinds: Default::default(),
        });
        entry.total += 1;
        *entry.kinds.entry(k.as_str()).or_default() += 1;
    }
    days.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn t(person: &str, at_h: i64, kind: &str, item: Option<&str>) -> Touch {
        Touch {
            person: person.into(),
            at: at_h * H,
            kind: TouchKind::parse(kind).unwrap(),
            items: item.map(|i| ItemId::new(i).unwrap()).into_iter().collect(),
        }
    }

    fn step(kind: &str, item: Option<&str>, category: Option<&str>) -> Step {
        Step {
            kind: TouchKind::parse(kind).unwrap(),
            item: item.map(|i| ItemId::new(i).unwrap()),
            category: category.map(Into::into),
        }
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-03-06 was a Wednesday; its week starts on Monday 2024-03-04.
        let wed = Utc
            .with_ymd_and_hms(2024, 3, 6, 15, 0, 0)
            .unwrap()
            .timestamp_millis();
        let mon = Utc
            .with_ymd_and_hms(2024, 3, 4, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(week_start(wed), mon);
        assert_eq!(week_start(mon), mon);
        assert_eq!(week_start(mon - 1), mon - 7 * 86_400_000);
    }

    #[test]
    fn a_funnel_counts_people_in_order_within_the_window() {
        let touches = vec![
            // p1: view, cart 1 h later, purchase 3 h after entering: all three steps.
            t("p1", 0, "view", Some("a")),
            t("p1", 1, "add_to_cart", Some("a")),
            t("p1", 3, "purchase", Some("a")),
            // p2: cart before the view does not count; the purchase is out of the window.
            t("p2", 0, "add_to_cart", Some("a")),
            t("p2", 1, "view", Some("a")),
            t("p2", 2, "add_to_cart", Some("b")),
            t("p2", 40, "purchase", Some("b")),
            // p3: a view only.
            t("p3", 5, "view", Some("b")),
            // p4: a first entry that goes nowhere, a later one that converts fully.
            t("p4", 0, "view", Some("c")),
            t("p4", 30, "view", Some("c")),
            t("p4", 31, "add_to_cart", Some("c")),
            t("p4", 32, "purchase", Some("c")),
        ];
        let steps = [
            step("view", None, None),
            step("add_to_cart", None, None),
            step("purchase", None, None),
        ];
        let r = funnel(&touches, &steps, 24 * H, None, None, &HashMap::new());
        let people: Vec<u64> = r.iter().map(|s| s.people).collect();
        assert_eq!(people, [4, 3, 2]);
        assert_eq!(r[1].conversion, 0.75);
        assert_eq!(r[2].from_previous, 2.0 / 3.0);
        // View → cart: p1 1 h, p2 1 h, p4 1 h; cart → purchase: p1 2 h, p4 1 h.
        assert_eq!(r[1].median_seconds_from_previous, Some(3600.0));
        assert_eq!(r[2].median_seconds_from_previous, Some(1.5 * 3600.0));
        assert_eq!(r[0].median_seconds_from_previous, None);
        // A step for one category: only p1's item a is a mug.
        let categories = HashMap::from([(ItemId::new("a").unwrap(), "mugs".to_owned())]);
        let mugs = [
            step("view", None, Some("mugs")),
            step("purchase", None, Some("mugs")),
        ];
        let r = funnel(&touches, &mugs, 24 * H, None, None, &categories);
        assert_eq!(r.iter().map(|s| s.people).collect::<Vec<_>>(), [2, 1]);
        // The range bounds where people enter.
        let r = funnel(&touches, &steps, 24 * H, Some(4 * H), None, &HashMap::new());
        assert_eq!(r.iter().map(|s| s.people).collect::<Vec<_>>(), [2, 1, 1]);
    }

    #[test]
    fn an_order_is_one_touch_so_the_next_order_step_needs_a_later_order() {
        let order = |person: &str, at_h: i64, items: &[&str]| Touch {
            person: person.into(),
            at: at_h * H,
            kind: TouchKind::Order,
            items: items.iter().map(|i| ItemId::new(*i).unwrap()).collect(),
        };
        let touches = vec![
            order("p1", 0, &["a", "b"]),
            order("p2", 0, &["a", "b"]),
            order("p2", 5, &["c"]),
        ];
        let steps = [step("order", Some("a"), None), step("order", None, None)];
        let r = funnel(&touches, &steps, 24 * H, None, None, &HashMap::new());
        assert_eq!(r.iter().map(|s| s.people).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(r[1].median_seconds_from_previous, Some(5.0 * 3600.0));
        // A step for an item matches an order with it on any line.
        let b = [
            step("order", Some("b"), None),
            step("order", Some("c"), None),
        ];
        let r = funnel(&touches, &b, 24 * H, None, None, &HashMap::new());
        assert_eq!(r.iter().map(|s| s.people).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn retention_follows_each_weekly_cohort() {
        const W: i64 = 7 * 24;
        // 1970-01-05 (hour 96) was a Monday: weeks start at 96 + n * W hours.
        let w = |n: i64, extra: i64| 96 + n * W + extra;
        let touches = vec![
            t("u1", w(0, 1), "view", None),
            t("u1", w(1, 2), "view", None),
            t("u1", w(3, 0), "order", Some("a")),
            t("u2", w(0, 50), "view", None),
            t("u2", w(2, 5), "view", None),
            t("u3", w(1, 0), "view", None),
            t("u3", w(2, 0), "click", None),
            t("session:x", w(0, 0), "view", None),
        ];
        let r = retention(&touches, &[], 8, None, None);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].week, "1970-01-05");
        assert_eq!(r[0].people, 2, "anonymous sessions are not customers");
        assert_eq!(r[0].active, [2, 1, 1, 1]);
        assert_eq!(r[0].share, [1.0, 0.5, 0.5, 0.5]);
        assert_eq!(r[1].active, [1, 1, 0]);
        // Only orders: u1 alone, first active in week 3.
        let r = retention(&touches, &[TouchKind::Order], 8, None, None);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].people, r[0].active.clone()), (1, vec![1]));
        // At most `weeks` columns.
        assert_eq!(retention(&touches, &[], 2, None, None)[0].active, [2, 1]);
    }
}
