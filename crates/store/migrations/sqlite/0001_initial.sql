-- Catalog, customers, orders, events and API keys. Timestamps are unix milliseconds (UTC).

CREATE TABLE items (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL,
    genres      TEXT NOT NULL DEFAULT '[]',      -- JSON array of strings
    price_minor INTEGER,
    currency    TEXT,
    in_stock    INTEGER NOT NULL DEFAULT 1,
    hidden      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',      -- JSON object
    CHECK ((price_minor IS NULL) = (currency IS NULL))
);
CREATE INDEX items_category ON items (category);

CREATE TABLE users (
    id                TEXT PRIMARY KEY NOT NULL,
    created_at        INTEGER NOT NULL,
    country           TEXT,
    marketing_consent INTEGER NOT NULL DEFAULT 0,
    email             TEXT
);

CREATE TABLE orders (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT REFERENCES users (id),
    created_at INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled', 'refunded'))
);
CREATE INDEX orders_user_time ON orders (user_id, created_at);
CREATE INDEX orders_time ON orders (created_at);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    item_id          TEXT NOT NULL REFERENCES items (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;
CREATE INDEX order_lines_item ON order_lines (item_id);

-- Events reference items and users loosely (no foreign key): a storefront may send events for
-- an item the catalog sync has not delivered yet, and they must not be lost.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    user_id    TEXT,
    session_id TEXT,
    item_id    TEXT,
    kind       TEXT NOT NULL,
    value      REAL,
    ts         INTEGER NOT NULL,
    context    TEXT,
    CHECK ((user_id IS NULL) <> (session_id IS NULL))
);
CREATE INDEX events_user_time ON events (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX events_session_time ON events (session_id, ts) WHERE session_id IS NOT NULL;

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('storefront', 'admin')),
    key_hash   BLOB NOT NULL UNIQUE,             -- SHA-256 of the key; the key itself is never stored
    prefix     TEXT NOT NULL,                    -- first characters, to tell keys apart in listings
    label      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
