-- Publishable keys (safe in a web page: they may only send events and read an anonymous
-- session's answer, and only from the origins listed) and the links of anonymous browser
-- sessions to the users they identified as.
--
-- SQLite cannot change a CHECK constraint in place, so api_keys is rebuilt.
CREATE TABLE api_keys_new (
    id         INTEGER PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('storefront', 'admin', 'publishable')),
    key_hash   BLOB NOT NULL UNIQUE,             -- SHA-256 of the key
    prefix     TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    origins    TEXT NOT NULL DEFAULT '[]',       -- JSON array of allowed origins (publishable keys)
    public_key TEXT                              -- the key in clear, for publishable keys only
);
INSERT INTO api_keys_new (id, role, key_hash, prefix, label, created_at, revoked_at)
    SELECT id, role, key_hash, prefix, label, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

-- An anonymous session's events count for the user it identified as (the first link wins).
CREATE TABLE identities (
    session_id TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    linked_at  INTEGER NOT NULL
);
CREATE INDEX identities_user ON identities (user_id);
