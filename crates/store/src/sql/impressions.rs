//! Impressions: a batch written in one transaction, and reads by id and by time.
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_impressions {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn insert_impressions(&self, batch: &[Impression]) -> Result<u64> {
                let mut tx = self.pool.begin().await?;
                let mut written = 0;
                for imp in batch {
                    let done = sqlx::query(
                        "INSERT INTO impressions (recommendation_id, at, placement, user_id, \
                         session_id, model_version, experiment, variant) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (recommendation_id) DO NOTHING",
                    )
                    .bind(&imp.id)
                    .bind(ms(imp.at))
                    .bind(&imp.placement)
                    .bind(imp.user.as_ref().map(UserId::as_str))
                    .bind(imp.session.as_ref().map(SessionId::as_str))
                    .bind(&imp.model_version)
                    .bind(imp.experiment.as_deref())
                    .bind(imp.variant.as_deref())
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        continue;
                    }
                    written += 1;
                    for (position, item) in imp.items.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO impression_items (recommendation_id, position, item_id) \
                             VALUES ($1, $2, $3)",
                        )
                        .bind(&imp.id)
                        .bind(position as i64)
                        .bind(item.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(written)
            }

            pub(crate) async fn impressions_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<Impression>> {
                let rows = sqlx::query(
                    "SELECT recommendation_id, at, placement, user_id, session_id, model_version, \
                     experiment, variant FROM impressions WHERE at >= $1 \
                     ORDER BY at, recommendation_id LIMIT $2",
                )
                .bind(ms(since))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let id: String = r.try_get(0)?;
                    let items = sqlx::query(
                        "SELECT item_id FROM impression_items WHERE recommendation_id = $1 \
                         ORDER BY position",
                    )
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|i| ItemId::new(i.try_get::<String, _>(0)?).map_err(corrupt))
                    .collect::<Result<Vec<_>>>()?;
                    out.push(Impression {
                        id,
                        at: from_ms(r.try_get(1)?)?,
                        placement: r.try_get(2)?,
                        user: r
                            .try_get::<Option<String>, _>(3)?
                            .map(UserId::new)
                            .transpose()
                            .map_err(corrupt)?,
                        session: r
                            .try_get::<Option<String>, _>(4)?
                            .map(SessionId::new)
                            .transpose()
                            .map_err(corrupt)?,
                        model_version: r.try_get(5)?,
                        experiment: r.try_get(6)?,
                        variant: r.try_get(7)?,
                        items,
                    });
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use sql_impressions;
