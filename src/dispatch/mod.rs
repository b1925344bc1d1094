//! Owns the fan-out: decides, for each integration a message reaches, whether it is delivered
//! now, waits in the integration's own queue, or is paused there, and delivers one (event,
//! integration) pair: claimed in the ledger, sent, recorded, and turned into an [`Outcome`].
//! [`Dispatcher::dispatch`] and [`Dispatcher::dispatch_queued`] hand the worker finished
//! deliveries only. Knows nothing of AMQP: the worker turns outcomes into acks, retries, queued
//! parts and dead letters.

mod breaker;
mod budget;
mod fan_out;
mod heartbeat;
mod lane;
mod order;
mod outcome;
mod plan;
mod runs;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use breaker::{BreakerState, Signal};
pub use fan_out::QueuedPart;
pub use lane::{Lane, Slot};
pub use outcome::{Delivery, Holder, Outcome, QueueReason};

use crate::event::RunEvent;
use crate::failure::DeliveryError;
use crate::integrations::{Integration, Notification};
use crate::ledger::{Applied, Claim, Key, Ledger, now_ms};
use crate::retry::RetryPolicy;
use crate::telemetry::{metrics, otel};
use heartbeat::Renewed;
use order::RunOrder;
use runs::InFlight;

/// Which integrations a message is for.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// A new event: every integration whose filters admit it, first attempt.
    Routed,
    /// A retry that came back: only this integration, at this attempt.
    Retry { integration: &'a str, attempt: u32 },
}

/// One integration's part of a message.
#[derive(Debug, Clone, Copy)]
struct Assignment<'a> {
    integration: &'a Integration,
    lane: &'a Lane,
    attempt: u32,
}

/// The integrations with their lanes, the retry policy and the ledger, built once at start.
#[derive(Debug)]
pub struct Dispatcher {
    integrations: Vec<(Integration, Lane)>,
    policy: RetryPolicy,
    ledger: Ledger,
    in_flight: InFlight,
    /// One event at a time per run and integration, so the latest one is applied last.
    order: RunOrder,
    /// Event messages held by deliveries made straight from the event queue.
    budget: budget::Budget,
}

impl Dispatcher {
    /// `prefetch`: how many event messages the worker holds at once. Deliveries made straight
    /// from the event queue hold their message until they end, so at most half that many
    /// messages may have such deliveries, whatever the number of integrations each reaches:
    /// hung receivers, however many, always leave the others half. Each integration's own
    /// concurrency bounds its deliveries in flight.
    pub fn new(
        integrations: Vec<Integration>,
        policy: RetryPolicy,
        ledger: Ledger,
        prefetch: u16,
    ) -> Self {
        let integrations = integrations
            .into_iter()
            .map(|integration| {
                let common = integration.common();
                let lane = Lane::new(
                    integration.name(),
                    common.concurrency,
                    common.circuit_breaker.failures,
                    *common.circuit_breaker.cool_down,
                );
                (integration, lane)
            })
            .collect();
        Self {
            integrations,
            policy,
            ledger,
            in_flight: InFlight::default(),
            order: RunOrder::default(),
            budget: budget::Budget::half_of(prefetch),
        }
    }

    /// Every integration with its lane, in config order.
    pub fn lanes(&self) -> impl Iterator<Item = (&Integration, &Lane)> {
        self.integrations.iter().map(|(i, l)| (i, l))
    }

