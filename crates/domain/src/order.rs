//! Orders and their lines.

use crate::{ItemId, Money, OrderId, Result, Timestamp, UserId, ValidationError};

/// Where an order is in its life. Cancelled and refunded orders count against their items in
/// statistics and models, not for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        Self::Placed,
        Self::Paid,
        Self::Shipped,
        Self::Cancelled,
        Self::Refunded,
    ];

    /// The stable snake_case name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| ValidationError::Invalid {
                field: "status",
                message: format!(
                    "{name:?} is not one of placed, paid, shipped, cancelled, refunded"
                ),
            })
    }

    /// True for cancelled and refunded orders, whose lines count against their items.
    pub fn is_reversal(self) -> bool {
        matches!(self, Self::Cancelled | Self::Refunded)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderLine {
    pub item: ItemId,
    /// Units ordered; always positive (a cancellation is an order status, not a negative line).
    pub quantity: u32,
    pub unit_price: Money,
}

impl OrderLine {
    /// Checks quantity (positive) and unit price (not negative).
    pub fn validate(&self) -> Result<()> {
        if self.quantity == 0 {
            return Err(ValidationError::OutOfRange {
                field: "quantity",
                message: "must be at least 1".into(),
            });
        }
        self.unit_price.non_negative("unit_price")?;
        Ok(())
    }

    /// Builds a line from a signed quantity as data sets write it, refusing zero and
    /// negative quantities.
    pub fn from_signed(item: ItemId, quantity: i64, unit_price: Money) -> Result<Self> {
        if quantity <= 0 {
            return Err(ValidationError::OutOfRange {
                field: "quantity",
                message: format!("{quantity} is not a positive quantity"),
            });
        }
        let quantity = u32::try_from(quantity).map_err(|_| ValidationError::OutOfRange {
            field: "quantity",
            message: format!("{quantity} is too large"),
        })?;
        let line = Self {
            item,
            quantity,
            unit_price,
        };
        line.validate()?;
        Ok(line)
    }

    /// quantity × unit price, in minor units.
    pub fn total_minor(&self) -> i64 {
        i64::from(self.quantity) * self.unit_price.minor
    }
}

/// An order (an invoice). Anonymous orders (`user: None`) are kept for item statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub user: Option<UserId>,
    pub created_at: Timestamp,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
}

impl Order {
    /// Checks that the order has lines, that each line is valid and that all lines share one
    /// currency.
    pub fn validate(&self) -> Result<()> {
        let Some(first) = self.lines.first() else {
            return Err(ValidationError::Empty { field: "lines" });
        };
        for line in &self.lines {
            line.validate()?;
            if line.unit_price.currency != first.unit_price.currency {
                return Err(ValidationError::Invalid {
                    field: "lines",
                    message: "all lines of an order must use one currency".into(),
                });
            }
        }
        Ok(())
    }

    /// Sum of the lines, in minor units of the order's currency.
    pub fn total_minor(&self) -> i64 {
        self.lines.iter().map(OrderLine::total_minor).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn gbp(minor: i64) -> Money {
        Money::new(minor, Currency::new("GBP").unwrap())
    }

    #[test]
    fn negative_and_zero_quantities_are_refused() {
        let item = ItemId::new("A").unwrap();
        assert_eq!(
            OrderLine::from_signed(item.clone(), -3, gbp(100))
                .unwrap_err()
                .field(),
            "quantity"
        );
        assert!(OrderLine::from_signed(item.clone(), 0, gbp(100)).is_err());
        assert_eq!(
            OrderLine::from_signed(item.clone(), 2, gbp(-1))
                .unwrap_err()
                .field(),
            "unit_price"
        );
        assert_eq!(
            OrderLine::from_signed(item, 3, gbp(255))
                .unwrap()
                .total_minor(),
            765
        );
    }

    #[test]
    fn orders_need_lines_in_one_currency() {
        let mut order = Order {
            id: OrderId::new("536365").unwrap(),
            user: None,
            created_at: chrono::Utc::now(),
            status: OrderStatus::Paid,
            lines: vec![],
        };
        assert_eq!(order.validate().unwrap_err().field(), "lines");
        order
            .lines
            .push(OrderLine::from_signed(ItemId::new("A").unwrap(), 1, gbp(10)).unwrap());
        order.lines.push(OrderLine {
            item: ItemId::new("B").unwrap(),
            quantity: 1,
            unit_price: Money::new(10, Currency::new("EUR").unwrap()),
        });
        assert!(order.validate().is_err());
        order.lines.pop();
        order.validate().unwrap();
    }

    #[test]
    fn status_names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(OrderStatus::parse("lost").is_err());
        assert!(OrderStatus::Refunded.is_reversal());
        assert!(!OrderStatus::Shipped.is_reversal());
    }
}
