//! Behaviour events: what users and anonymous visitors do with items.

use crate::{EventId, ItemId, Result, SessionId, Timestamp, UserId, ValidationError};
use std::ops::RangeInclusive;

/// Ratings are stars from half a star to five (MovieLens, Watcha).
pub const RATING_RANGE: RangeInclusive<f32> = 0.5..=5.0;
/// The longest dwell accepted, in seconds (one day).
pub const MAX_DWELL_SECONDS: f32 = 86_400.0;
/// How far in the future an event's timestamp may be, to allow for client clock skew.
pub const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What happened.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    View,
    Click,
    AddToCart,
    RemoveFromCart,
    Wishlist,
    Purchase,
    /// `value` holds the stars.
    Rating,
    /// `value` holds the seconds spent.
    Dwell,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        Self::View,
        Self::Click,
        Self::AddToCart,
        Self::RemoveFromCart,
        Self::Wishlist,
        Self::Purchase,
        Self::Rating,
        Self::Dwell,
    ];

    /// The stable snake_case name used in storage, files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Wishlist => "wishlist",
            Self::Purchase => "purchase",
            Self::Rating => "rating",
            Self::Dwell => "dwell",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| ValidationError::Invalid {
                field: "kind",
                message: format!(
                    "{name:?} is not one of view, click, add_to_cart, remove_from_cart, wishlist, purchase, rating, dwell"
                ),
            })
    }

    /// Kinds that are about one item and are meaningless without it.
    pub fn needs_item(self) -> bool {
        !matches!(self, Self::View | Self::Click | Self::Dwell)
    }
}

/// Who did it: a known user, or an anonymous session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    User(UserId),
    Session(SessionId),
}

impl Actor {
    /// The user key of this actor in interaction matrices: the user id, or `session:<id>`
    /// for an anonymous session.
    pub fn interaction_key(&self) -> String {
        match self {
            Self::User(u) => u.as_str().to_owned(),
            Self::Session(s) => format!("session:{}", s.as_str()),
        }
    }
}

/// One behaviour event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Chosen by the client; a retried event with the same id is stored once.
    pub id: EventId,
    pub actor: Actor,
    pub item: Option<ItemId>,
    pub kind: EventKind,
    /// Stars for a rating, seconds for a dwell; absent otherwise.
    pub value: Option<f32>,
    pub timestamp: Timestamp,
    /// Free-form context (page, device, position), a JSON object.
    #[serde(default)]
    pub context: Option<serde_json::Value>,
}

impl Event {
    /// Checks the event against `now`: the item is present where the kind needs it, a rating's
    /// stars are within [`RATING_RANGE`], a dwell is 0..=[`MAX_DWELL_SECONDS`], no other kind
    /// carries a value, the timestamp is at most [`MAX_FUTURE_SKEW`] ahead of `now` and not
    /// before 1970, and the context is a JSON object.
    pub fn validate(&self, now: Timestamp) -> Result<()> {
        if self.kind.needs_item() && self.item.is_none() {
            return Err(ValidationError::Invalid {
                field: "item_id",
                message: format!("a {} event needs an item", self.kind.as_str()),
            });
        }
        match (self.kind, self.value) {
            (EventKind::Rating, None) => {
                return Err(ValidationError::Invalid {
                    field: "value",
                    message: "a rating needs its stars in value".into(),
                });
            }
            (EventKind::Rating, Some(stars)) if !RATING_RANGE.contains(&stars) => {
                return Err(ValidationError::OutOfRange {
                    field: "value",
                    message: format!(
                        "rating {stars} is outside {}..={}",
                        RATING_RANGE.start(),
                        RATING_RANGE.end()
                    ),
                });
            }
            (EventKind::Dwell, Some(secs)) if !(0.0..=MAX_DWELL_SECONDS).contains(&secs) => {
                return Err(ValidationError::OutOfRange {
                    field: "value",
                    message: format!("dwell of {secs} seconds is outside 0..={MAX_DWELL_SECONDS}"),
                });
            }
            (EventKind::Rating | EventKind::Dwell, _) | (_, None) => {}
            (kind, Some(_)) => {
                return Err(ValidationError::Invalid {
                    field: "value",
                    message: format!("a {} event carries no value", kind.as_str()),
                });
            }
        }
        if self.timestamp > now + MAX_FUTURE_SKEW {
            return Err(ValidationError::OutOfRange {
                field: "timestamp",
                message: format!("{} is in the future", self.timestamp.to_rfc3339()),
            });
        }
        if self.timestamp.timestamp() < 0 {
            return Err(ValidationError::OutOfRange {
                field: "timestamp",
                message: format!("{} is before 1970", self.timestamp.to_rfc3339()),
            });
        }
        if let Some(context) = &self.context {
            if !context.is_object() {
                return Err(ValidationError::Invalid {
                    field: "context",
                    message: "must be a JSON object".into(),
                });
            }
            // A NUL character cannot be stored as text by every backend (PostgreSQL).
            if context.to_string().contains("\\u0000") {
                return Err(ValidationError::ControlCharacter { field: "context" });
            }
        }
        Ok(())
    }

