//! The ledger's two hot writes (claim, record) as values, so that they can wait in the SQLite
//! writer's queue ([`super::sqlite`]) or run straight on PostgreSQL's pool (here).

use sqlx::{AnyConnection, AnyPool, Row};

use super::progress::AdvanceWrite;
use super::{ClaimId, Key, Progress, Record, sql};

/// Why a claim or record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("ledger database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("SQLite ledger: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the SQLite ledger's writer has stopped")]
    Stopped,
    #[error(transparent)]
    UnknownState(#[from] super::UnknownState),
}

/// A claim, owning its values so that it can wait in the queue.
#[derive(Debug)]
pub(super) struct ClaimWrite {
    pub run_id: String,
    pub event_type: String,
    pub integration: String,
    pub attempt: i64,
    pub event_id: String,
    pub claim_id: String,
    pub lease_until: i64,
    pub now: i64,
}

/// The record of a claimed attempt's end, owning its values.
#[derive(Debug)]
pub(super) struct RecordWrite {
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub receipt: Option<String>,
    pub now: i64,
    pub run_id: String,
    pub event_type: String,
    pub integration: String,
    pub claim_id: String,
    /// The run's progress to move on first, when the delivery applied its event.
    pub advance: Option<AdvanceWrite>,
}

impl RecordWrite {
    /// The write of `record` into `key`'s row, if `claim` still holds it, at `now` (Unix ms).
    pub(super) fn new(key: Key<'_>, claim: &ClaimId, record: &Record<'_>, now: i64) -> Self {
        Self {
            state: record.state.as_str(),
            attempts: i64::from(record.attempts),
            last_error: record.last_error.clone(),
            receipt: record.receipt.map(str::to_owned),
            now,
            run_id: key.run_id.as_str().to_owned(),
            event_type: key.event_type.to_owned(),
            integration: key.integration.to_string(),
            claim_id: claim.as_str().to_owned(),
            advance: record
                .applied
                .map(|a| AdvanceWrite::new(a.event, key.integration, a.object_id, now)),
        }
    }
}

/// What a claim found.
#[derive(Debug)]
pub(super) enum Claimed {
    /// The claim is ours; `resumed` when it took over a row an earlier attempt left; with the
    /// run's progress at the integration.
    Ours {
        resumed: bool,
        progress: Option<Progress>,
    },
    /// Someone else's row: its state and lease.
    Taken {
        state: String,
        lease_until: Option<i64>,
    },
    /// The row could be claimed, but another event of the run is in flight to the integration.
    Waiting,
}

impl ClaimWrite {
    /// The claim is ours; `created_at` is its row's.
    pub(super) fn ours(&self, created_at: i64, progress: Option<Progress>) -> Claimed {
        // A fresh row carries this call's `now`; a row taken over keeps its own.
        // (A row created in the same millisecond reads as fresh.)
        Claimed::Ours {
            resumed: created_at != self.now,
            progress,
        }
    }

    /// What a claim that wrote nothing found: the row's state and lease, if there is a row.
    /// A row that could have been claimed (or none) means another event held the turn.
    pub(super) fn not_ours(&self, row: Option<(String, Option<i64>)>) -> Claimed {
        match row {
            Some((state, lease_until)) if !self.claimable(&state, lease_until) => {
                Claimed::Taken { state, lease_until }
            }
            _ => Claimed::Waiting,
        }
    }

    /// Whether the claim statement may take over a row in `state` (as its `WHERE` says).
    pub(super) fn claimable(&self, state: &str, lease_until: Option<i64>) -> bool {
        let expired = lease_until.is_some_and(|until| until < self.now);
        matches!(state, "failed" | "dead") || (state == "in_flight" && expired)
    }

    /// Whether another event's row in `state` keeps this claim waiting: it is in flight and its
    /// lease has not run out (as the claim statement's `NOT EXISTS` says).
    pub(super) fn kept_waiting_by(&self, state: &str, lease_until: Option<i64>) -> bool {
        state == "in_flight" && lease_until.is_some_and(|until| until >= self.now)
    }

    /// Runs the claim on `connection`.
    async fn run(&self, connection: &mut AnyConnection) -> Result<Claimed, sqlx::Error> {
        let claimed = sqlx::query(sql::CLAIM)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .bind(self.attempt)
            .bind(self.event_id.as_str())
            .bind(self.claim_id.as_str())
            .bind(self.lease_until)
            .bind(self.now)
            .bind(self.now)
            .fetch_optional(&mut *connection)
            .await?;
        if let Some(row) = claimed {
            let created_at = row.try_get(1)?;
            let progress = Progress::read(connection, &self.run_id, &self.integration).await?;
            return Ok(self.ours(created_at, progress));
        }
        let row = sqlx::query(sql::CURRENT)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .fetch_optional(&mut *connection)
            .await?;
        let row = row
            .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
            .transpose()?;
        Ok(self.not_ours(row))
    }
}

impl RecordWrite {
    /// Runs the record on `connection`; the rows it changed (0: the claim was lost).
    async fn run(&self, connection: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        // The effect happened: the run's progress moves on even if the claim was lost.
        if let Some(advance) = &self.advance {
            advance.run(&mut *connection).await?;
        }
        let result = sqlx::query(sql::RECORD)
            .bind(self.state)
            .bind(self.attempts)
            .bind(self.last_error.as_deref())
            .bind(self.receipt.as_deref())
            .bind(self.now)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .bind(self.claim_id.as_str())
            .execute(&mut *connection)
            .await?;
        Ok(result.rows_affected())
    }
}

/// A claim on PostgreSQL, in a transaction of its own that holds the run's turn at the
/// integration: a concurrent claim of another event of the run waits, then sees this one.
pub(super) async fn claim_alone(pool: &AnyPool, write: &ClaimWrite) -> Result<Claimed, WriteError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(sql::CLAIM_TURN)
        .bind(format!("{}\u{1f}{}", write.run_id, write.integration))
        .execute(&mut *transaction)
        .await?;
    let claimed = write.run(&mut transaction).await?;
    transaction.commit().await?;
    Ok(claimed)
}

/// A record on PostgreSQL, in its own (implicit) transaction.
pub(super) async fn record_alone(pool: &AnyPool, write: &RecordWrite) -> Result<u64, WriteError> {
    let mut connection = pool.acquire().await?;
    Ok(write.run(&mut connection).await?)
}
