//! Segmentation runs: saving one, its sizes and members.
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_segments {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn save_segments(
                &self,
                run: &SegmentRun,
                members: &[SegmentMember],
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO segment_runs (version, computed_at, reference, k, silhouette, clusters) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&run.version)
                .bind(ms(run.computed_at))
                .bind(ms(run.reference))
                .bind(i64::from(run.k))
                .bind(run.silhouette)
                .bind(serde_json::to_string(&run.clusters).map_err(corrupt)?)
                .execute(&mut *tx)
                .await?;
                let bulk = &self.statements.members;
                for chunk in members.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for m in chunk {
                        q = q
                            .bind(&run.version)
                            .bind(&m.user_id)
                            .bind(&m.segment)
                            .bind(i64::from(m.cluster))
                            .bind(m.recency_days)
                            .bind(i64::from(m.frequency))
                            .bind(m.monetary_minor)
                            .bind(m.tenure_days)
                            .bind(m.avg_basket_minor)
                            .bind(&m.favourite_category)
                            .bind(i64::from(m.r_score))
                            .bind(i64::from(m.f_score))
                            .bind(i64::from(m.m_score));
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn latest_segment_run(&self) -> Result<Option<SegmentRun>> {
                let row = sqlx::query(
                    "SELECT version, computed_at, reference, k, silhouette, clusters FROM segment_runs \
                     ORDER BY computed_at DESC, version DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(SegmentRun {
                    version: r.try_get(0)?,
                    computed_at: from_ms(r.try_get(1)?)?,
                    reference: from_ms(r.try_get(2)?)?,
                    k: u32::try_from(r.try_get::<i64, _>(3)?).map_err(corrupt)?,
                    silhouette: r.try_get(4)?,
                    clusters: serde_json::from_str(&r.try_get::<String, _>(5)?).map_err(corrupt)?,
                }))
            }

            pub(crate) async fn segment_sizes(&self, version: &str) -> Result<Vec<(String, u64, i64)>> {
                let rows = sqlx::query(
                    "SELECT segment, count(*), CAST(sum(monetary_minor) AS BIGINT) FROM segment_members \
                     WHERE version = $1 GROUP BY segment ORDER BY segment",
                )
                .bind(version)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, count(r.try_get(1)?), r.try_get(2)?)))
                    .collect()
            }

            pub(crate) async fn segment_members(
                &self,
                version: &str,
                segment: Option<&str>,
                offset: u64,
                limit: u64,
            ) -> Result<Vec<SegmentMember>> {
                let rows = sqlx::query(
                    "SELECT user_id, segment, cluster, recency_days, frequency, monetary_minor, tenure_days, \
                     avg_basket_minor, favourite_category, r_score, f_score, m_score FROM segment_members \
                     WHERE version = $1 AND ($2 IS NULL OR segment = $2) ORDER BY user_id LIMIT $3 OFFSET $4",
                )
                .bind(version)
                .bind(segment)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                let small = |v: i64| -> Result<u8> { u8::try_from(v).map_err(corrupt) };
                rows.iter()
                    .map(|r| {
                        Ok(SegmentMember {
                            user_id: r.try_get(0)?,
                            segment: r.try_get(1)?,
                            cluster: u32::try_from(r.try_get::<i64, _>(2)?).map_err(corrupt)?,
                            recency_days: r.try_get(3)?,
                            frequency: u32::try_from(r.try_get::<i64, _>(4)?).map_err(corrupt)?,
                            monetary_minor: r.try_get(5)?,
                            tenure_days: r.try_get(6)?,
                            avg_basket_minor: r.try_get(7)?,
                            favourite_category: r.try_get(8)?,
                            r_score: small(r.try_get(9)?)?,
                            f_score: small(r.try_get(10)?)?,
                            m_score: small(r.try_get(11)?)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_segments;
