//! Domain types of the Marquee engine: identifiers, the catalog ([`Item`]), customers
//! ([`User`]), orders ([`Order`], [`OrderLine`]), behaviour events ([`Event`]) and money
//! ([`Money`]).
//!
//! This crate owns the rules of what a valid value is (an id is never empty, a rating is
//! within its star range, an order line has a positive quantity, an event is not from the far
//! future) and reports a broken rule as a typed [`ValidationError`]. It also holds the one
//! seeded random generator ([`rng`]) that data generation and data splits share, so that a seed
//! reproduces the same numbers everywhere. It does no I/O and knows
//! no storage, HTTP or model: every other crate builds on it. All types are plain data, `Send`
//! and `Sync`.

mod event;
mod ids;
mod item;
mod money;
mod order;
pub mod rng;
mod user;
mod weights;

pub use event::{Actor, Event, EventKind, MAX_DWELL_SECONDS, MAX_FUTURE_SKEW, RATING_RANGE};
pub use ids::{EventId, ItemId, OrderId, SessionId, UserId};
pub use item::{Item, MAX_CATEGORY_LEN};
pub use money::{Currency, Money};
pub use order::{Order, OrderLine, OrderStatus};
pub use user::User;
pub use weights::{EventWeights, PairWeights};

/// A timestamp as the engine stores it: UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Why a value was refused. The `field` names what the caller must fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is too long ({len} characters; at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} contains a control character")]
    ControlCharacter { field: &'static str },
    #[error("{field} is out of range: {message}")]
    OutOfRange {
        field: &'static str,
        message: String,
    },
    #[error("{field} is invalid: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl ValidationError {
    /// The name of the field the error is about, for error bodies and import reports.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::ControlCharacter { field }
            | Self::OutOfRange { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ValidationError> = std::result::Result<T, E>;

/// Checks a free-text field that must be present: not empty after trimming, at most `max`
/// characters, no control characters.
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { field, len, max });
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacter { field });
    }
    Ok(())
}
