//! Fans one event out to its integrations in parallel, each claimed in the ledger first, and
//! turns each result into an [`Outcome`]. Knows nothing of AMQP: the worker turns outcomes into
//! acks, retries and dead letters.

mod runs;

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::future::{self, BoxFuture, FutureExt as _};
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::event::RunCanceled;
use crate::failure::DeliveryError;
use crate::integrations::{Integration, Notification, Receipt};
use crate::ledger::{Claim, ClaimId, Key, Ledger, State, now_ms};
use crate::protocol::EVENT_TYPE;
use crate::retry::RetryPolicy;
use crate::telemetry::metrics;
use runs::InFlight;

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
    /// Stopped by shutdown before it finished: hand it back unchanged.
    Interrupted,
    /// An operator canceled this run's deliveries (`deliveries cancel`): drop it.
    Canceled,
}

impl Outcome {
    /// The outcome and failure reason as bounded metric labels.
    pub fn label(&self) -> (&'static str, Option<&'static str>) {
        match self {
            Outcome::Delivered(_) => ("delivered", None),
            Outcome::Skipped(_) => ("skipped", None),
            Outcome::RetryIn { error, .. } => ("retry", error.kind().map(|k| k.as_str())),
            Outcome::GiveUp(error) => ("dead_lettered", error.kind().map(|k| k.as_str())),
            Outcome::Interrupted => ("interrupted", None),
            Outcome::Canceled => ("canceled", None),
        }
    }
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

/// The integrations, the retry policy and the ledger, built once at start.
#[derive(Debug)]
pub struct Dispatcher {
    integrations: Vec<Integration>,
    policy: RetryPolicy,
    ledger: Ledger,
    in_flight: InFlight,
}

impl Dispatcher {
    pub fn new(integrations: Vec<Integration>, policy: RetryPolicy, ledger: Ledger) -> Self {
        Self {
            integrations,
            policy,
            ledger,
            in_flight: InFlight::default(),
        }
    }

