//! What to do with each integration's part of a message: done already (filtered out, or an
//! integration no longer configured), delivered now, or queued in the integration's own queue.

use std::time::{Duration, Instant};

use super::budget::Held;
use super::{Assignment, Delivery, Dispatcher, Outcome, QueueReason, Targets, finished, queued};
use crate::event::RunEvent;
use crate::failure::DeliveryError;
use crate::integrations::IntegrationName;
use crate::ledger::{Key, State};
use crate::telemetry::metrics;

/// What to do now with one integration's part of a message.
pub(super) enum Step<'a> {
    /// Deliver now, in a slot of its lane if one comes in time.
    Direct(Assignment<'a>),
    /// Decided already: filtered out, no longer configured (counted and logged), or queued in
    /// the integration's own queue (paused, or no room in the direct half).
    Done(Delivery),
}

/// The steps of one message, and its share of the direct half of the prefetch when some
/// parts are delivered now (held until they end).
pub(super) struct Planned<'a> {
    pub steps: Vec<Step<'a>>,
    pub held: Option<Held>,
}

impl Dispatcher {
    /// What to do for each integration the message is for: filtered ones are done; the others
    /// are delivered now when their breaker is closed and the message gets a share of the
    /// direct half of the prefetch, and queued otherwise.
    pub(super) async fn plan<'a>(&'a self, event: &RunEvent, targets: Targets<'_>) -> Planned<'a> {
        let mut steps = self.steps(event, targets).await;
        let mut held = None;
        if steps.iter().any(|step| matches!(step, Step::Direct(_))) {
            held = self.budget.take().await;
            if held.is_none() {
                for step in &mut steps {
                    if let Step::Direct(assignment) = *step {
                        *step = Step::Done(queued(assignment, QueueReason::Full));
                    }
                }
            }
        }
        Planned { steps, held }
    }

    async fn steps<'a>(&'a self, event: &RunEvent, targets: Targets<'_>) -> Vec<Step<'a>> {
        match targets {
            Targets::Routed => self
                .integrations
                .iter()
                .map(|(integration, lane)| {
                    let assignment = Assignment {
                        integration,
                        lane,
                        attempt: 1,
                    };
                    // Filters route new events only: a retry was admitted when it was new.
                    match self.filtered_out(event, assignment) {
                        Some(skipped) => Step::Done(skipped),
                        None => step(assignment),
                    }
                })
                .collect(),
            Targets::Retry {
                integration,
                attempt,
            } => match self.assignment(integration, attempt) {
                Some(assignment) => vec![step(assignment)],
                None => vec![Step::Done(
                    self.unconfigured(event, integration, attempt).await,
                )],
            },
        }
    }

    /// The assignment done as skipped when its integration's filters exclude the event: for a
    /// new event, and for a part in an integration's queue that no worker sealed (a producer
    /// wrote to that queue, which makes it a new event too).
    pub(super) fn filtered_out(
        &self,
        event: &RunEvent,
        assignment: Assignment<'_>,
    ) -> Option<Delivery> {
        let reason = assignment.integration.admit(event).err()?;
        let outcome = Outcome::Skipped(format!("filtered out: {reason}"));
        Some(finished(assignment, event, outcome, Instant::now()))
    }

    /// A retry for an integration no longer in the config: dropped when an operator canceled
    /// the run's deliveries, dead-lettered otherwise (it cannot be delivered).
    async fn unconfigured(&self, event: &RunEvent, integration: &str, attempt: u32) -> Delivery {
        // A name no configured integration has may be no valid name either (an older config's
        // rule): then no row can hold it.
        let canceled = match IntegrationName::parse(integration) {
            Ok(name) => {
                let key = Key {
                    run_id: &event.data.run_id,
                    event_type: event.event_type().as_str(),
                    integration: &name,
                };
                self.ledger.state(key).await
            }
            Err(_) => Ok(None),
        };
        let outcome = match canceled {
            Ok(Some(State::Canceled)) => Outcome::Canceled,
            _ => Outcome::GiveUp(DeliveryError::permanent(format!(
                "integration `{integration}` is no longer configured"
            ))),
        };
        outcome.log();
        let (label, reason) = outcome.label();
        // The name came in a message: it is no label value, and no kind can be told for it.
        metrics::delivery(
            metrics::UNKNOWN_INTEGRATION,
            "unknown",
            event.event_type(),
            label,
            reason,
        );
        Delivery {
            integration: integration.to_owned(),
            attempt,
            outcome,
            elapsed: Duration::ZERO,
        }
    }
}

/// Delivered now unless the integration is paused; then the integration's queue holds it.
fn step(assignment: Assignment<'_>) -> Step<'_> {
    if assignment.lane.open_to_new_work() {
        Step::Direct(assignment)
    } else {
        Step::Done(queued(assignment, QueueReason::Paused))
    }
}
