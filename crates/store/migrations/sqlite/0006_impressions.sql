-- Impressions: one row per recommendation answer served (its id, when, where, to whom, by
-- which model version and experiment variant) and one row per item it showed, in order.
-- Events and orders are attributed to them (the item-level table answers "which latest
-- answer showed this item to this user").

CREATE TABLE impressions (
    recommendation_id TEXT PRIMARY KEY,
    at                INTEGER NOT NULL,
    placement         TEXT NOT NULL,
    user_id           TEXT,
    session_id        TEXT,
    model_version     TEXT NOT NULL,
    experiment        TEXT,
    variant           TEXT
);
CREATE INDEX impressions_at ON impressions (at);
CREATE INDEX impressions_user ON impressions (user_id, at);
CREATE INDEX impressions_session ON impressions (session_id, at);

CREATE TABLE impression_items (
    recommendation_id TEXT NOT NULL REFERENCES impressions (recommendation_id) ON DELETE CASCADE,
    position          INTEGER NOT NULL,
    item_id           TEXT NOT NULL,
    PRIMARY KEY (recommendation_id, position)
);
CREATE INDEX impression_items_item ON impression_items (item_id);
