-- A counter bumped by every catalog write, in the same transaction: serving replicas poll it
-- and reload their catalog facts (stock, visibility, prices) when it moves.

CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
