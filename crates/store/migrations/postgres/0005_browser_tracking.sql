-- Publishable keys (safe in a web page: they may only send events and read an anonymous
-- session's answer, and only from the origins listed) and the links of anonymous browser
-- sessions to the users they identified as.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('storefront', 'admin', 'publishable'));
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN public_key TEXT;

-- An anonymous session's events count for the user it identified as (the first link wins).
CREATE TABLE identities (
    session_id TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL,
    linked_at  BIGINT NOT NULL
);
CREATE INDEX identities_user ON identities (user_id);
