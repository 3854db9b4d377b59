//! What orders say, for the `frequently_bought_together` and `buy_again` strategies: per item,
//! the other items bought in the same orders and in how many; per customer, what they bought
//! and when; per item, the gaps between one customer's consecutive purchases of it.
//!
//! Built from every order when serving starts ([`Engine::add_orders`]) and kept current as
//! orders arrive; cancelled and refunded orders are left out (and taken out again when an
//! order's status changes to one of them, [`Engine::remove_order`]). Each order counts once,
//! however often it is added.

use crate::Engine;
use marquee_domain::{Order, OrderStatus};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub(crate) struct Purchases {
    ids: HashMap<String, u32>,
    pub(crate) names: Vec<String>,
    /// Per item: (other item, orders holding both), sorted by the other item.
    pairs: Vec<Vec<(u32, u32)>>,
    /// Per customer: (item, purchase time in Unix ms), in the order added.
    by_user: HashMap<String, Vec<(u32, i64)>>,
    /// Per item: days between one customer's consecutive purchases of it.
    gaps: Vec<Vec<f32>>,
    /// Orders counted, with their distinct items (to take them out again).
    counted: HashMap<String, Vec<u32>>,
    /// Orders taken out (cancelled or refunded): never counted again.
    removed: HashSet<String>,
}

impl Purchases {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(id.to_owned(), i);
        self.names.push(id.to_owned());
        self.pairs.push(Vec::new());
        self.gaps.push(Vec::new());
        i
    }

    pub(crate) fn index(&self, id: &str) -> Option<u32> {
        self.ids.get(id).copied()
    }

    fn add(&mut self, order: &Order) {
        let id = order.id.as_str();
        if matches!(order.status, OrderStatus::Cancelled | OrderStatus::Refunded) {
            self.remove(id);
            return;
        }
        if self.counted.contains_key(id) || self.removed.contains(id) {
            return;
        }
        let mut items: Vec<u32> = order
            .lines
            .iter()
            .map(|l| self.intern(l.item.as_str()))
            .collect();
        items.sort_unstable();
        items.dedup();
        for (n, &a) in items.iter().enumerate() {
            for &b in items.iter().skip(n + 1) {
                bump(&mut self.pairs[a as usize], b, 1);
                bump(&mut self.pairs[b as usize], a, 1);
            }
        }
        if let Some(user) = &order.user {
            let at = order.created_at.timestamp_millis();
            let bought = self.by_user.entry(user.as_str().to_owned()).or_default();
            for &i in &items {
                if let Some(&(_, last)) = bought.iter().rev().find(|(j, _)| *j == i) {
                    let days = (at - last).abs() as f32 / 86_400_000.0;
                    if days > 0.0 {
                        self.gaps[i as usize].push(days);
                    }
                }
                bought.push((i, at));
            }
        }
        self.counted.insert(id.to_owned(), items);
    }

    fn remove(&mut self, id: &str) {
        self.removed.insert(id.to_owned());
        let Some(items) = self.counted.remove(id) else {
            return;
        };
        for (n, &a) in items.iter().enumerate() {
            for &b in items.iter().skip(n + 1) {
                bump(&mut self.pairs[a as usize], b, -1);
                bump(&mut self.pairs[b as usize], a, -1);
            }
        }
    }

    /// Items bought together with any of `items` (indices), with the number of orders, not
    /// counting `items` themselves; unordered.
    pub(crate) fn together(&self, items: &[u32], out: &mut HashMap<u32, u32>) {
        for &i in items {
            for &(j, n) in &self.pairs[i as usize] {
                if n > 0 && !items.contains(&j) {
                    *out.entry(j).or_default() += n;
                }
            }
        }
    }

    /// What `user` bought: per item, (times bought, last purchase in Unix ms).
    pub(crate) fn bought_by(&self, user: &str) -> HashMap<u32, (u32, i64)> {
        let mut out: HashMap<u32, (u32, i64)> = HashMap::new();
        for &(i, at) in self.by_user.get(user).map_or(&[][..], Vec::as_slice) {
            let e = out.entry(i).or_insert((0, i64::MIN));
            e.0 += 1;
            e.1 = e.1.max(at);
        }
        out
    }

    /// The median days between one customer's consecutive purchases of `item`, if anyone
    /// bought it twice.
    pub(crate) fn typical_interval(&self, item: u32) -> Option<f32> {
        let gaps = self.gaps.get(item as usize)?;
        if gaps.is_empty() {
            return None;
        }
        let mut sorted = gaps.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        let n = sorted.len();
        Some(if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        })
    }
}

/// Adds `by` to the count of `other` in a sorted list of (item, count).
fn bump(list: &mut Vec<(u32, u32)>, other: u32, by: i32) {
    match list.binary_search_by_key(&other, |&(j, _)| j) {
        Ok(at) => list[at].1 = list[at].1.saturating_add_signed(by),
        Err(at) if by > 0 => list.insert(at, (other, by as u32)),
        Err(_) => {}
    }
}

impl Engine {
    /// Counts orders for frequently-bought-together and buy-again answers (an order counted
    /// already is skipped; a cancelled or refunded one is taken out).
    pub fn add_orders<'a>(&self, orders: impl IntoIterator<Item = &'a Order>) {
        let shared = self.purchases.load();
        let mut p = shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for o in orders {
            p.add(o);
        }
    }

    /// Shares `other`'s order counts (an experiment's engine answers from the same orders).
    pub fn share_orders(&self, other: &Engine) {
        self.purchases.store(other.purchases.load_full());
    }

    /// Takes an order out (it was cancelled or refunded).
    pub fn remove_order(&self, id: &str) {
        self.purchases
            .load()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// How many orders holding `a` also hold `b` (cancelled and refunded left out).
    pub fn bought_together_count(&self, a: &str, b: &str) -> u32 {
        let shared = self.purchases.load();
        let p = shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (Some(a), Some(b)) = (p.index(a), p.index(b)) else {
            return 0;
        };
        p.pairs[a as usize]
            .binary_search_by_key(&b, |&(j, _)| j)
            .map_or(0, |at| p.pairs[a as usize][at].1)
    }
}
