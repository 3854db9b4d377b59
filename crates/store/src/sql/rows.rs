//! Conversions from rows to domain values, shared by every area's queries.
//! Expanded inside a backend module by [`super::sql_backend!`].

/// The row conversions for one backend's row type.
macro_rules! sql_rows {
    ($Row:ty) => {
        /// A user from `id, created_at, country, marketing_consent, email`.
        fn user_from_row(r: &$Row) -> Result<User> {
            Ok(User {
                id: UserId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                created_at: from_ms(r.try_get(1)?)?,
                country: r.try_get(2)?,
                marketing_consent: r.try_get(3)?,
                email: r.try_get(4)?,
            })
        }

        /// An item from the columns of [`ITEM_SELECT`].
        fn item_from_row(r: &$Row) -> Result<Item> {
            let price = match (
                r.try_get::<Option<i64>, _>(4)?,
                r.try_get::<Option<String>, _>(5)?,
            ) {
                (Some(minor), Some(currency)) => Some(Money::new(
                    minor,
                    Currency::new(&currency).map_err(corrupt)?,
                )),
                _ => None,
            };
            let genres: Vec<String> = serde_json::from_str(&r.try_get::<String, _>(3)?)
                .map_err(|e| Error::Corrupt(format!("item genres: {e}")))?;
            let attributes = serde_json::from_str(&r.try_get::<String, _>(9)?)
                .map_err(|e| Error::Corrupt(format!("item attributes: {e}")))?;
            Ok(Item {
                id: ItemId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                title: r.try_get(1)?,
                category: r.try_get(2)?,
                genres,
                price,
                in_stock: r.try_get(6)?,
                hidden: r.try_get(7)?,
                created_at: from_ms(r.try_get(8)?)?,
                attributes,
            })
        }

        /// An event from the columns of [`EVENT_SELECT`].
        fn event_from_row(r: &$Row) -> Result<Event> {
            let context = r
                .try_get::<Option<String>, _>(7)?
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| Error::Corrupt(format!("event context: {e}")))?;
            $crate::sql::rows::event_from_parts((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                context,
            ))
        }

        /// An order from `id, user_id, created_at, status` and its lines.
        fn order_from_row(r: &$Row, lines: Vec<OrderLine>) -> Result<Order> {
            $crate::sql::rows::order_from_parts(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                &r.try_get::<String, _>(3)?,
                lines,
            )
        }

        /// An order line from columns `item_id, quantity, unit_price_minor, currency` starting
        /// at column `first`.
        fn line_from_row(l: &$Row, first: usize) -> Result<OrderLine> {
            $crate::sql::rows::line_from_parts(
                l.try_get(first)?,
                l.try_get(first + 1)?,
                l.try_get(first + 2)?,
                &l.try_get::<String, _>(first + 3)?,
            )
        }
    };
}

pub(crate) use sql_rows;

/// An event's stored columns: event id, user, session, item, kind, value, time (Unix ms),
/// context.
pub(crate) type EventParts = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<f64>,
    i64,
    Option<serde_json::Value>,
);

/// An event from its stored columns, each checked (stored data that fails is corrupt).
pub(crate) fn event_from_parts(
    (id, user, session, item, kind, value, ts, context): EventParts,
) -> crate::Result<marquee_domain::Event> {
    use marquee_domain::{Actor, Event, EventId, EventKind, ItemId, SessionId, UserId};
    let actor = match (user, session) {
        (Some(user), _) => Actor::User(UserId::new(user).map_err(corrupt)?),
        (None, Some(session)) => Actor::Session(SessionId::new(session).map_err(corrupt)?),
        (None, None) => {
            return Err(crate::Error::Corrupt(
                "an event has neither user nor session".into(),
            ));
        }
    };
    Ok(Event {
        id: EventId::new(id).map_err(corrupt)?,
        actor,
        item: item.map(ItemId::new).transpose().map_err(corrupt)?,
        kind: EventKind::parse(&kind).map_err(corrupt)?,
        value: value.map(|v| v as f32),
        timestamp: from_ms(ts)?,
        context,
    })
}

/// An order from its stored columns and its lines, each checked.
pub(crate) fn order_from_parts(
    id: String,
    user: Option<String>,
    created_at: i64,
    status: &str,
    lines: Vec<marquee_domain::OrderLine>,
) -> crate::Result<marquee_domain::Order> {
    use marquee_domain::{Order, OrderId, OrderStatus, UserId};
    Ok(Order {
        id: OrderId::new(id).map_err(corrupt)?,
        user: user.map(UserId::new).transpose().map_err(corrupt)?,
        created_at: from_ms(created_at)?,
        status: OrderStatus::parse(status).map_err(corrupt)?,
        lines,
    })
}

/// An order line from its stored columns (item, quantity, unit price in minor units,
/// currency), each checked.
pub(crate) fn line_from_parts(
    item: String,
    quantity: i64,
    minor: i64,
    currency: &str,
) -> crate::Result<marquee_domain::OrderLine> {
    use marquee_domain::{Currency, ItemId, Money, OrderLine};
    Ok(OrderLine {
        item: ItemId::new(item).map_err(corrupt)?,
        quantity: u32::try_from(quantity).map_err(corrupt)?,
        unit_price: Money::new(minor, Currency::new(currency).map_err(corrupt)?),
    })
}

use super::{corrupt, from_ms};
