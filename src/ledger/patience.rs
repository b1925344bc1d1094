//! Waiting out a ledger outage: claims and records are retried with backoff while the database
//! cannot be reached, so callers see only answers (the message stays unacked meanwhile).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::progress::Applied;
use super::{Claim, ClaimId, Key, Ledger, State, WriteError};

/// The end of a claimed attempt, as the ledger stores it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub state: State,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub receipt: Option<&'a str>,
    /// The event was applied at the integration: the run's progress moves on in the same
    /// write as the record.
    pub applied: Option<Applied<'a>>,
}

impl Record<'_> {
    /// `state` after `attempts`, with no error or receipt.
    pub fn new(state: State, attempts: u32) -> Self {
        Self {
            state,
            attempts,
            last_error: None,
            receipt: None,
            applied: None,
        }
    }
}

impl Ledger {
    /// Claims a delivery, waiting while the ledger is unreachable; `None` when `abort` fires
    /// first. A delivery another attempt holds is answered at once as [`Claim::Busy`].
    pub async fn claim_patiently(
        &self,
        key: Key<'_>,
        event_id: &str,
        attempt: u32,
        lease: Duration,
        abort: &CancellationToken,
    ) -> Option<Claim> {
        let mut backoff = outage_backoff();
        loop {
            match self.claim(key, event_id, attempt, lease).await {
                Ok(claim) => return Some(claim),
                Err(err) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                    let retry_ms = wait.as_millis() as u64;
                    if matches!(err, WriteError::UnknownState(_)) {
                        // No outage: the row says something this version cannot act on.
                        error!(error = %err, retry_ms, "holding the message: its delivery is in a state this version does not know");
                    } else {
                        warn!(error = %err, retry_ms, "ledger unreachable: holding the message");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = abort.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// Records the end of a claimed attempt, waiting while the ledger is unreachable, until
    /// `abort` fires: then the claim's lease lets a later attempt take over.
    pub async fn record_patiently(
        &self,
        key: Key<'_>,
        claim: &ClaimId,
        record: &Record<'_>,
        abort: &CancellationToken,
    ) {
        let mut backoff = outage_backoff();
        loop {
            let result = self.record(key, claim, record).await;
            match result {
                Ok(true) => return,
                // The delivery ended before its heartbeat saw the loss: the other attempt owns
                // the row and writes its own outcome.
                Ok(false) => {
                    warn!(
                        state = record.state.as_str(),
                        "the outcome is not recorded: the claim is no longer ours (an operator \
                         canceled it, or another worker took it over after its lease ran out)"
                    );
                    return;
                }
                Err(err) if abort.is_cancelled() => {
                    error!(error = %err, state = record.state.as_str(), "cannot record the outcome in the ledger");
                    return;
                }
                Err(err) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                    warn!(error = %err, "ledger unreachable: cannot record the outcome yet");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = abort.cancelled() => {}
                    }
                }
            }
        }
    }

    /// The stored state of one delivery, if it has a row.
    pub async fn state(&self, key: Key<'_>) -> Result<Option<State>, sqlx::Error> {
        sqlx::query(super::sql::CURRENT)
            .bind(key.run_id.as_str())
            .bind(key.event_type)
            .bind(key.integration.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| State::from_column(&row, 0))
            .transpose()
    }
}

/// Waits between attempts to reach an unreachable ledger.
pub fn outage_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
