//! Newtype identifiers. Every id is the external string id of the shop or the data set, kept
//! as given (so exports and recommendations name things the way the source does).

use crate::{Result, check_text};

/// The longest id accepted, in characters.
pub const MAX_ID_LEN: usize = 256;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id: not empty, at most 256 characters, no control
            /// characters.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_text($field, &value, MAX_ID_LEN)?;
                Ok(Self(value))
            }

            /// The id as the source wrote it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the id.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::ValidationError;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = crate::ValidationError;
            fn try_from(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A catalog item (product, movie, episode).
    ItemId,
    "item_id"
);
string_id!(
    /// A known customer or viewer.
    UserId,
    "user_id"
);
string_id!(
    /// An order (invoice).
    OrderId,
    "order_id"
);
string_id!(
    /// A behaviour event, chosen by the client so that a retried event is stored once.
    EventId,
    "event_id"
);
string_id!(
    /// An anonymous browsing session (a visitor without a user id).
    SessionId,
    "session_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidationError;

    #[test]
    fn ids_reject_empty_blank_long_and_control_characters() {
        assert_eq!(
            ItemId::new(""),
            Err(ValidationError::Empty { field: "item_id" })
        );
        assert_eq!(
            UserId::new("   "),
            Err(ValidationError::Empty { field: "user_id" })
        );
        assert!(matches!(
            OrderId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(ValidationError::TooLong {
                field: "order_id",
                ..
            })
        ));
        assert_eq!(
            EventId::new("a\nb"),
            Err(ValidationError::ControlCharacter { field: "event_id" })
        );
        assert_eq!(ItemId::new("85123A").unwrap().as_str(), "85123A");
    }

    #[test]
    fn ids_validate_when_deserialised() {
        let ok: ItemId = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(ok.as_str(), "42");
        let err = serde_json::from_str::<ItemId>("\"\"").unwrap_err();
        assert!(
            err.to_string().contains("item_id must not be empty"),
            "{err}"
        );
    }
}
