-- The PostgreSQL schema: the same tables and columns as the SQLite one, so that one set of
-- queries serves both. Timestamps are unix milliseconds (UTC) in BIGINT; JSON values are text;
-- ids and other text compare bytewise (COLLATE "C") so keyset paging agrees with the engine's
-- string order whatever the database's locale.

CREATE TABLE items (
    id          TEXT COLLATE "C" PRIMARY KEY,
    title       TEXT NOT NULL,
    category    TEXT COLLATE "C" NOT NULL,
    genres      TEXT NOT NULL DEFAULT '[]',      -- JSON array of strings
    price_minor BIGINT,
    currency    TEXT,
    in_stock    BOOLEAN NOT NULL DEFAULT TRUE,
    hidden      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',      -- JSON object
    CHECK ((price_minor IS NULL) = (currency IS NULL))
);
CREATE INDEX items_category ON items (category);

CREATE TABLE users (
    id                TEXT COLLATE "C" PRIMARY KEY,
    created_at        BIGINT NOT NULL,
    country           TEXT,
    marketing_consent BOOLEAN NOT NULL DEFAULT FALSE,
    email             TEXT
);

CREATE TABLE orders (
    id         TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" REFERENCES users (id),
    created_at BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled', 'refunded'))
);
CREATE INDEX orders_user_time ON orders (user_id, created_at);
CREATE INDEX orders_time ON orders (created_at);

CREATE TABLE order_lines (
    order_id         TEXT COLLATE "C" NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          BIGINT NOT NULL,
    item_id          TEXT COLLATE "C" NOT NULL REFERENCES items (id),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_item ON order_lines (item_id);

-- Events, the table that grows: the key is an insertion-ordered sequence number (pages for
-- training read it in order), event_id makes retried batches idempotent, fold-in reads a
-- user's newest events through (user_id, ts), and time-range reports (the funnel) use a BRIN
-- index on ts, which stays tiny because events arrive roughly in time order. Events reference
-- items and users loosely (no foreign key): a storefront may send events for an item the
-- catalog sync has not delivered yet, and they must not be lost.
CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id    TEXT COLLATE "C",
    session_id TEXT COLLATE "C",
    item_id    TEXT COLLATE "C",
    kind       TEXT NOT NULL,
    value      DOUBLE PRECISION,
    ts         BIGINT NOT NULL,
    context    TEXT,
    CHECK ((user_id IS NULL) <> (session_id IS NULL))
);
CREATE INDEX events_user_time ON events (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX events_session_time ON events (session_id, ts) WHERE session_id IS NOT NULL;
CREATE INDEX events_ts ON events USING brin (ts);

CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('storefront', 'admin')),
    key_hash   BYTEA NOT NULL UNIQUE,            -- SHA-256 of the key; the key itself is never stored
    prefix     TEXT NOT NULL,                    -- first characters, to tell keys apart in listings
    label      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Customer segments: every computation is a run with a version; its members keep the RFM
-- values and scores it saw, so an export always matches the run it names.
CREATE TABLE segment_runs (
    version     TEXT COLLATE "C" PRIMARY KEY,
    computed_at BIGINT NOT NULL,
    reference   BIGINT NOT NULL,
    k           BIGINT NOT NULL,
    silhouette  DOUBLE PRECISION NOT NULL,
    clusters    TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE segment_members (
    version            TEXT COLLATE "C" NOT NULL REFERENCES segment_runs (version) ON DELETE CASCADE,
    user_id            TEXT COLLATE "C" NOT NULL,
    segment            TEXT COLLATE "C" NOT NULL,
    cluster            BIGINT NOT NULL,
    recency_days       BIGINT NOT NULL,
    frequency          BIGINT NOT NULL,
    monetary_minor     BIGINT NOT NULL,
    tenure_days        BIGINT NOT NULL,
    avg_basket_minor   DOUBLE PRECISION NOT NULL,
    favourite_category TEXT NOT NULL,
    r_score            BIGINT NOT NULL,
    f_score            BIGINT NOT NULL,
    m_score            BIGINT NOT NULL,
    PRIMARY KEY (version, user_id)
);
CREATE INDEX segment_members_segment ON segment_members (version, segment);

-- Admin actions: who (the key's prefix, never the key), what (method, path, answer status) and
-- when (unix milliseconds).
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    key_prefix TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     BIGINT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- A counter bumped by every catalog write, in the same transaction: serving replicas poll it
-- and reload their catalog facts (stock, visibility, prices) when it moves.
CREATE TABLE catalog_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
