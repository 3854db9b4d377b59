//! API keys, admin dashboard sessions and the audit log.
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_keys {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn insert_api_key(
                &self,
                key: &NewApiKey,
                label: &str,
                origins: &[String],
            ) -> Result<()> {
                let public = (key.role == ApiKeyRole::Publishable).then_some(key.key.as_str());
                sqlx::query(
                    "INSERT INTO api_keys (role, key_hash, prefix, label, created_at, origins, public_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.role.as_str())
                .bind(key.hash())
                .bind(key.prefix.as_str())
                .bind(label)
                .bind(ms(chrono::Utc::now()))
                .bind(serde_json::to_string(origins).map_err(corrupt)?)
                .bind(public)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn api_key_access(&self, hash: &[u8]) -> Result<Option<KeyAccess>> {
                let row = sqlx::query(
                    "SELECT role, origins FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(KeyAccess {
                        role: ApiKeyRole::parse(&r.try_get::<String, _>(0)?)?,
                        origins: serde_json::from_str(&r.try_get::<String, _>(1)?)
                            .map_err(|e| Error::Corrupt(format!("key origins: {e}")))?,
                    })
                })
                .transpose()
            }

            pub(crate) async fn count_api_keys(&self, role: ApiKeyRole) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM api_keys WHERE role = $1 AND revoked_at IS NULL",
                )
                .bind(role.as_str())
                .fetch_one(&self.pool)
                .await?;
                Ok(count(n))
            }

            pub(crate) async fn revoke_api_key(&self, prefix: &str) -> Result<u64> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL",
                )
                .bind(ms(chrono::Utc::now()))
                .bind(prefix)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
                let rows = sqlx::query(
                    "SELECT prefix, role, label, created_at, revoked_at, origins, public_key \
                     FROM api_keys ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ApiKeyInfo {
                            prefix: r.try_get(0)?,
                            role: ApiKeyRole::parse(&r.try_get::<String, _>(1)?)?,
                            label: r.try_get(2)?,
                            created_at: from_ms(r.try_get(3)?)?,
                            revoked_at: r.try_get::<Option<i64>, _>(4)?.map(from_ms).transpose()?,
                            origins: serde_json::from_str(&r.try_get::<String, _>(5)?)
                                .map_err(|e| Error::Corrupt(format!("key origins: {e}")))?,
                            key: r.try_get(6)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn insert_admin_session(
                &self,
                token_hash: &[u8],
                key_hash: &[u8],
                key_prefix: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO admin_sessions (token_hash, key_hash, key_prefix, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(key_hash)
                .bind(key_prefix)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn admin_session_prefix(
                &self,
                token_hash: &[u8],
                now: i64,
            ) -> Result<Option<String>> {
                let prefix: Option<String> = sqlx::query_scalar(
                    "SELECT s.key_prefix FROM admin_sessions s \
                     JOIN api_keys k ON k.key_hash = s.key_hash \
                     WHERE s.token_hash = $1 AND s.expires_at > $2 \
                       AND k.revoked_at IS NULL AND k.role = 'admin'",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(prefix)
            }

            pub(crate) async fn delete_admin_session(&self, token_hash: &[u8]) -> Result<()> {
                sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(crate) async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, key_prefix, method, path, status) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(ms(entry.at))
                .bind(&entry.key_prefix)
                .bind(&entry.method)
                .bind(&entry.path)
                .bind(i64::from(entry.status))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT at, key_prefix, method, path, status FROM audit_log ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            at: from_ms(r.try_get(0)?)?,
                            key_prefix: r.try_get(1)?,
                            method: r.try_get(2)?,
                            path: r.try_get(3)?,
                            status: u16::try_from(r.try_get::<i64, _>(4)?).map_err(corrupt)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_keys;
