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
