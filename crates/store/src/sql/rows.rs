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
            let actor = match (
                r.try_get::<Option<String>, _>(1)?,
                r.try_get::<Option<String>, _>(2)?,
            ) {
                (Some(user), _) => Actor::User(UserId::new(user).map_err(corrupt)?),
                (None, Some(session)) => Actor::Session(SessionId::new(session).map_err(corrupt)?),
                (None, None) => {
                    return Err(Error::Corrupt(
                        "an event has neither user nor session".into(),
                    ));
                }
            };
            let context = r
                .try_get::<Option<String>, _>(7)?
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| Error::Corrupt(format!("event context: {e}")))?;
            Ok(Event {
                id: EventId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                actor,
                item: r
                    .try_get::<Option<String>, _>(3)?
                    .map(ItemId::new)
                    .transpose()
                    .map_err(corrupt)?,
                kind: EventKind::parse(&r.try_get::<String, _>(4)?).map_err(corrupt)?,
                value: r.try_get::<Option<f64>, _>(5)?.map(|v| v as f32),
                timestamp: from_ms(r.try_get(6)?)?,
                context,
            })
        }

        /// An order from `id, user_id, created_at, status` and its lines.
        fn order_from_row(r: &$Row, lines: Vec<OrderLine>) -> Result<Order> {
            Ok(Order {
                id: OrderId::new(r.try_get::<String, _>(0)?).map_err(corrupt)?,
                user: r
                    .try_get::<Option<String>, _>(1)?
                    .map(UserId::new)
                    .transpose()
                    .map_err(corrupt)?,
                created_at: from_ms(r.try_get(2)?)?,
                status: OrderStatus::parse(&r.try_get::<String, _>(3)?).map_err(corrupt)?,
                lines,
            })
        }

        /// An order line from columns `item_id, quantity, unit_price_minor, currency` starting
        /// at column `first`.
        fn line_from_row(l: &$Row, first: usize) -> Result<OrderLine> {
            Ok(OrderLine {
                item: ItemId::new(l.try_get::<String, _>(first)?).map_err(corrupt)?,
                quantity: u32::try_from(l.try_get::<i64, _>(first + 1)?).map_err(corrupt)?,
                unit_price: Money::new(
                    l.try_get(first + 2)?,
                    Currency::new(&l.try_get::<String, _>(first + 3)?).map_err(corrupt)?,
                ),
            })
        }
    };
}

pub(crate) use sql_rows;
