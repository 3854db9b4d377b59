-- Customer segments. Every computation is a run with a version; its members keep the RFM
-- values and scores it saw, so an export always matches the run it names.

CREATE TABLE segment_runs (
    version     TEXT PRIMARY KEY NOT NULL,
    computed_at INTEGER NOT NULL,
    reference   INTEGER NOT NULL,              -- the RFM reference time
    k           INTEGER NOT NULL,              -- k-means clusters
    silhouette  REAL NOT NULL,
    clusters    TEXT NOT NULL DEFAULT '[]'     -- JSON array: a description per cluster
);

CREATE TABLE segment_members (
    version            TEXT NOT NULL REFERENCES segment_runs (version) ON DELETE CASCADE,
    user_id            TEXT NOT NULL,
    segment            TEXT NOT NULL,
    cluster            INTEGER NOT NULL,
    recency_days       INTEGER NOT NULL,
    frequency          INTEGER NOT NULL,
    monetary_minor     INTEGER NOT NULL,
    tenure_days        INTEGER NOT NULL,
    avg_basket_minor   REAL NOT NULL,
    favourite_category TEXT NOT NULL,
    r_score            INTEGER NOT NULL,
    f_score            INTEGER NOT NULL,
    m_score            INTEGER NOT NULL,
    PRIMARY KEY (version, user_id)
) WITHOUT ROWID;
CREATE INDEX segment_members_segment ON segment_members (version, segment);
