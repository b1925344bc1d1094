//! The ledger's SQL, portable between SQLite (3.35+) and PostgreSQL.

/// Inserts an in-flight claim, or takes over a row that may be retried (failed, dead) or whose
/// lease expired; but only while no other event of the run is in flight to the integration, so
/// that the order check and the send of one event are never interleaved with another's, in any
/// worker. Returns a row only when this call now owns the claim, with the row's `created_at`: an
/// earlier value than this call's means an earlier attempt left the row. (On PostgreSQL two such
/// statements for different rows do not see each other: the caller serialises them per run and
/// integration with an advisory lock. SQLite's writer decides the same in Rust, inside its
/// `BEGIN IMMEDIATE` transaction, by [`super::write::ClaimWrite`]'s rules.)
pub const CLAIM: &str = "
INSERT INTO deliveries
    (run_id, event_type, integration, state, attempts, event_id, claim_id, lease_until, created_at, updated_at)
SELECT $1, $2, $3, 'in_flight', $4, $5, $6, $7, $8, $9
WHERE NOT EXISTS (
    SELECT 1 FROM deliveries AS other
    WHERE other.run_id = $1 AND other.integration = $3 AND other.event_type <> $2
      AND other.state = 'in_flight' AND other.lease_until >= $9)
ON CONFLICT (run_id, event_type, integration) DO UPDATE SET
    state = 'in_flight',
    attempts = excluded.attempts,
    event_id = excluded.event_id,
    claim_id = excluded.claim_id,
    lease_until = excluded.lease_until,
    updated_at = excluded.updated_at
WHERE deliveries.state IN ('failed', 'dead')
   OR (deliveries.state = 'in_flight' AND deliveries.lease_until < excluded.updated_at)
RETURNING claim_id, created_at";

/// Serialises the claims of one run at one integration on PostgreSQL, until the transaction
/// ends (`$1`: the run id and the integration, joined).
pub const CLAIM_TURN: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

pub const CURRENT: &str = "
SELECT state, lease_until FROM deliveries
WHERE run_id = $1 AND event_type = $2 AND integration = $3";

/// Ends a claim; only the claim's owner can, and only while it is still in flight.
pub const RECORD: &str = "
UPDATE deliveries SET
    state = $1, attempts = $2, last_error = $3, receipt = $4,
    claim_id = NULL, lease_until = NULL, updated_at = $5
WHERE run_id = $6 AND event_type = $7 AND integration = $8
  AND claim_id = $9 AND state = 'in_flight'";

pub const HISTORY: &str = "
SELECT integration, event_type, state, attempts, last_error, receipt, event_id, created_at, updated_at
FROM deliveries WHERE run_id = $1 ORDER BY created_at, integration";

pub const CANCEL: &str = "
UPDATE deliveries SET state = 'canceled', claim_id = NULL, lease_until = NULL, updated_at = $1
WHERE run_id = $2 AND event_type = $3 AND integration = $4 AND state IN ('in_flight', 'failed')";

/// A canceled row for a delivery that has not started, so that it never does.
pub const PREVENT: &str = "
INSERT INTO deliveries (run_id, event_type, integration, state, attempts, created_at, updated_at)
VALUES ($1, $2, $3, 'canceled', 0, $4, $5)
ON CONFLICT (run_id, event_type, integration) DO NOTHING";

pub const PRUNE: &str = "
DELETE FROM deliveries
WHERE state IN ('delivered', 'skipped', 'canceled', 'dead') AND updated_at < $1";

/// Extends a claim's lease while its delivery runs; only the claim's owner can, and only while
/// it is still in flight (a claim taken over or canceled has another `claim_id`, or none).
pub const RENEW: &str = "
UPDATE deliveries SET lease_until = $1
WHERE run_id = $2 AND event_type = $3 AND integration = $4
  AND claim_id = $5 AND state = 'in_flight'";
