//! Placing an order from a storefront as one store operation: the prices come from the
//! catalog (never from the client), hidden, unpriced and out-of-stock items are refused, the
//! order is validated, and a retry under the same order id is answered with the stored order
//! (a different order under it is refused). The user and the order are written in one
//! transaction.

use crate::{Error, Result, Store};
use marquee_domain::{ItemId, Order, OrderId, OrderLine, OrderStatus, Timestamp, User, UserId};
use std::collections::HashMap;

/// One line as the customer asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub item: ItemId,
    pub quantity: u32,
}

/// An order as the customer asks for it: items and quantities, no prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Client-chosen, for idempotent retries.
    pub id: OrderId,
    pub user: UserId,
    pub lines: Vec<LineRequest>,
    /// When it is placed (stored to the millisecond).
    pub at: Timestamp,
}

/// What [`Store::place_order`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Placed {
    /// A new order, as stored.
    Created(Order),
    /// The same order had been placed before under this id: the stored one.
    Existing(Order),
}

/// Why an order was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefused {
    #[error("there is no item {item:?}")]
    UnknownItem { line: usize, item: String },
    #[error("item {0:?} has no price")]
    NotForSale(String),
    #[error("item {0:?} is out of stock")]
    OutOfStock(String),
    #[error("order {0:?} exists with other lines or another user")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

impl Store {
    /// Places `request` at catalog prices; see the module documentation. A refusal is
    /// [`Error::OrderRefused`].
    pub async fn place_order(&self, request: &OrderRequest) -> Result<Placed> {
        let ids: Vec<ItemId> = request.lines.iter().map(|l| l.item.clone()).collect();
        let catalog: HashMap<ItemId, marquee_domain::Item> = self
            .items_by_ids(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let mut lines = Vec::with_capacity(request.lines.len());
        for (n, line) in request.lines.iter().enumerate() {
            let name = line.item.as_str().to_owned();
            let item = catalog
                .get(&line.item)
                .filter(|i| !i.hidden)
                .ok_or_else(|| OrderRefused::UnknownItem {
                    line: n,
                    item: name.clone(),
                })?;
            let price = item.price.ok_or(OrderRefused::NotForSale(name.clone()))?;
            if !item.in_stock {
                return Err(OrderRefused::OutOfStock(name).into());
            }
            lines.push(OrderLine {
                item: line.item.clone(),
                quantity: line.quantity,
                unit_price: price,
            });
        }
        let at = request.at;
        let order = Order {
            id: request.id.clone(),
            user: Some(request.user.clone()),
            created_at: chrono::DateTime::from_timestamp_millis(at.timestamp_millis())
                .unwrap_or(at),
            status: OrderStatus::Placed,
            lines,
        };
        order
            .validate()
            .map_err(|e| OrderRefused::Invalid(e.to_string()))?;
        if let Some(existing) = self.order(&order.id).await? {
            let same = existing.user == order.user
                && existing.lines.len() == order.lines.len()
                && existing
                    .lines
                    .iter()
                    .zip(&order.lines)
                    .all(|(a, b)| a.item == b.item && a.quantity == b.quantity);
            return if same {
                Ok(Placed::Existing(existing))
            } else {
                Err(OrderRefused::Conflict(order.id.as_str().to_owned()).into())
            };
        }
        let mut import = self.begin_import().await?;
        import
            .ensure_users(&[User::new(request.user.clone(), order.created_at)])
            .await?;
        import.put_orders(std::slice::from_ref(&order)).await?;
        import.commit().await?;
        Ok(Placed::Created(order))
    }
}

impl From<OrderRefused> for Error {
    fn from(e: OrderRefused) -> Self {
        Self::OrderRefused(e)
    }
}
