//! A known customer or viewer.

use crate::{Result, Timestamp, UserId, ValidationError, check_text};

/// A customer. Segment exports only include users with `marketing_consent` unless the analyst
/// explicitly asks otherwise.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub created_at: Timestamp,
    /// Country name or ISO code, as the source gives it.
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub marketing_consent: bool,
    /// Contact address for CRM exports, when the shop shares it.
    #[serde(default)]
    pub email: Option<String>,
}

impl User {
    /// A user with no country, no email and no marketing consent.
    pub fn new(id: UserId, created_at: Timestamp) -> Self {
        Self {
            id,
            created_at,
            country: None,
            marketing_consent: false,
            email: None,
        }
    }

    /// Checks the optional text fields.
    pub fn validate(&self) -> Result<()> {
        if let Some(country) = &self.country {
            check_text("country", country, 100)?;
        }
        if let Some(email) = &self.email {
            check_text("email", email, 320)?;
            if !email.contains('@') {
                return Err(ValidationError::Invalid {
                    field: "email",
                    message: format!("{email:?} has no @"),
                });
            }
        }
        Ok(())
    }
}
