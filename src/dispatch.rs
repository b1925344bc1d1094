//! Fans one event out to its integrations in parallel and turns each result into an [`Outcome`].
//! Knows nothing of AMQP: the worker turns outcomes into acks, retries and dead letters.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use crate::event::RunCanceled;
use crate::failure::DeliveryError;
use crate::integrations::{Integration, Notification, Receipt};
use crate::retry::RetryPolicy;

/// Which integrations a message is for.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// A new event: every integration whose filters admit it, first attempt.
    Routed,
    /// A retry that came back: only this integration, at this attempt.
    Retry { integration: &'a str, attempt: u32 },
}

/// What became of one delivery, deciding what the worker does with the message.
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
    /// Stopped by shutdown or cancellation before it finished: hand it back unchanged.
    Interrupted,
}

/// One integration's part of a message.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub integration: String,
    /// The integration's `type:`, or `unknown` for one no longer configured.
    pub kind: &'static str,
    pub attempt: u32,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// The integrations and the retry policy, built once at start.
#[derive(Debug)]
pub struct Dispatcher {
    integrations: Vec<Integration>,
    policy: RetryPolicy,
}

impl Dispatcher {
    pub fn new(integrations: Vec<Integration>, policy: RetryPolicy) -> Self {
        Self {
            integrations,
            policy,
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Delivers `event` to its targets concurrently; one failing target never delays another.
    /// `stop` keeps deliveries from starting; `abort` interrupts those under way.
    pub async fn dispatch(
        &self,
        event: &RunCanceled,
        targets: Targets<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Vec<Delivery> {
        let chosen: Vec<(&Integration, u32)> = match targets {
            Targets::Routed => self.integrations.iter().map(|i| (i, 1)).collect(),
            Targets::Retry {
                integration,
                attempt,
            } => match self.integrations.iter().find(|i| i.name() == integration) {
                Some(found) => vec![(found, attempt)],
                None => {
                    return vec![Delivery {
                        integration: integration.to_owned(),
                        kind: "unknown",
                        attempt,
                        outcome: Outcome::GiveUp(DeliveryError::permanent(format!(
                            "integration `{integration}` is no longer configured"
                        ))),
                        elapsed: Duration::ZERO,
                    }];
                }
            },
        };
        let routed = matches!(targets, Targets::Routed);
        join_all(chosen.into_iter().map(|(integration, attempt)| {
            let span = info_span!("delivery", integration = integration.name(), attempt);
            self.deliver_one(event, integration, attempt, routed, stop, abort)
                .instrument(span)
        }))
        .await
    }

    async fn deliver_one(
        &self,
        event: &RunCanceled,
        integration: &Integration,
        attempt: u32,
        routed: bool,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Delivery {
        let started = Instant::now();
        // Filters route new events only: a retry was admitted when it was new.
        let filtered = if routed {
            integration.filters().admit(&event.data).err()
        } else {
            None
        };
        let outcome = if let Some(reason) = filtered {
            debug!(reason, "filtered out");
            Outcome::Skipped(format!("filtered out: {reason}"))
        } else if stop.is_cancelled() {
            // No step starts after shutdown began.
            Outcome::Interrupted
        } else {
            let notification = Notification {
                event,
                integration: integration.name(),
                attempt,
            };
            let result = integration.deliver(&notification, abort).await;
            self.outcome(attempt, result)
        };
        log(&outcome);
        Delivery {
            integration: integration.name().to_owned(),
            kind: integration.kind(),
            attempt,
            outcome,
            elapsed: started.elapsed(),
        }
    }

    fn outcome(&self, attempt: u32, result: Result<Receipt, DeliveryError>) -> Outcome {
        match result {
            Ok(Receipt::Sent(receipt)) => Outcome::Delivered(receipt),
            Ok(Receipt::Skipped(reason)) => Outcome::Skipped(reason),
            Err(DeliveryError::Canceled) => Outcome::Interrupted,
            Err(error) => match self.policy.next_delay(attempt, &error) {
                Some(delay) => Outcome::RetryIn { delay, error },
                None => Outcome::GiveUp(error),
            },
        }
    }
}

/// Successes and scheduled retries at INFO; give-ups are logged as ERROR by the worker once
/// the dead letter is safely published.
fn log(outcome: &Outcome) {
    match outcome {
        Outcome::Delivered(receipt) => info!(outcome = "delivered", receipt, "delivered"),
        Outcome::Skipped(reason) => debug!(outcome = "skipped", reason, "skipped"),
        Outcome::RetryIn { delay, error } => info!(
            outcome = "retry",
            reason = error.kind().map(|k| k.as_str()),
            error = %error,
            delay_ms = delay.as_millis() as u64,
            "failed, will retry"
        ),
        Outcome::GiveUp(_) => {}
        Outcome::Interrupted => info!(outcome = "interrupted", "interrupted, handing back"),
    }
}
