-- One row per (run, event type, integration): the state of that notification.
-- Portable SQL: the same migration serves SQLite and PostgreSQL.
CREATE TABLE deliveries (
    run_id      TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    integration TEXT   NOT NULL,
    -- in_flight | delivered | skipped | failed | dead | canceled
    state       TEXT   NOT NULL,
    attempts    BIGINT NOT NULL,
    last_error  TEXT,
    receipt     TEXT,
    event_id    TEXT,
    -- The claim that owns an in_flight row, and until when (Unix ms) before others may take over.
    claim_id    TEXT,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, event_type, integration)
);

CREATE INDEX deliveries_state_updated ON deliveries (state, updated_at);
