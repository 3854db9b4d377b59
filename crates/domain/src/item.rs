//! A catalog item: a product of a shop or a title of a streaming service.

use crate::{ItemId, Money, Result, Timestamp, ValidationError, check_text};

/// The longest title accepted, in characters.
pub const MAX_TITLE_LEN: usize = 1_000;
/// The longest category or genre name accepted, in characters.
pub const MAX_CATEGORY_LEN: usize = 200;

/// A catalog item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    pub id: ItemId,
    pub title: String,
    /// The main category (a product type, or a movie's first genre).
    pub category: String,
    /// Further genres or tags, in source order.
    #[serde(default)]
    pub genres: Vec<String>,
    /// Price; `None` for titles of a subscription service that are not sold one by one.
    #[serde(default)]
    pub price: Option<Money>,
    /// Out-of-stock items are never recommended.
    #[serde(default = "yes")]
    pub in_stock: bool,
    /// Hidden items (withdrawn titles, fees, vouchers) are never recommended or listed.
    #[serde(default)]
    pub hidden: bool,
    pub created_at: Timestamp,
    /// Free-form attributes from the catalog (JSON object).
    #[serde(default = "empty_object")]
    pub attributes: serde_json::Value,
}

fn yes() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Item {
    /// An in-stock, visible item with no genres, price or attributes.
    pub fn new(
        id: ItemId,
        title: impl Into<String>,
        category: impl Into<String>,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            title: title.into(),
            category: category.into(),
            genres: Vec::new(),
            price: None,
            in_stock: true,
            hidden: false,
            created_at,
            attributes: empty_object(),
        }
    }

    /// Checks every field: title and category present and of sane length, genres likewise,
    /// price not negative, attributes a JSON object.
    pub fn validate(&self) -> Result<()> {
        check_text("title", &self.title, MAX_TITLE_LEN)?;
        check_text("category", &self.category, MAX_CATEGORY_LEN)?;
        for genre in &self.genres {
            check_text("genres", genre, MAX_CATEGORY_LEN)?;
        }
        if let Some(price) = self.price {
            price.non_negative("price")?;
        }
        if !self.attributes.is_object() {
            return Err(ValidationError::Invalid {
                field: "attributes",
                message: "must be a JSON object".into(),
            });
        }
        // A NUL character cannot be stored as text by every backend (PostgreSQL).
        if self.attributes.to_string().contains("\\u0000") {
            return Err(ValidationError::ControlCharacter {
                field: "attributes",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn item() -> Item {
        Item::new(
            ItemId::new("1").unwrap(),
            "Toy Story (1995)",
            "Adventure",
            chrono::Utc::now(),
        )
    }

    #[test]
    fn a_plain_item_is_valid() {
        item().validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let mut it = item();
        it.title = " ".into();
        assert_eq!(it.validate().unwrap_err().field(), "title");
        let mut it = item();
        it.price = Some(Money::new(-1, Currency::new("EUR").unwrap()));
        assert_eq!(it.validate().unwrap_err().field(), "price");
        let mut it = item();
        it.attributes = serde_json::json!([1, 2]);
        assert_eq!(it.validate().unwrap_err().field(), "attributes");
    }
}
