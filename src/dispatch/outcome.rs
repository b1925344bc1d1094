//! What became of one delivery: the typed [`Outcome`] that decides what the worker does with
//! the message, its metric labels, its log line, and what it tells the circuit breaker.

use std::time::Duration;

use tracing::{debug, warn};

use super::breaker::Signal;
use crate::failure::{DeliveryError, FailureKind};
use crate::integrations::Receipt;
use crate::ledger::{Record, State};
use crate::retry::RetryPolicy;

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver took it.
    Delivered(String),
    /// Nothing to send: filtered out, or the event lacks what the integration needs.
    Skipped(String),
    /// A transient failure: try again after `delay`.
    RetryIn {
        delay: Duration,
        error: DeliveryError,
    },
    /// A permanent failure or the last attempt failed: dead-letter it.
    GiveUp(DeliveryError),
    /// Someone else holds this delivery's turn: another attempt (a worker that died
    /// mid-delivery, until its lease ends), or another event of the run at the integration.
    /// Look again in `until`, without holding anything meanwhile.
    Busy { until: Duration, holder: Holder },
    /// Stopped by shutdown before it finished: hand it back unchanged.
    Interrupted,
    /// An operator canceled this run's deliveries (`deliveries cancel`): drop it.
    Canceled,
    /// Not delivered here: the part waits in its integration's own queue, for a slot of its
    /// lane. Nothing was sent and nothing is recorded.
    Queue(QueueReason),
}

/// Why a part waits in its integration's queue instead of being delivered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueReason {
    /// The integration's circuit breaker is open: it is paused.
    Paused,
    /// The direct half of the prefetch, or the integration's lane, had no room in time.
    Full,
    /// Shutdown began before the part got a slot of its lane.
    Stopping,
}

/// Who holds a busy delivery's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Another attempt of this delivery, until its lease ends.
    Attempt,
    /// Another event of the same run, being delivered to the same integration.
    Event,
}

impl Holder {
    /// What holds it, as the start of a sentence (logs, retry headers).
    pub fn sentence(self) -> &'static str {
        match self {
            Holder::Attempt => "another attempt holds this delivery",
            Holder::Event => "another event of this run is being delivered to this integration",
        }
    }
}

/// One integration's part of a message, finished.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub integration: String,
    pub attempt: u32,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

impl Outcome {
    /// The outcome of an attempt's result under the retry policy.
    pub fn of(result: Result<Receipt, DeliveryError>, attempt: u32, policy: &RetryPolicy) -> Self {
        match result {
            Ok(Receipt::Sent(receipt)) => Outcome::Delivered(receipt),
            // A skip reason may quote the event (its repository host): bounded for logs and
            // the ledger alike.
            Ok(Receipt::Skipped(reason)) => {
                Outcome::Skipped(crate::echo::message(&reason).to_string())
            }
            Err(DeliveryError::Canceled) => Outcome::Interrupted,
            Err(error) => match policy.next_delay(attempt, &error) {
                Some(delay) => Outcome::RetryIn { delay, error },
                None => Outcome::GiveUp(error),
            },
        }
    }

    /// The outcome and failure reason as bounded metric labels.
    pub fn label(&self) -> (&'static str, Option<&'static str>) {
        match self {
            Outcome::Delivered(_) => ("delivered", None),
            Outcome::Skipped(_) => ("skipped", None),
            Outcome::RetryIn { error, .. } => ("retry", error.kind().map(|k| k.as_str())),
            Outcome::GiveUp(error) => ("dead_lettered", error.kind().map(|k| k.as_str())),
            Outcome::Busy { .. } => ("busy", None),
            Outcome::Interrupted => ("interrupted", None),
            Outcome::Canceled => ("canceled", None),
            Outcome::Queue(_) => ("queued", None),
        }
    }

    /// What the outcome says about the receiver's health.
    pub fn signal(&self) -> Signal {
        match self {
            Outcome::Delivered(_) => Signal::Answered,
            // No answer, or a broken one: the receiver is down or hung. A rate limit is an
            // answer; the retry already waits as long as the receiver asked.
            Outcome::RetryIn { error, .. } | Outcome::GiveUp(error) => match error.kind() {
                Some(FailureKind::Transient | FailureKind::Timeout) => Signal::Failed,
                Some(FailureKind::RateLimited | FailureKind::Permanent) => Signal::Answered,
                None => Signal::Nothing,
            },
            _ => Signal::Nothing,
        }
    }

    /// One delivery's outcome at DEBUG (the worker logs one INFO line per message, naming each
    /// part's outcome), except a failure to be retried, at WARN; give-ups are logged as ERROR
    /// by the worker once the dead letter is safely published.
    pub fn log(&self) {
        match self {
            Outcome::Delivered(receipt) => debug!(outcome = "delivered", receipt, "delivered"),
            Outcome::Skipped(reason) => debug!(outcome = "skipped", reason, "skipped"),
            Outcome::RetryIn { delay, error } => warn!(
                outcome = "retry",
                reason = error.kind().map(|k| k.as_str()),
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "failed, will retry"
            ),
            Outcome::GiveUp(_) => {}
            Outcome::Busy { until, holder } => debug!(
                outcome = "busy",
                retry_ms = until.as_millis() as u64,
                "{}; looking again later",
                holder.sentence()
            ),
            Outcome::Interrupted => debug!(outcome = "interrupted", "interrupted, handing back"),
            Outcome::Canceled => debug!(outcome = "canceled", "canceled by an operator: dropped"),
            // Nothing was tried: its queue's consumer logs it once it delivers.
            Outcome::Queue(_) => {}
        }
    }

    /// What the ledger keeps of this outcome; `None` when the row is not this attempt's to write.
    pub(super) fn record(&self, attempt: u32) -> Option<Record<'_>> {
        let (state, last_error, receipt) = match self {
            Outcome::Delivered(receipt) => (State::Delivered, None, Some(receipt.as_str())),
            Outcome::Skipped(reason) => (State::Skipped, None, Some(reason.as_str())),
            Outcome::RetryIn { error, .. } => (State::Failed, Some(error.to_string()), None),
            Outcome::GiveUp(error) => (State::Dead, Some(error.to_string()), None),
            Outcome::Interrupted => (State::Failed, Some("interrupted by shutdown".into()), None),
            // The operator's cancel already wrote the row; a busy row is another attempt's; a
            // queued part has not claimed it.
            Outcome::Canceled | Outcome::Busy { .. } | Outcome::Queue(_) => return None,
        };
        Some(Record {
            state,
            attempts: attempt,
            last_error,
            receipt,
            applied: None,
        })
    }
}
