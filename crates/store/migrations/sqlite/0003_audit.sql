-- Admin actions: who (the key's prefix, never the key), what (method, path, answer status) and
-- when (unix milliseconds). Written after every changing request on the admin API.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    key_prefix TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
