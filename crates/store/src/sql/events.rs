//! Events: a user's recent events, the poll for users with new events, the streaming read.
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

            pub(crate) async fn for_each_event(
                &self,
                kinds: Option<&[EventKind]>,
                each: &mut (dyn FnMut(Event) -> Result<()> + Send),
            ) -> Result<()> {
                const PAGE: i64 = 50_000;
                // Events of anonymous sessions that identified as a user are that user's.
                let linked: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identities)")
                        .fetch_one(&self.pool)
                        .await?;
                let select = if linked {
                    "SELECT e.event_id, coalesce(e.user_id, i.user_id), \
                     CASE WHEN i.user_id IS NULL THEN e.session_id END, e.item_id, e.kind, \
                     e.value, e.ts, e.context, e.seq \
                     FROM events e LEFT JOIN identities i ON i.session_id = e.session_id \
                     WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
                        .to_owned()
                } else {
                    format!("{EVENT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2")
                };
                let mut after = 0i64;
                loop {
                    let rows = sqlx::query(AssertSqlSafe(select.clone()))
                    .bind(after)
                    .bind(PAGE)
                    .fetch_all(&self.pool)
                    .await?;
                    let Some(last) = rows.last() else {
                        return Ok(());
                    };
                    after = last.try_get(8)?;
                    for row in &rows {
                        let event = event_from_row(row)?;
                        if kinds.is_none_or(|k| k.contains(&event.kind)) {
                            each(event)?;
                        }
                    }
                    if (rows.len() as i64) < PAGE {
                        return Ok(());
                    }
                }
            }
        }
    };
}

pub(crate) use sql_events;
