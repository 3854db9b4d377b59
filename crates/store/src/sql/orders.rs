//! Orders: reads with their lines, status changes, and placing an order. (The streaming read
//! for training is each backend's own: `for_each_order`.)
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_orders {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn order(&self, id: &OrderId) -> Result<Option<Order>> {
                let row =
                    sqlx::query("SELECT id, user_id, created_at, status FROM orders WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(self.order_with_lines(&r).await?))
            }

            pub(crate) async fn orders_of_user(
                &self,
                user: &UserId,
                after_ms: Option<i64>,
                limit: u32,
            ) -> Result<Vec<Order>> {
                let rows = sqlx::query(
                    "SELECT id, user_id, created_at, status FROM orders WHERE user_id = $1 \
                     AND ($2 IS NULL OR created_at > $2) ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(user.as_str())
                .bind(after_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                self.orders_with_lines(&rows).await
            }

            pub(crate) async fn recent_orders(
                &self,
                status: Option<OrderStatus>,
                offset: u64,
                limit: u32,
            ) -> Result<Vec<Order>> {
                let rows = sqlx::query(
                    "SELECT id, user_id, created_at, status FROM orders WHERE ($1 IS NULL OR status = $1) \
                     ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                )
                .bind(status.map(OrderStatus::as_str))
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                self.orders_with_lines(&rows).await
            }

            async fn orders_with_lines(&self, rows: &[$Row]) -> Result<Vec<Order>> {
                let mut orders = Vec::with_capacity(rows.len());
                for r in rows {
                    orders.push(self.order_with_lines(r).await?);
                }
                Ok(orders)
            }

            /// The order of a row `id, user_id, created_at, status`, with its lines.
            async fn order_with_lines(&self, r: &$Row) -> Result<Order> {
                let id: String = r.try_get(0)?;
                let lines = sqlx::query(
                    "SELECT item_id, quantity, unit_price_minor, currency FROM order_lines \
                     WHERE order_id = $1 ORDER BY line_no",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|l| line_from_row(l, 0))
                .collect::<Result<Vec<_>>>()?;
                order_from_row(r, lines)
            }

            pub(crate) async fn set_order_status(&self, id: &OrderId, status: OrderStatus) -> Result<bool> {
                let done = sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
                    .bind(status.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn next_purchase(
                &self,
                item: &ItemId,
                limit: u32,
            ) -> Result<crate::behaviour::NextPurchase> {
                // Buyers with the time of their first valid order of the item; the distinct
                // items of each buyer's valid orders placed strictly after it.
                let with = format!(
                    "WITH buyers AS ( \
                       SELECT o.user_id, min(o.created_at) AS t0 FROM orders o \
                       JOIN order_lines l ON l.order_id = o.id \
                       WHERE l.item_id = $1 AND o.user_id IS NOT NULL AND NOT ({REVERSAL}) \
                       GROUP BY o.user_id), \
                     later AS ( \
                       SELECT DISTINCT b.user_id, l.item_id FROM buyers b \
                       JOIN orders o ON o.user_id = b.user_id AND o.created_at > b.t0 \
                       JOIN order_lines l ON l.order_id = o.id \
                       WHERE NOT ({REVERSAL}))"
                );
                let totals = sqlx::query(AssertSqlSafe(format!(
                    "{with} SELECT (SELECT count(*) FROM buyers), \
                            (SELECT count(DISTINCT user_id) FROM later)"
                )))
                .bind(item.as_str())
                .fetch_one(&self.pool)
                .await?;
                let buyers = count(totals.try_get::<i64, _>(0)?);
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{with} SELECT item_id, count(*) AS n FROM later \
                     GROUP BY item_id ORDER BY n DESC, item_id LIMIT $2"
                )))
                .bind(item.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .iter()
                    .map(|r| {
                        let customers = count(r.try_get::<i64, _>(1)?);
                        Ok(crate::behaviour::NextItem {
                            item_id: r.try_get(0)?,
                            customers,
                            share: customers as f64 / buyers.max(1) as f64,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(crate::behaviour::NextPurchase {
                    item_id: item.as_str().to_owned(),
                    buyers,
                    buyers_with_later_orders: count(totals.try_get::<i64, _>(1)?),
                    items,
                })
            }

            pub(crate) async fn valid_order_times(&self) -> Result<Vec<(String, i64)>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT user_id, created_at FROM orders o \
                     WHERE user_id IS NOT NULL AND NOT ({REVERSAL}) ORDER BY id"
                )))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            }
        }
    };
}

pub(crate) use sql_orders;
