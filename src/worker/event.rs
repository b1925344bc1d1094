//! A message from the event queue (a new event, or a retry that came back): parse it, deliver
//! each integration's part now when that integration has a free slot, queue the rest in the
//! integrations' own queues, and ack once every part is done or safely republished.

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::field::display;
use tracing::{Instrument, Span, warn};

use super::Worker;
use super::settle::{Disposition, Message};
use crate::broker::message::{DeadLetter, MAX_HEADER_BYTES, oversized_headers};
use crate::dispatch::{Assignment, Delivery, Outcome, Step, Targets};
use crate::echo;
use crate::event::RunCanceled;
use crate::telemetry::{metrics, otel};

/// What became of an event-queue message, as one metric label: the outcome that matters most
/// to an operator among its deliveries wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventOutcome {
    // Ordered from least to most pressing.
    Skipped,
    Canceled,
    Delivered,
    /// Some part waits in its integration's queue (busy or paused).
    Queued,
    Retrying,
    DeadLettered,
    /// Not a valid event: dead-lettered unread.
    Invalid,
    /// Handed back to the broker whole (a republish failed).
    Requeued,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Skipped => "skipped",
            EventOutcome::Canceled => "canceled",
            EventOutcome::Delivered => "delivered",
            EventOutcome::Queued => "queued",
            EventOutcome::Retrying => "retrying",
            EventOutcome::DeadLettered => "dead_lettered",
            EventOutcome::Invalid => "invalid",
            EventOutcome::Requeued => "requeued",
        }
    }

    fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Delivered(_) => EventOutcome::Delivered,
            Outcome::Skipped(_) => EventOutcome::Skipped,
            Outcome::RetryIn { .. } | Outcome::Busy { .. } => EventOutcome::Retrying,
            Outcome::GiveUp(_) => EventOutcome::DeadLettered,
            Outcome::Interrupted => EventOutcome::Queued,
            Outcome::Canceled => EventOutcome::Canceled,
        }
    }
}

impl Worker {
    pub(super) async fn handle_event(
        &self,
        message: Message<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) {
        let span = otel::event_span(
            &message.inbound.message_id,
            message.delivery.properties.headers().as_ref(),
            message.body(),
        );
        async {
            let outcome = self.process_event(&message, stop, abort).await;
            metrics::event(outcome.as_str());
            let disposition = Disposition::after(outcome != EventOutcome::Requeued);
            self.settle(message, disposition).await;
            self.health.progress();
        }
        .instrument(span)
        .await;
    }

