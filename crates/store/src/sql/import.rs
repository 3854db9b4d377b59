//! Writes of an import: items, users, orders and events in one transaction, multi-row
//! INSERTs of fixed text per row count. Expanded inside a backend module by
//! [`super::sql_backend!`].

/// `impl $Import` for one backend.
macro_rules! sql_import {
    ($Import:ident, $DB:ty) => {
        impl $Import {
            pub(crate) async fn write_items(
                &mut self,
                items: &[Item],
                replace: bool,
            ) -> Result<()> {
                let bulk = if replace {
                    &self.statements.items_upsert
                } else {
                    &self.statements.items_ensure
                };
                for chunk in items.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for it in chunk {
                        let genres = serde_json::to_string(&it.genres).map_err(corrupt)?;
                        q = q
                            .bind(it.id.as_str())
                            .bind(it.title.as_str())
                            .bind(it.category.as_str())
                            .bind(genres)
                            .bind(it.price.map(|p| p.minor))
                            .bind(it.price.map(|p| p.currency.as_str().to_owned()))
                            .bind(it.in_stock)
                            .bind(it.hidden)
                            .bind(ms(it.created_at))
                            .bind(it.attributes.to_string());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            pub(crate) async fn write_users(
                &mut self,
                users: &[User],
                replace: bool,
            ) -> Result<()> {
                let bulk = if replace {
                    &self.statements.users_upsert
                } else {
                    &self.statements.users_ensure
                };
                for chunk in users.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for u in chunk {
                        q = q
                            .bind(u.id.as_str())
                            .bind(ms(u.created_at))
                            .bind(u.country.as_deref())
                            .bind(u.marketing_consent)
                            .bind(u.email.as_deref());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            pub(crate) async fn write_orders(&mut self, orders: &[Order]) -> Result<()> {
                let bulk = &self.statements.orders;
                for chunk in orders.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for o in chunk {
                        q = q
                            .bind(o.id.as_str())
                            .bind(o.user.as_ref().map(UserId::as_str))
                            .bind(ms(o.created_at))
                            .bind(o.status.as_str());
                    }
                    q.execute(&mut *self.tx).await.map_err(|e| {
                        foreign_key_hint(e, "an order names a user that is not in the store")
                    })?;
                    // Replacing an order replaces all its lines.
                    let del = format!(
                        "DELETE FROM order_lines WHERE order_id IN ({})",
                        placeholders(chunk.len(), NUMBERED)
                    );
                    let mut q = sqlx::query(AssertSqlSafe(del));
                    for o in chunk {
                        q = q.bind(o.id.as_str());
                    }
                    q.execute(&mut *self.tx).await?;
                }
                let lines: Vec<(&Order, usize, &OrderLine)> = orders
                    .iter()
                    .flat_map(|o| o.lines.iter().enumerate().map(move |(n, l)| (o, n, l)))
                    .collect();
                let bulk = &self.statements.lines;
                for chunk in lines.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for (o, n, l) in chunk {
                        q = q
                            .bind(o.id.as_str())
                            .bind(*n as i64)
                            .bind(l.item.as_str())
                            .bind(i64::from(l.quantity))
                            .bind(l.unit_price.minor)
                            .bind(l.unit_price.currency.as_str());
                    }
                    q.execute(&mut *self.tx).await.map_err(|e| {
                        foreign_key_hint(
                            e,
                            "an order line names an item that is not in the catalog",
                        )
                    })?;
                }
                Ok(())
            }

            pub(crate) async fn write_events(
                &mut self,
                events: &[Event],
            ) -> Result<EventsInserted> {
                let bulk = &self.statements.events;
                let mut inserted = 0u64;
                for chunk in events.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for e in chunk {
                        let (user, session) = match &e.actor {
                            Actor::User(u) => (Some(u.as_str()), None),
                            Actor::Session(s) => (None, Some(s.as_str())),
                        };
                        q = q
                            .bind(e.id.as_str())
                            .bind(user)
                            .bind(session)
                            .bind(e.item.as_ref().map(ItemId::as_str))
                            .bind(e.kind.as_str())
                            .bind(e.value.map(f64::from))
                            .bind(ms(e.timestamp))
                            .bind(e.context.as_ref().map(ToString::to_string));
                    }
                    inserted += q.execute(&mut *self.tx).await?.rows_affected();
                }
                Ok(EventsInserted {
                    inserted,
                    duplicates: events.len() as u64 - inserted,
                })
            }

            pub(crate) async fn write_links(&mut self, links: &[(SessionId, UserId)]) -> Result<u64> {
                let now = ms(chrono::Utc::now());
                let mut new = 0;
                for (session, user) in links {
                    new += sqlx::query(
                        "INSERT INTO identities (session_id, user_id, linked_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (session_id) DO NOTHING",
                    )
                    .bind(session.as_str())
                    .bind(user.as_str())
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await?
                    .rows_affected();
                }
                Ok(new)
            }

            pub(crate) async fn commit(self) -> Result<()> {
                self.tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn rollback(self) -> Result<()> {
                self.tx.rollback().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_import;
