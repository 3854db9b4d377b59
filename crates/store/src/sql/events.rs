//! Events: a user's recent events, the poll for users with new events. (The streaming read is
//! each backend's own: `for_each_event`.)
//! Expanded inside a backend module by [`super::sql_backend!`], with its imports in scope.

/// `impl $Store` for this area; see the module documentation of [`crate::sql`].
macro_rules! sql_events {
    ($Store:ident, $DB:ty, $Row:ty) => {
        impl $Store {
            pub(crate) async fn events_of_user(
                &self,
                user: &UserId,
                after_ms: i64,
                limit: u32,
            ) -> Result<Vec<Event>> {
                // The user's own events and those of the anonymous sessions linked to them.
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT * FROM ({EVENT_SELECT} WHERE user_id = $1 AND ts > $2 \
                     UNION ALL {EVENT_SELECT} WHERE session_id IN \
                       (SELECT session_id FROM identities WHERE user_id = $1) AND ts > $2) AS mine \
                     ORDER BY ts DESC, seq DESC LIMIT $3"
                )))
                .bind(user.as_str())
                .bind(after_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(event_from_row).collect()
            }

            pub(crate) async fn events_of_session(
                &self,
                session: &SessionId,
                limit: u32,
            ) -> Result<Vec<Event>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{EVENT_SELECT} WHERE session_id = $1 ORDER BY ts DESC, seq DESC LIMIT $2"
                )))
                .bind(session.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(event_from_row).collect()
            }

            pub(crate) async fn identity_of(&self, session: &SessionId) -> Result<Option<UserId>> {
                let user: Option<String> =
                    sqlx::query_scalar("SELECT user_id FROM identities WHERE session_id = $1")
                        .bind(session.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                user.map(|u| UserId::new(u).map_err(corrupt)).transpose()
            }

            pub(crate) async fn users_with_events_after(
                &self,
                after_seq: i64,
                after_ms: i64,
            ) -> Result<(Vec<(String, i64)>, i64)> {
                let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
                    .fetch_one(&self.pool)
                    .await?;
                let rows = sqlx::query(
                    "SELECT user_id, max(seq) FROM events \
                     WHERE seq > $1 AND seq <= $2 AND ts > $3 AND user_id IS NOT NULL \
                     GROUP BY user_id",
                )
                .bind(after_seq.saturating_sub(SEQ_MARGIN))
                .bind(newest)
                .bind(after_ms)
                .fetch_all(&self.pool)
                .await?;
                let users = rows
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                Ok((users, newest.max(after_seq)))
            }
        }
    };
}

pub(crate) use sql_events;
