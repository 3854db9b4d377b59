//! How much each behaviour counts towards a user's interest in an item: the one definition
//! that training (the feature pipelines) and serving (the engine's real-time fold-in) share.
//! Every model's manifest records the weights it was trained with.

use crate::EventKind;

/// How much each behaviour counts towards a user's interest in an item.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    pub view: f32,
    pub click: f32,
    pub add_to_cart: f32,
    pub remove_from_cart: f32,
    pub wishlist: f32,
    pub purchase: f32,
    /// A rating counts `rating_per_star × stars`.
    pub rating_per_star: f32,
    /// A dwell counts `dwell_per_minute × minutes`, at most `dwell_cap`.
    pub dwell_per_minute: f32,
    pub dwell_cap: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        Self {
            view: 1.0,
            click: 1.0,
            add_to_cart: 3.0,
            remove_from_cart: -2.0,
            wishlist: 3.0,
            purchase: 5.0,
            rating_per_star: 1.0,
            dwell_per_minute: 0.5,
            dwell_cap: 3.0,
        }
    }
}

impl EventWeights {
    /// The weight of one event (before time decay).
    pub fn weight(&self, kind: EventKind, value: Option<f32>) -> f32 {
        match kind {
            EventKind::View => self.view,
            EventKind::Click => self.click,
            EventKind::AddToCart => self.add_to_cart,
            EventKind::RemoveFromCart => self.remove_from_cart,
            EventKind::Wishlist => self.wishlist,
            EventKind::Purchase => self.purchase,
            EventKind::Rating => self.rating_per_star * value.unwrap_or(0.0),
            EventKind::Dwell => {
                (self.dwell_per_minute * value.unwrap_or(0.0) / 60.0).min(self.dwell_cap)
            }
        }
    }
}

/// Weighted (user, item) pairs summed from events and orders in plain Rust, without time
/// decay: the same sums as the training pipeline's interactions with no half-life (an event
/// weighs by its kind, a line of a valid order adds a purchase, a line of a cancelled or
/// refunded order subtracts one, pairs that end at zero or below are dropped, anonymous
/// sessions count as users named `session:<id>`). `serve` uses it to fit a first model on
/// first start without linking the pipelines.
#[derive(Debug, Default)]
pub struct PairWeights {
    weights: EventWeights,
    pairs: std::collections::HashMap<(String, String), (f64, i64)>,
}

impl PairWeights {
    pub fn new(weights: EventWeights) -> Self {
        Self {
            weights,
            pairs: Default::default(),
        }
    }

    fn add(&mut self, user: String, item: &str, weight: f64, ms: i64) {
        let entry = self
            .pairs
            .entry((user, item.to_owned()))
            .or_insert((0.0, i64::MIN));
        entry.0 += weight;
        entry.1 = entry.1.max(ms);
    }

    /// Counts one event (events without an item count for nothing).
    pub fn add_event(&mut self, e: &crate::Event) {
        let Some(item) = &e.item else { return };
        let w = f64::from(self.weights.weight(e.kind, e.value));
        self.add(
            e.actor.interaction_key(),
            item.as_str(),
            w,
            e.timestamp.timestamp_millis(),
        );
    }

    /// Counts every line of an order (anonymous orders count for nothing).
    pub fn add_order(&mut self, o: &crate::Order) {
        let Some(user) = &o.user else { return };
        let sign = if o.status.is_reversal() { -1.0 } else { 1.0 };
        let w = sign * f64::from(self.weights.purchase);
        for line in &o.lines {
            self.add(
                user.as_str().to_owned(),
                line.item.as_str(),
                w,
                o.created_at.timestamp_millis(),
            );
        }
    }

    /// (user, item, weight, newest time in Unix ms) of the pairs with a positive weight,
    /// sorted by user and item.
    pub fn into_rows(self) -> Vec<(String, String, f32, i64)> {
        let mut rows: Vec<_> = self
            .pairs
            .into_iter()
            .filter(|(_, (w, _))| *w > 0.0)
            .map(|((u, i), (w, t))| (u, i, w as f32, t))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    }
}