    /// Aborts this process's in-flight deliveries of a run (an operator's cancel).
    pub fn abort_run(&self, run_id: &str, integration: Option<&str>) -> usize {
        self.in_flight.abort(run_id, integration)
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Delivers `event` to its targets concurrently and yields each result as it completes, so
    /// that one slow or failing target never delays what is done about another.
    /// `stop` keeps deliveries from starting; `abort` interrupts those under way.
    pub fn dispatch<'a>(
        &'a self,
        event: &'a RunCanceled,
        targets: Targets<'a>,
        stop: &'a CancellationToken,
        abort: &'a CancellationToken,
    ) -> FuturesUnordered<BoxFuture<'a, Delivery>> {
        let chosen: Vec<(&Integration, u32)> = match targets {
            Targets::Routed => self.integrations.iter().map(|i| (i, 1)).collect(),
            Targets::Retry {
                integration,
                attempt,
            } => match self.integrations.iter().find(|i| i.name() == integration) {
                Some(found) => vec![(found, attempt)],
                None => {
                    let gone = Delivery {
                        integration: integration.to_owned(),
                        kind: "unknown",
                        attempt,
                        outcome: Outcome::GiveUp(DeliveryError::permanent(format!(
                            "integration `{integration}` is no longer configured"
                        ))),
                        elapsed: Duration::ZERO,
                    };
                    return FuturesUnordered::from_iter([future::ready(gone).boxed()]);
                }
            },
        };
        let routed = matches!(targets, Targets::Routed);
        chosen
            .into_iter()
            .map(|(integration, attempt)| {
                let span = info_span!("delivery", integration = integration.name(), attempt);
                self.deliver_one(event, integration, attempt, routed, stop, abort)
                    .instrument(span)
                    .boxed()
            })
            .collect()
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
            self.claim_and_deliver(event, integration, attempt, abort)
                .await
        };
        log(&outcome);
        let (label, reason) = outcome.label();
        metrics::delivery(integration.name(), integration.kind(), label, reason);
        Delivery {
            integration: integration.name().to_owned(),
            kind: integration.kind(),
            attempt,
            outcome,
            elapsed: started.elapsed(),
        }
    }

    /// Claims the delivery in the ledger, delivers, and records the outcome.
    async fn claim_and_deliver(
        &self,
        event: &RunCanceled,
        integration: &Integration,
        attempt: u32,
        abort: &CancellationToken,
    ) -> Outcome {
        let key = Key {
            run_id: event.data.run_id.as_str(),
            event_type: EVENT_TYPE,
            integration: integration.name(),
        };
        // Long enough for one attempt; a worker that dies loses its claim after this.
        let lease = *integration.common().timeout * 3 + Duration::from_secs(5);
        let claim = match self
            .claim(key, &event.event_id, attempt, lease, abort)
            .await
        {
            None => return Outcome::Interrupted,
            Some(Claim::Claimed(claim)) => claim,
            Some(Claim::Done(state)) => {
                return Outcome::Skipped(format!("already {} (ledger)", state.as_str()));
            }
            Some(Claim::Canceled) => return Outcome::Canceled,
            Some(Claim::Busy { .. }) => unreachable!("claim() waits until a busy claim ends"),
        };
        let registration = self.in_flight.register(key.run_id, key.integration, abort);
        let notification = Notification {
            event,
            integration: integration.name(),
            attempt,
            resumed: claim.resumed(),
        };
        let in_flight = metrics::in_flight();
        let started = Instant::now();
        let result = integration
            .deliver(&notification, &registration.token)
            .await;
        metrics::delivery_time(integration.kind(), started.elapsed());
        drop(in_flight);
        let outcome = match result {
            Err(DeliveryError::Canceled) if !abort.is_cancelled() => Outcome::Canceled,
            result => self.outcome(attempt, result),
        };
        drop(registration);
        self.record(key, &claim, attempt, &outcome, abort).await;
        outcome
    }

    /// Claims, waiting while another attempt holds the delivery or the ledger cannot be
    /// reached (the message stays unacked meanwhile); `None` when aborted first.
    async fn claim(
        &self,
        key: Key<'_>,
        event_id: &str,
        attempt: u32,
        lease: Duration,
        abort: &CancellationToken,
    ) -> Option<Claim> {
        let mut backoff = ledger_backoff();
        loop {
            let wait = match self.ledger.claim(key, event_id, attempt, lease).await {
                Ok(Claim::Busy { lease_until_ms }) => {
                    debug!("another attempt holds this delivery; waiting for it");
                    Duration::from_millis((lease_until_ms - now_ms()).clamp(50, 500) as u64)
                }
                Ok(claim) => return Some(claim),
                Err(err) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                    warn!(error = %err, retry_ms = wait.as_millis() as u64, "ledger unreachable: holding the message");
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = abort.cancelled() => return None,
            }
        }
    }

    /// Records the outcome of a claimed attempt, retrying while the ledger is unreachable
    /// (until shutdown aborts: then the claim's lease lets a later attempt take over).
    async fn record(
        &self,
        key: Key<'_>,
        claim: &ClaimId,
        attempt: u32,
        outcome: &Outcome,
        abort: &CancellationToken,
    ) {
        let failure;
        let (state, last_error, receipt) = match outcome {
            Outcome::Delivered(receipt) => (State::Delivered, None, Some(receipt.as_str())),
            Outcome::Skipped(reason) => (State::Skipped, None, Some(reason.as_str())),
            Outcome::RetryIn { error, .. } | Outcome::GiveUp(error) => {
                failure = error.to_string();
                let state = if matches!(outcome, Outcome::GiveUp(_)) {
                    State::Dead
                } else {
                    State::Failed
                };
                (state, Some(failure.as_str()), None)
            }
            Outcome::Interrupted => (State::Failed, Some("interrupted by shutdown"), None),
            // The operator's cancel already wrote the row.
            Outcome::Canceled => return,
        };
        let mut backoff = ledger_backoff();
        loop {
            match self
                .ledger
                .record(key, claim, state, attempt, last_error, receipt)
                .await
            {
                Ok(_) => return,
                Err(err) if abort.is_cancelled() => {
                    error!(error = %err, state = state.as_str(), "cannot record the outcome in the ledger");
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
        Outcome::Canceled => info!(outcome = "canceled", "canceled by an operator: dropped"),
    }
}

/// Waits between attempts to reach an unreachable ledger.
fn ledger_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
