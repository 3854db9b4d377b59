//! Catalog and customer reads: items by id, page, search and category; users.
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_catalog {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn item(&self, id: &ItemId) -> Result<Option<Item>> {
                sqlx::query(AssertSqlSafe(format!("{ITEM_SELECT} WHERE id = $1")))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| item_from_row(&r))
                    .transpose()
            }

            pub(crate) async fn items(&self, after: Option<&ItemId>, limit: u32) -> Result<Vec<Item>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id > $1 ORDER BY id LIMIT $2"
                )))
                .bind(after.map_or("", ItemId::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn items_by_ids(&self, ids: &[ItemId]) -> Result<Vec<Item>> {
                let list = serde_json::to_string(&ids.iter().map(ItemId::as_str).collect::<Vec<_>>())
                    .map_err(corrupt)?;
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id IN (SELECT value FROM {JSON_IDS}) ORDER BY id"
                )))
                .bind(list)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn search_items(&self, q: &ItemQuery<'_>) -> Result<Vec<Item>> {
                let text = q.text.map(|t| format!("%{}%", like_escape(t)));
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{ITEM_SELECT} WHERE id > $1 AND ($2 IS NULL OR category = $2) \
                     AND ($3 IS NULL OR title {LIKE} $3 ESCAPE '\\' OR id {LIKE} $3 ESCAPE '\\') \
                     AND ($4 OR NOT hidden) AND ($5 OR in_stock) ORDER BY id LIMIT $6"
                )))
                .bind(q.after.unwrap_or(""))
                .bind(q.category)
                .bind(text)
                .bind(q.include_hidden)
                .bind(q.include_out_of_stock)
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(item_from_row).collect()
            }

            pub(crate) async fn catalog_version(&self) -> Result<i64> {
                let v: i64 = sqlx::query_scalar("SELECT version FROM catalog_version WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(v)
            }

            pub(crate) async fn categories(&self) -> Result<Vec<(String, u64)>> {
                let rows = sqlx::query(
                    "SELECT category, count(*) FROM items WHERE NOT hidden GROUP BY category \
                     ORDER BY category",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, count(r.try_get(1)?))))
                    .collect()
            }

            pub(crate) async fn user(&self, id: &UserId) -> Result<Option<User>> {
                let row = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} WHERE id = $1")))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            pub(crate) async fn users_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{USER_SELECT} WHERE id > $1 ORDER BY id LIMIT $2"
                )))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(user_from_row).collect()
            }

            pub(crate) async fn all_users(&self) -> Result<Vec<User>> {
                let rows = sqlx::query(AssertSqlSafe(format!("{USER_SELECT} ORDER BY id")))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(user_from_row).collect()
            }
        }
    };
}

pub(crate) use sql_catalog;
