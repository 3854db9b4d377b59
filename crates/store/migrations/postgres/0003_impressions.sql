-- Impressions: one row per recommendation answer served: its id, when, where, to whom, by
-- which model version and experiment variant, and the items it showed in order (a JSON array
-- of ids). Events and orders are attributed to them by user or session within a time window,
-- so the (user_id, at) and (session_id, at) indexes find a visitor's recent answers.

CREATE TABLE impressions (
    recommendation_id TEXT PRIMARY KEY,
    at                BIGINT NOT NULL,
    placement         TEXT NOT NULL,
    user_id           TEXT,
    session_id        TEXT,
    model_version     TEXT NOT NULL,
    experiment        TEXT,
    variant           TEXT,
    items             TEXT NOT NULL
);
CREATE INDEX impressions_at ON impressions (at);
CREATE INDEX impressions_user ON impressions (user_id, at);
CREATE INDEX impressions_session ON impressions (session_id, at);
