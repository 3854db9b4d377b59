//! The KPI queries of the admin analytics: revenue by period, top products, funnel, customers.
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_kpis {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn revenue_by_period(
                &self,
                period: Period,
                range: DateRange,
            ) -> Result<Vec<RevenueRow>> {
                let (from, to) = range.bounds_ms();
                let key = period_expr(period, "o.created_at");
                let sql = format!(
                    "SELECT {key} AS period, \
                     count(DISTINCT CASE WHEN NOT ({REVERSAL}) THEN o.id END), \
                     CAST(coalesce(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END \
                                  * l.quantity * l.unit_price_minor), 0) AS BIGINT) \
                     FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id \
                     WHERE ($1 IS NULL OR o.created_at >= $1) AND ($2 IS NULL OR o.created_at < $2) \
                     GROUP BY 1 ORDER BY 1"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(RevenueRow {
                            period: r.try_get(0)?,
                            orders: count(r.try_get(1)?),
                            revenue_minor: r.try_get(2)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn top_products(
                &self,
                range: DateRange,
                by: RankBy,
                limit: u32,
            ) -> Result<Vec<ProductRow>> {
                let (from, to) = range.bounds_ms();
                let order = match by {
                    RankBy::Revenue => "revenue DESC",
                    RankBy::Units => "units DESC",
                };
                let sql = format!(
                    "SELECT l.item_id, \
                     CAST(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END * l.quantity * l.unit_price_minor) \
                        AS BIGINT) AS revenue, \
                     CAST(sum(CASE WHEN {REVERSAL} THEN -1 ELSE 1 END * l.quantity) AS BIGINT) AS units \
                     FROM orders o JOIN order_lines l ON l.order_id = o.id \
                     WHERE ($1 IS NULL OR o.created_at >= $1) AND ($2 IS NULL OR o.created_at < $2) \
                     GROUP BY l.item_id ORDER BY {order}, l.item_id LIMIT $3"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ProductRow {
                            item: r.try_get(0)?,
                            revenue_minor: r.try_get(1)?,
                            units: r.try_get(2)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn funnel(&self, range: DateRange) -> Result<Funnel> {
                let (from, to) = range.bounds_ms();
                let row = sqlx::query(
                    "WITH steps AS ( \
                       SELECT CASE kind WHEN 'view' THEN 0 WHEN 'click' THEN 0 \
                              WHEN 'add_to_cart' THEN 1 WHEN 'purchase' THEN 2 END AS step, \
                              coalesce(user_id, 'session:' || session_id) AS visitor \
                       FROM events \
                       WHERE kind IN ('view', 'click', 'add_to_cart', 'purchase') \
                         AND ($1 IS NULL OR ts >= $1) AND ($2 IS NULL OR ts < $2)) \
                     SELECT count(DISTINCT CASE WHEN step = 0 THEN visitor END), \
                            count(DISTINCT CASE WHEN step = 1 THEN visitor END), \
                            count(DISTINCT CASE WHEN step = 2 THEN visitor END) FROM steps",
                )
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
                let n = |i: usize| -> Result<u64> { Ok(count(row.try_get::<i64, _>(i)?)) };
                Ok(Funnel::from_counts(n(0)?, n(1)?, n(2)?))
            }

            pub(crate) async fn new_vs_returning(&self, range: DateRange) -> Result<Vec<CustomersRow>> {
                let (from, to) = range.bounds_ms();
                let month = period_expr(Period::Month, "o.created_at");
                let sql = format!(
                    "WITH valid AS ( \
                       SELECT o.user_id, {month} AS month, o.created_at \
                       FROM orders o WHERE o.user_id IS NOT NULL AND NOT ({REVERSAL})), \
                     firsts AS (SELECT user_id, min(month) AS first_month FROM valid GROUP BY user_id) \
                     SELECT v.month, \
                       count(DISTINCT CASE WHEN v.month = f.first_month THEN v.user_id END), \
                       count(DISTINCT CASE WHEN v.month <> f.first_month THEN v.user_id END) \
                     FROM valid v JOIN firsts f ON f.user_id = v.user_id \
                     WHERE ($1 IS NULL OR v.created_at >= $1) AND ($2 IS NULL OR v.created_at < $2) \
                     GROUP BY v.month ORDER BY v.month"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(CustomersRow {
                            month: r.try_get(0)?,
                            new_customers: count(r.try_get(1)?),
                            returning_customers: count(r.try_get(2)?),
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_kpis;
