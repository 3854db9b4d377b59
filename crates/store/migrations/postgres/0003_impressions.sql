-- Closing the loop: what recommendation answers showed (impressions), what visitors did
-- because of them (attributions), and A/B experiments between model versions.
--
-- Impressions are written in batches, one row per batch: `body` holds the batch's answers as
-- lines (see the store's `impressions` module). That keeps the cost of recording an answer
-- far below the cost of serving it. A recommendation id is this process's `source` (16 hex
-- digits) and a sequence number, so the batch of an id is found by its source and number
-- range. The KPIs read two small summaries the writer keeps beside the batches: answers per
-- hour and group, and the distinct visitors per day and group.

CREATE TABLE impression_batches (
    id        BIGSERIAL PRIMARY KEY,
    source    TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    first_at  BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,
    answers   BIGINT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX impression_batches_ids ON impression_batches (source, first_seq);
CREATE INDEX impression_batches_time ON impression_batches (last_at);

CREATE TABLE impression_counts (
    hour          BIGINT NOT NULL,
    placement     TEXT NOT NULL,
    model_version TEXT NOT NULL,
    experiment    TEXT NOT NULL,
    variant       TEXT NOT NULL,
    impressions   BIGINT NOT NULL,
    PRIMARY KEY (hour, placement, model_version, experiment, variant)
);

CREATE TABLE impression_visitors (
    day           BIGINT NOT NULL,
    placement     TEXT NOT NULL,
    model_version TEXT NOT NULL,
    experiment    TEXT NOT NULL,
    variant       TEXT NOT NULL,
    visitor       TEXT NOT NULL,
    PRIMARY KEY (day, placement, model_version, experiment, variant, visitor)
);
CREATE INDEX impression_visitors_experiment ON impression_visitors (experiment, variant);

-- One row per attributed event (`e:<event id>`) or order line (`o:<order id>:<line>`).
CREATE TABLE attributions (
    key               TEXT COLLATE "C" PRIMARY KEY,
    recommendation_id TEXT NOT NULL,
    at                BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    item_id           TEXT NOT NULL,
    visitor           TEXT NOT NULL,
    placement         TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    experiment        TEXT NOT NULL,
    variant           TEXT NOT NULL,
    revenue_minor     BIGINT NOT NULL
);
CREATE INDEX attributions_at ON attributions (at);
CREATE INDEX attributions_experiment ON attributions (experiment, variant);

CREATE TABLE experiments (
    name       TEXT COLLATE "C" PRIMARY KEY,
    placement  TEXT NOT NULL,
    metric     TEXT NOT NULL,
    state      TEXT NOT NULL,
    variants   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    stopped_at BIGINT
);
CREATE UNIQUE INDEX experiments_running_placement ON experiments (placement) WHERE state = 'running';
