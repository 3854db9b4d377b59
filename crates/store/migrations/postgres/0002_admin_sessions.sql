-- Sessions of the admin dashboard: opened by logging in with an admin key, kept in an
-- HttpOnly cookie. Only the SHA-256 of the session token is stored; the session ends at
-- expires_at, at logout, or when the admin key that opened it is revoked.

CREATE TABLE admin_sessions (
    token_hash BYTEA PRIMARY KEY,
    key_hash   BYTEA NOT NULL,
    key_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