    /// The integration called `name` with its lane.
    fn assignment(&self, name: &str, attempt: u32) -> Option<Assignment<'_>> {
        self.integrations
            .iter()
            .find(|(integration, _)| integration.name() == name)
            .map(|(integration, lane)| Assignment {
                integration,
                lane,
                attempt,
            })
    }

    /// Aborts this process's in-flight deliveries of a run (an operator's cancel).
    pub fn abort_run(&self, run_id: &str, integration: Option<&str>) -> usize {
        self.in_flight.abort(run_id, integration)
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Delivers one assignment in its slot: claims it in the ledger, sends, records the
    /// outcome, and tells the lane's breaker what it learned. `stop` keeps the delivery from
    /// starting; `abort` interrupts it under way.
    async fn deliver(
        &self,
        event: &RunEvent,
        assignment: Assignment<'_>,
        slot: Slot<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Delivery {
        let started = Instant::now();
        let span = otel::delivery_span(
            event.data.run_id.as_str(),
            assignment.integration.name(),
            assignment.attempt,
        );
        async {
            let outcome = if stop.is_cancelled() {
                // No step starts after shutdown began.
                Outcome::Interrupted
            } else {
                // Boxed, so that the futures carrying a delivery (one per part of a message)
                // stay small to move: this one holds the send and the ledger's writes.
                Box::pin(self.claim_and_deliver(event, assignment, abort)).await
            };
            outcome.log();
            slot.finish(&outcome);
            finished(assignment, event, outcome, started)
        }
        .instrument(span)
        .await
    }

    /// Claims the delivery in the ledger, delivers, and records the outcome.
    async fn claim_and_deliver(
        &self,
        event: &RunEvent,
        assignment: Assignment<'_>,
        abort: &CancellationToken,
    ) -> Outcome {
        let integration = assignment.integration;
        let attempt = assignment.attempt;
        let key = Key {
            run_id: &event.data.run_id,
            event_type: event.event_type().as_str(),
            integration: integration.name(),
        };
        // Long enough for one request; renewed while the delivery runs, so a worker that dies
        // loses its claim at most this long after its last renewal.
        let lease = *integration.common().timeout * 3 + Duration::from_secs(5);
        // Per run and integration the latest event wins: an older one, or a start after an
        // end, is recorded as skipped and not sent. The turn keeps another event of the run in
        // this process waiting (rather than busy) until this one is applied; the claim keeps
        // out those of other workers.
        let _turn = self.order.turn(key.run_id.as_str(), key.integration).await;
        let claim = match self
            .ledger
            .claim_patiently(key, &event.event_id, attempt, lease, abort)
            .await
        {
            None => return Outcome::Interrupted,
            Some(Claim::Claimed(claim)) => claim,
            Some(Claim::Done(state)) => {
                return Outcome::Skipped(format!("already {} (ledger)", state.as_str()));
            }
            Some(Claim::Canceled) => return Outcome::Canceled,
            Some(Claim::Busy { lease_until_ms }) => {
                // Looked at again no sooner than a second from now, so it never spins.
                let left = (lease_until_ms - now_ms()).max(1_000) as u64;
                return Outcome::Busy {
                    until: Duration::from_millis(left),
                    holder: Holder::Attempt,
                };
            }
            // Another worker delivers another event of the run here: usually done in well
            // under a second, so looked at again after the shortest wait.
            Some(Claim::Waiting) => {
                return Outcome::Busy {
                    until: Duration::from_secs(1),
                    holder: Holder::Event,
                };
            }
        };
        // As the claim read it: no other event of the run can move it while the claim is held.
        let progress = claim.progress();
        if let Some(reason) = progress.and_then(|p| p.supersedes(event)) {
            return self
                .recorded(key, &claim, Outcome::Skipped(reason), attempt, None, abort)
                .await;
        }
        let registration = self
            .in_flight
            .register(key.run_id.as_str(), key.integration, abort);
        let notification = Notification {
            event,
            integration: integration.name(),
            attempt,
            resumed: claim.resumed(),
            object_id: progress.and_then(|p| p.object_id.as_deref()),
        };
        let in_flight = metrics::in_flight();
        let started = Instant::now();
        let delivery = otel::outgoing(
            integration.common().send_traceparent,
            integration.deliver_keeping(&notification, &registration.token),
        );
        // The lease is renewed while the delivery runs, so no other worker takes it over.
        let result = heartbeat::renewing(&self.ledger, key, &claim, lease, delivery).await;
        metrics::delivery_time(integration.kind(), started.elapsed());
        drop(in_flight);
        let mut object_id = None;
        let outcome = match result {
            Renewed::Stopped(lost) => lost.outcome(lease),
            Renewed::Finished(Err(DeliveryError::Canceled)) if !abort.is_cancelled() => {
                Outcome::Canceled
            }
            Renewed::Finished(result) => {
                let result = result.map(|delivered| {
                    object_id = delivered.object_id;
                    delivered.receipt
                });
                Outcome::of(result, attempt, &self.policy)
            }
        };
        drop(registration);
        // Delivered: the run's progress moves on in the record's own write.
        let applied = matches!(outcome, Outcome::Delivered(_)).then(|| Applied {
            event,
            object_id: object_id.as_deref(),
        });
        self.recorded(key, &claim, outcome, attempt, applied, abort)
            .await
    }

    /// Records the outcome of a claimed attempt (with the event `applied`, when it was) and
    /// hands it on.
    async fn recorded(
        &self,
        key: Key<'_>,
        claim: &crate::ledger::ClaimId,
        outcome: Outcome,
        attempt: u32,
        applied: Option<Applied<'_>>,
        abort: &CancellationToken,
    ) -> Outcome {
        if let Some(mut record) = outcome.record(attempt) {
            record.applied = applied;
            self.ledger
                .record_patiently(key, claim, &record, abort)
                .await;
        }
        outcome
    }
}

/// A part left to its integration's queue: nothing was tried, so nothing is counted or logged
/// as a delivery (the queue's consumer does that once it delivers).
fn queued(assignment: Assignment<'_>, reason: QueueReason) -> Delivery {
    Delivery {
        integration: assignment.integration.name().to_string(),
        attempt: assignment.attempt,
        outcome: Outcome::Queue(reason),
        elapsed: Duration::ZERO,
    }
}

/// Counts a finished delivery and wraps it up for the worker.
fn finished(
    assignment: Assignment<'_>,
    event: &RunEvent,
    outcome: Outcome,
    started: Instant,
) -> Delivery {
    let integration = assignment.integration;
    let (label, reason) = outcome.label();
    metrics::delivery(
        integration.name(),
        integration.kind(),
        event.event_type(),
        label,
        reason,
    );
    Delivery {
        integration: integration.name().to_string(),
        attempt: assignment.attempt,
        outcome,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests;