    async fn process_event(
        &self,
        message: &Message<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> EventOutcome {
        let event = match self.parse(message) {
            Ok(event) => event,
            Err(reason) => {
                warn!(message_id = %echo::value(&message.inbound.message_id), reason, "invalid event: dead-lettered");
                return match message.dead_letter(&DeadLetter::invalid(reason)).await {
                    Ok(()) => {
                        metrics::dead_letter("invalid");
                        EventOutcome::Invalid
                    }
                    Err(err) => {
                        warn!(error = %err, "cannot publish the dead letter; the message will be redelivered");
                        EventOutcome::Requeued
                    }
                };
            }
        };
        Span::current().record("run_id", event.data.run_id.as_str());
        Span::current().record("project", display(echo::value(&event.data.project_id)));

        let targets = match &message.inbound.integration {
            Some(integration) => Targets::Retry {
                integration,
                attempt: message.inbound.attempt,
            },
            None => Targets::Routed,
        };
        let mut outcome = EventOutcome::Skipped;
        let mut now = FuturesUnordered::new();
        let mut later: Vec<Assignment<'_>> = Vec::new();
        let mut done = Vec::new();
        // Held until the parts delivered now have ended: this message's share of the direct half.
        let planned = self.dispatcher.plan(&event, targets).await;
        let _held = planned.held;
        for step in planned.steps {
            match step {
                Step::Direct(assignment) => now.push(
                    self.dispatcher
                        .deliver_direct(&event, assignment, stop, abort),
                ),
                Step::Queue(assignment) => later.push(assignment),
                Step::Done(delivery) => done.push(delivery),
            }
        }
        // Parts for paused integrations go to their queues while the others deliver.
        let queue_later = async {
            let queued = join_all(later.iter().map(|a| self.queue_part(message, a))).await;
            queued.contains(&false)
        };
        let deliver_now = async {
            let mut failed = false;
            for delivery in &done {
                failed |= !self.enact(message, &event, delivery).await;
            }
            let mut outcome = EventOutcome::Skipped;
            // Each outcome is acted on as soon as it is known.
            while let Some(delivered) = now.next().await {
                match delivered {
                    Ok(delivery) => {
                        outcome = outcome.max(EventOutcome::of(&delivery.outcome));
                        failed |= !self.enact(message, &event, &delivery).await;
                    }
                    // No slot came in time: the integration's queue takes the part.
                    Err(assignment) => {
                        outcome = outcome.max(EventOutcome::Queued);
                        failed |= !self.queue_part(message, &assignment).await;
                    }
                }
            }
            (outcome, failed)
        };
        let (queue_failed, (delivered, failed)) = tokio::join!(queue_later, deliver_now);
        for delivery in &done {
            outcome = outcome.max(EventOutcome::of(&delivery.outcome));
        }
        outcome = outcome.max(delivered);
        if !later.is_empty() {
            outcome = outcome.max(EventOutcome::Queued);
        }
        if failed || queue_failed {
            EventOutcome::Requeued
        } else {
            outcome
        }
    }

    /// Puts an integration's part in its own queue; `false` when the broker did not take it
    /// (the whole message is then requeued).
    async fn queue_part(&self, message: &Message<'_>, part: &Assignment<'_>) -> bool {
        match message
            .queue_for(part.integration.name(), part.attempt)
            .await
        {
            Ok(()) => true,
            Err(err) => {
                warn!(integration = part.integration.name(), error = %err, "cannot queue a delivery for its integration; the message will be redelivered");
                false
            }
        }
    }

    /// The event in a message, or why it is not one.
    pub(super) fn parse(&self, message: &Message<'_>) -> Result<RunCanceled, String> {
        let body = message.body();
        let limit = self.config.broker.max_message_bytes;
        if body.len() > limit {
            return Err(format!(
                "message is {} bytes, over the limit of {limit} bytes",
                body.len()
            ));
        }
        if let Some(size) = oversized_headers(&message.delivery.properties) {
            return Err(format!(
                "the message's headers are {size} bytes, over the {MAX_HEADER_BYTES} bytes the \
                 worker can carry onto a retry or dead letter (the broker's frame limit)"
            ));
        }
        RunCanceled::from_amqp(body, &message.delivery.properties).map_err(|err| err.to_string())
    }

    /// Publishes the retry, dead letter or queued part a delivery's outcome asks for; `false`
    /// when the broker did not take it (the whole message is then requeued).
    pub(super) async fn enact(
        &self,
        message: &Message<'_>,
        event: &RunCanceled,
        delivery: &Delivery,
    ) -> bool {
        let integration = delivery.integration.as_str();
        let attempt = delivery.attempt;
        let published = match &delivery.outcome {
            Outcome::RetryIn { delay, error } => message
                .retry(integration, attempt + 1, *delay, &error.to_string())
                .await
                .map(|()| metrics::retry_scheduled(integration)),
            // The same attempt again once the other attempt's lease has run out.
            Outcome::Busy { until } => {
                message
                    .retry(
                        integration,
                        attempt,
                        *until,
                        "another attempt holds this delivery",
                    )
                    .await
            }
            // Shutdown stopped it: its integration's queue keeps it for the next worker.
            Outcome::Interrupted => message.queue_for(integration, attempt).await,
            Outcome::GiveUp(failure) => {
                let dead = DeadLetter::delivery(
                    integration,
                    attempt,
                    event.data.run_id.as_str(),
                    failure.to_string(),
                );
                let published = message.dead_letter(&dead).await;
                if published.is_ok() {
                    metrics::dead_letter("delivery");
                    tracing::error!(
                        integration,
                        attempts = attempt,
                        reason = failure.kind().map(|k| k.as_str()),
                        error = %failure,
                        "delivery failed for good: dead-lettered"
                    );
                }
                published
            }
            Outcome::Delivered(_) | Outcome::Skipped(_) | Outcome::Canceled => Ok(()),
        };
        match published {
            Ok(()) => true,
            Err(err) => {
                warn!(integration, error = %err, "cannot publish what the delivery's outcome asks for; the message will be redelivered");
                false
            }
        }
    }

    /// Acks or requeues the message and counts the progress.
    pub(super) async fn settle(&self, message: Message<'_>, disposition: Disposition) {
        match message.settle(disposition).await {
            Ok(true) => {}
            Ok(false) => {
                metrics::unsettled();
                warn!(
                    "the channel was replaced before the message was settled; the broker will redeliver it"
                );
            }
            Err(err) => {
                metrics::unsettled();
                warn!(error = %err, "cannot settle the message; the broker will redeliver it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventOutcome::*;

    #[test]
    fn the_most_pressing_delivery_outcome_names_the_event() {
        assert_eq!(
            [Delivered, DeadLettered, Retrying].into_iter().max(),
            Some(DeadLettered)
        );
        assert_eq!(Delivered.max(Retrying).as_str(), "retrying");
        assert_eq!(Skipped.max(Delivered), Delivered);
        assert_eq!(Skipped.max(Canceled), Canceled);
        assert_eq!(Delivered.max(Queued), Queued);
        assert_eq!(Skipped.as_str(), "skipped");
    }
}
