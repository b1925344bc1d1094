-- Secrets the workers sharing this ledger generate once and then share, by name: `header-seal`
-- is the key that seals the headers of their retries and queued parts.
-- Portable SQL: the same migration serves SQLite and PostgreSQL.
CREATE TABLE worker_secrets (
    name       TEXT   NOT NULL PRIMARY KEY,
    -- Hex.
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
