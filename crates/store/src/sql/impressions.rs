//! Impressions (a row per batch, with hourly counts and first sightings of visitors beside
//! it), attributions, the recommendation KPIs and experiments; see [`crate::impressions`].
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` and `impl $Import` for this area; see the module documentation of
/// [`crate::sql`].
macro_rules! sql_impressions {
    ($Store:ident, $Import:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn write_impressions(&self, batch: &ImpressionBatch) -> Result<()> {
                use std::collections::BTreeMap;
                const HOUR: i64 = 3_600_000;
                const DAY: i64 = 86_400_000;
                let imps = &batch.impressions;
                let mut by_source: BTreeMap<u64, Vec<Impression>> = BTreeMap::new();
                for imp in imps {
                    by_source.entry(imp.id.source).or_default().push(imp.clone());
                }
                let mut counts: BTreeMap<(i64, &str, &str, &str, &str), i64> = BTreeMap::new();
                for imp in imps {
                    let key = (
                        ms(imp.at).div_euclid(HOUR) * HOUR,
                        imp.placement.as_str(),
                        imp.model_version.as_str(),
                        imp.experiment.as_deref().unwrap_or(""),
                        imp.variant.as_deref().unwrap_or(""),
                    );
                    *counts.entry(key).or_default() += 1;
                }
                let mut tx = self.pool.begin().await?;
                for (source, list) in &by_source {
                    let seqs = list.iter().map(|i| i.id.seq as i64);
                    let times = list.iter().map(|i| ms(i.at));
                    sqlx::query(
                        "INSERT INTO impression_batches \
                         (source, first_seq, last_seq, first_at, last_at, answers, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(format!("{source:016x}"))
                    .bind(seqs.clone().min().unwrap_or_default())
                    .bind(seqs.max().unwrap_or_default())
                    .bind(times.clone().min().unwrap_or_default())
                    .bind(times.max().unwrap_or_default())
                    .bind(list.len() as i64)
                    .bind($crate::impressions::encode(list))
                    .execute(&mut *tx)
                    .await?;
                }
                for ((hour, placement, model, experiment, variant), n) in counts {
                    sqlx::query(
                        "INSERT INTO impression_counts \
                         (hour, placement, model_version, experiment, variant, impressions) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (hour, placement, model_version, experiment, variant) \
                         DO UPDATE SET impressions = impression_counts.impressions + excluded.impressions",
                    )
                    .bind(hour)
                    .bind(placement)
                    .bind(model)
                    .bind(experiment)
                    .bind(variant)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                }
                let firsts: Vec<(&Impression, String)> = batch
                    .first_sightings
                    .iter()
                    .filter_map(|&n| imps.get(n))
                    .filter_map(|imp| imp.visitor().map(|v| (imp, v)))
                    .collect();
                let bulk = &self.statements.visitors;
                for chunk in firsts.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for (imp, visitor) in chunk {
                        q = q
                            .bind(ms(imp.at).div_euclid(DAY) * DAY)
                            .bind(imp.placement.as_str())
                            .bind(imp.model_version.as_str())
                            .bind(imp.experiment.as_deref().unwrap_or(""))
                            .bind(imp.variant.as_deref().unwrap_or(""))
                            .bind(visitor.as_str());
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn impression_batches_after(
                &self,
                after: i64,
                since_ms: i64,
                except: Option<u64>,
                limit: u32,
            ) -> Result<Vec<(i64, Vec<Impression>)>> {
                let rows = sqlx::query(
                    "SELECT id, source, body FROM impression_batches \
                     WHERE id > $1 AND last_at >= $2 AND source <> $3 ORDER BY id LIMIT $4",
                )
                .bind(after)
                .bind(since_ms)
                .bind(except.map(|s| format!("{s:016x}")).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let source: String = r.try_get(1)?;
                        let body: String = r.try_get(2)?;
                        Ok((r.try_get(0)?, $crate::impressions::decode(&source, &body)?))
                    })
                    .collect()
            }

            pub(crate) async fn newest_impression_batch(&self) -> Result<i64> {
                let row = sqlx::query("SELECT CAST(coalesce(max(id), 0) AS BIGINT) FROM impression_batches")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get(0)?)
            }

            pub(crate) async fn impression(
                &self,
                id: RecommendationId,
            ) -> Result<Option<Impression>> {
                // Batches of one source are written in about the order of their numbers; a
                // few may overlap (answers queued out of order), so the last four whose range
                // starts at or before the number are looked at.
                let rows = sqlx::query(
                    "SELECT source, body, last_seq FROM impression_batches \
                     WHERE source = $1 AND first_seq <= $2 ORDER BY first_seq DESC LIMIT 4",
                )
                .bind(format!("{:016x}", id.source))
                .bind(id.seq as i64)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    if r.try_get::<i64, _>(2)? < id.seq as i64 {
                        continue;
                    }
                    let source: String = r.try_get(0)?;
                    let body: String = r.try_get(1)?;
                    let found = $crate::impressions::decode(&source, &body)?
                        .into_iter()
                        .find(|i| i.id == id);
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                Ok(None)
            }

            pub(crate) async fn insert_attributions(&self, rows: &[Attribution]) -> Result<u64> {
                let mut import = self.begin_import().await?;
                let n = import.write_attributions(rows).await?;
                import.tx.commit().await?;
                Ok(n)
            }

            pub(crate) async fn recommendation_kpis(
                &self,
                range: DateRange,
                by: GroupBy,
            ) -> Result<Vec<RecommendationKpis>> {
                use std::collections::BTreeMap;
                let (from, to) = range.bounds_ms();
                let floor = |unit: i64| from.map(|f| f.div_euclid(unit) * unit);
                let key = |column: &str| match by {
                    GroupBy::Placement => "placement".to_owned(),
                    GroupBy::ModelVersion => "model_version".to_owned(),
                    GroupBy::Variant => "experiment || '/' || variant".to_owned(),
                    GroupBy::Day => period_expr(Period::Day, column),
                };
                let mut groups: BTreeMap<String, ([u64; 5], i64)> = BTreeMap::new();
                let shown = format!(
                    "SELECT {} AS k, CAST(sum(impressions) AS BIGINT) FROM impression_counts \
                     WHERE ($1 IS NULL OR hour >= $1) AND ($2 IS NULL OR hour < $2) GROUP BY 1",
                    key("hour")
                );
                for r in sqlx::query(AssertSqlSafe(shown))
                    .bind(floor(3_600_000))
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?
                {
                    groups.entry(r.try_get(0)?).or_default().0[0] = count(r.try_get(1)?);
                }
                let visitors = format!(
                    "SELECT {} AS k, count(DISTINCT visitor) FROM impression_visitors \
                     WHERE ($1 IS NULL OR day >= $1) AND ($2 IS NULL OR day < $2) GROUP BY 1",
                    key("day")
                );
                for r in sqlx::query(AssertSqlSafe(visitors))
                    .bind(floor(86_400_000))
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?
                {
                    groups.entry(r.try_get(0)?).or_default().0[1] = count(r.try_get(1)?);
                }
                let outcomes = format!(
                    "SELECT {} AS k, \
                     count(DISTINCT CASE WHEN kind = 'click' THEN recommendation_id || ' ' || item_id END), \
                     count(DISTINCT CASE WHEN kind = 'add_to_cart' THEN recommendation_id || ' ' || item_id END), \
                     count(DISTINCT CASE WHEN kind IN ('purchase', 'order') \
                                    THEN recommendation_id || ' ' || item_id END), \
                     CAST(coalesce(sum(revenue_minor), 0) AS BIGINT) \
                     FROM attributions \
                     WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2) GROUP BY 1",
                    key("at")
                );
                for r in sqlx::query(AssertSqlSafe(outcomes))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?
                {
                    let g = groups.entry(r.try_get(0)?).or_default();
                    g.0[2] = count(r.try_get(1)?);
                    g.0[3] = count(r.try_get(2)?);
                    g.0[4] = count(r.try_get(3)?);
                    g.1 = r.try_get(4)?;
                }
                Ok(groups
                    .into_iter()
                    .map(|(k, (counts, revenue))| RecommendationKpis::new(k, counts, revenue))
                    .collect())
            }

            pub(crate) async fn insert_experiment(&self, e: &Experiment) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let clash = sqlx::query(
                    "SELECT name, state FROM experiments WHERE name = $1 \
                     OR (placement = $2 AND state = 'running')",
                )
                .bind(&e.name)
                .bind(&e.placement)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = clash {
                    let name: String = r.try_get(0)?;
                    return Err(Error::Conflict(if name == e.name {
                        format!("an experiment named {name:?} exists; pick another name")
                    } else {
                        format!(
                            "experiment {name:?} is running on placement {:?}; stop it first",
                            e.placement
                        )
                    }));
                }
                sqlx::query(
                    "INSERT INTO experiments \
                     (name, placement, metric, state, variants, created_at, stopped_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&e.name)
                .bind(&e.placement)
                .bind(&e.metric)
                .bind(&e.state)
                .bind(serde_json::to_string(&e.variants).map_err(corrupt)?)
                .bind(ms(e.created_at))
                .bind(e.stopped_at.map(ms))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn experiments(&self, name: Option<&str>) -> Result<Vec<Experiment>> {
                let rows = sqlx::query(
                    "SELECT name, placement, metric, state, variants, created_at, stopped_at \
                     FROM experiments WHERE ($1 IS NULL OR name = $1) \
                     ORDER BY created_at DESC, name",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let variants: String = r.try_get(4)?;
                        Ok(Experiment {
                            name: r.try_get(0)?,
                            placement: r.try_get(1)?,
                            metric: r.try_get(2)?,
                            state: r.try_get(3)?,
                            variants: serde_json::from_str(&variants).map_err(corrupt)?,
                            created_at: from_ms(r.try_get(5)?)?,
                            stopped_at: r.try_get::<Option<i64>, _>(6)?.map(from_ms).transpose()?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn put_placement(&self, p: &StoredPlacement) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let existed = sqlx::query("SELECT 1 FROM placements WHERE name = $1")
                    .bind(&p.name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                sqlx::query(
                    "INSERT INTO placements (name, spec, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET spec = $2, updated_at = $3",
                )
                .bind(&p.name)
                .bind(p.spec.to_string())
                .bind(ms(p.updated_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(!existed)
            }

            pub(crate) async fn placements(&self) -> Result<Vec<StoredPlacement>> {
                let rows = sqlx::query("SELECT name, spec, updated_at FROM placements ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let spec: String = r.try_get(1)?;
                        Ok(StoredPlacement {
                            name: r.try_get(0)?,
                            spec: serde_json::from_str(&spec).map_err(corrupt)?,
                            updated_at: from_ms(r.try_get(2)?)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn delete_placement(&self, name: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM placements WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn stop_experiment(
                &self,
                name: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE experiments SET state = 'stopped', stopped_at = $2 \
                     WHERE name = $1 AND state = 'running'",
                )
                .bind(name)
                .bind(ms(at))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn experiment_counts(&self, name: &str) -> Result<Vec<VariantCounts>> {
                use std::collections::BTreeMap;
                let shown = sqlx::query(
                    "SELECT variant, CAST(sum(impressions) AS BIGINT) FROM impression_counts \
                     WHERE experiment = $1 GROUP BY variant",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                let visitors = sqlx::query(
                    "SELECT variant, count(DISTINCT visitor) FROM impression_visitors \
                     WHERE experiment = $1 GROUP BY variant",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                let outcomes = sqlx::query(
                    "SELECT variant, \
                     count(DISTINCT CASE WHEN kind = 'click' THEN recommendation_id || ' ' || item_id END), \
                     count(DISTINCT CASE WHEN kind IN ('purchase', 'order') \
                                    THEN recommendation_id || ' ' || item_id END) \
                     FROM attributions WHERE experiment = $1 GROUP BY variant",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                let squares = sqlx::query(
                    "SELECT variant, \
                     CAST(coalesce(sum(CAST(c AS DOUBLE PRECISION) * c), 0) AS DOUBLE PRECISION), \
                     CAST(coalesce(sum(CAST(p AS DOUBLE PRECISION) * p), 0) AS DOUBLE PRECISION) \
                     FROM (SELECT variant, recommendation_id, \
                           count(DISTINCT CASE WHEN kind = 'click' THEN item_id END) AS c, \
                           count(DISTINCT CASE WHEN kind IN ('purchase', 'order') THEN item_id END) AS p \
                           FROM attributions WHERE experiment = $1 \
                           GROUP BY variant, recommendation_id) AS per_answer \
                     GROUP BY variant",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                let revenue = sqlx::query(
                    "SELECT variant, CAST(coalesce(sum(r), 0) AS BIGINT), \
                     CAST(coalesce(sum(CAST(r AS DOUBLE PRECISION) * r), 0) AS DOUBLE PRECISION) \
                     FROM (SELECT variant, visitor, sum(revenue_minor) AS r FROM attributions \
                           WHERE experiment = $1 GROUP BY variant, visitor) AS per_visitor \
                     GROUP BY variant",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                let mut merged: BTreeMap<String, VariantCounts> = BTreeMap::new();
                fn at(merged: &mut BTreeMap<String, VariantCounts>, v: String) -> &mut VariantCounts {
                    merged.entry(v.clone()).or_insert_with(|| VariantCounts {
                        variant: v,
                        ..VariantCounts::default()
                    })
                }
                for r in &shown {
                    at(&mut merged, r.try_get(0)?).impressions = count(r.try_get(1)?);
                }
                for r in &visitors {
                    at(&mut merged, r.try_get(0)?).users = count(r.try_get(1)?);
                }
                for r in &outcomes {
                    let c = at(&mut merged, r.try_get(0)?);
                    c.clicks = count(r.try_get(1)?);
                    c.purchases = count(r.try_get(2)?);
                }
                for r in &squares {
                    let c = at(&mut merged, r.try_get(0)?);
                    c.click_squares = r.try_get(1)?;
                    c.purchase_squares = r.try_get(2)?;
                }
                for r in &revenue {
                    let c = at(&mut merged, r.try_get(0)?);
                    c.revenue = r.try_get(1)?;
                    c.revenue_squares = r.try_get(2)?;
                }
                Ok(merged.into_values().collect())
            }
        }

        impl $Import {
            pub(crate) async fn write_attributions(&mut self, rows: &[Attribution]) -> Result<u64> {
                let bulk = &self.statements.attributions;
                let mut written = 0;
                for chunk in rows.chunks(bulk.rows) {
                    let mut q = sqlx::query(AssertSqlSafe(bulk.sql(chunk.len())));
                    for a in chunk {
                        q = q
                            .bind(a.key.as_str())
                            .bind(a.recommendation_id.to_string())
                            .bind(ms(a.at))
                            .bind(a.outcome.as_str())
                            .bind(a.item.as_str())
                            .bind(a.visitor.as_str())
                            .bind(a.placement.as_str())
                            .bind(a.model_version.as_str())
                            .bind(a.experiment.as_deref().unwrap_or(""))
                            .bind(a.variant.as_deref().unwrap_or(""))
                            .bind(a.revenue_minor);
                    }
                    written += q.execute(&mut *self.tx).await?.rows_affected();
                }
                Ok(written)
            }
        }
    };
}

pub(crate) use sql_impressions;
