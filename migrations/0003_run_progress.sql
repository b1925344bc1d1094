-- One row per (run, integration): the latest event applied to that integration, so that an
-- older event is skipped as superseded, and the provider's object kept up to date for the run
-- (a comment or note id, a Slack message `ts`, a check run id).
-- Portable SQL: the same migration serves SQLite and PostgreSQL.
CREATE TABLE run_progress (
    run_id      TEXT   NOT NULL,
    integration TEXT   NOT NULL,
    -- The CloudEvents `time` of the latest event applied, Unix ms.
    event_time  BIGINT NOT NULL,
    -- 0 for run.started, 1 for an end of the run: a start never follows an end.
    event_rank  BIGINT NOT NULL,
    event_type  TEXT   NOT NULL,
    object_id   TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, integration)
);

CREATE INDEX run_progress_updated ON run_progress (updated_at);
