-- Placements: named serving configurations (strategy, filter, boosts, diversity, promotion,
-- rotation) a merchant edits through the admin API or the dashboard. `spec` is the JSON the
-- engine reads; replicas reload the table every second.
CREATE TABLE placements (
    name       TEXT COLLATE "C" PRIMARY KEY,
    spec       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