    /// The user id, for events of known users.
    pub fn user(&self) -> Option<&UserId> {
        match &self.actor {
            Actor::User(u) => Some(u),
            Actor::Session(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn rating(stars: f32) -> Event {
        Event {
            id: EventId::new("e1").unwrap(),
            actor: Actor::User(UserId::new("u1").unwrap()),
            item: Some(ItemId::new("i1").unwrap()),
            kind: EventKind::Rating,
            value: Some(stars),
            timestamp: now() - TimeDelta::days(1),
            context: None,
        }
    }

    #[test]
    fn a_context_must_be_an_object_without_nul() {
        let mut e = rating(4.0);
        e.context = Some(serde_json::json!({"page": "home", "q": "a\\b \"c\""}));
        e.validate(now()).unwrap();
        e.context = Some(serde_json::json!({"q": "a\u{0}b"}));
        assert_eq!(e.validate(now()).unwrap_err().field(), "context");
        e.context = Some(serde_json::json!(["home"]));
        assert_eq!(e.validate(now()).unwrap_err().field(), "context");
    }

    #[test]
    fn ratings_must_be_in_star_range() {
        rating(0.5).validate(now()).unwrap();
        rating(5.0).validate(now()).unwrap();
        for bad in [0.0, 5.5, -1.0, f32::NAN] {
            let err = rating(bad).validate(now()).unwrap_err();
            assert_eq!(err.field(), "value", "{bad}");
        }
        let mut no_stars = rating(3.0);
        no_stars.value = None;
        assert_eq!(no_stars.validate(now()).unwrap_err().field(), "value");
    }

    #[test]
    fn timestamps_far_in_the_future_are_refused_but_small_skew_is_not() {
        let mut e = rating(4.0);
        e.timestamp = now() + TimeDelta::minutes(2);
        e.validate(now()).unwrap();
        e.timestamp = now() + TimeDelta::days(2);
        assert_eq!(e.validate(now()).unwrap_err().field(), "timestamp");
    }

    #[test]
    fn kinds_that_need_an_item_require_it() {
        let mut e = rating(4.0);
        e.kind = EventKind::Purchase;
        e.value = None;
        e.validate(now()).unwrap();
        e.item = None;
        assert_eq!(e.validate(now()).unwrap_err().field(), "item_id");
        e.kind = EventKind::View;
        e.validate(now()).unwrap();
        e.value = Some(1.0);
        assert_eq!(e.validate(now()).unwrap_err().field(), "value");
    }

    #[test]
    fn dwell_is_bounded_and_kinds_parse() {
        let mut e = rating(4.0);
        e.kind = EventKind::Dwell;
        e.value = Some(30.0);
        e.validate(now()).unwrap();
        e.value = Some(-1.0);
        assert!(e.validate(now()).is_err());
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()).unwrap(), k);
        }
        assert_eq!(EventKind::parse("like").unwrap_err().field(), "kind");
    }

    #[test]
    fn events_serialise_with_snake_case_kinds() {
        let json = serde_json::to_value(rating(4.5)).unwrap();
        assert_eq!(json["kind"], "rating");
        assert_eq!(json["actor"]["user"], "u1");
    }
}
