//! One message: parse, dispatch, then turn the outcomes into retries, dead letters and one ack.

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, error, warn};

use super::Worker;
use crate::broker::Publisher;
use crate::broker::message::{DeadLetter, Inbound};
use crate::dispatch::{Outcome, Targets};
use crate::event::RunCanceled;
use crate::telemetry::{metrics, otel};

/// What to tell the broker about the source message.
enum Disposition {
    /// Everything it asked for is done or safely republished.
    Ack,
    /// Nothing finished (shutdown) or a republish failed: the broker keeps it for another try.
    Requeue,
}

impl Worker {
    pub(super) async fn handle(
        &self,
        delivery: Delivery,
        publisher: &Publisher,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) {
        let inbound = Inbound::from_delivery(&delivery);
        let span = otel::event_span(
            &inbound.message_id,
            delivery.properties.headers().as_ref(),
            &delivery.data,
        );
        async {
            let disposition = self
                .process(&delivery, &inbound, publisher, stop, abort)
                .await;
            let settled = match disposition {
                Disposition::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
                Disposition::Requeue => {
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                }
            };
            if let Err(err) = settled {
                metrics::unsettled();
                warn!(error = %err, "cannot settle the message; the broker will redeliver it");
            }
            self.health.progress();
        }
        .instrument(span)
        .await;
    }

    async fn process(
        &self,
        delivery: &Delivery,
        inbound: &Inbound,
        publisher: &Publisher,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Disposition {
        let limit = self.config.broker.max_message_bytes;
        let event = if delivery.data.len() > limit {
            Err(format!(
                "message is {} bytes, over the limit of {limit} bytes",
                delivery.data.len()
            ))
        } else {
            RunCanceled::parse(&delivery.data).map_err(|err| err.to_string())
        };
        let event = match event {
            Ok(event) => event,
            Err(reason) => {
                warn!(message_id = %inbound.message_id, reason, "invalid event: dead-lettered");
                let dead = DeadLetter {
                    kind: "invalid",
                    error: &reason,
                    integration: None,
                    attempts: 0,
                    run_id: None,
                };
                let disposition = self.dead_letter(delivery, inbound, publisher, &dead).await;
                if let Disposition::Ack = disposition {
                    metrics::event("invalid");
                }
                return disposition;
            }
        };
        let run_id = event.data.run_id.as_str();
        Span::current().record("run_id", run_id);
        Span::current().record("project", event.data.project_id.as_str());

        let targets = match &inbound.integration {
            Some(integration) => Targets::Retry {
                integration,
                attempt: inbound.attempt,
            },
            None => Targets::Routed,
        };
        let mut deliveries = self.dispatcher.dispatch(&event, targets, stop, abort);
        let mut interrupted = Vec::new();
        let mut finished = Vec::new();
        let mut republish_failed = false;
        // Each outcome is acted on as soon as it is known: a retry is scheduled while other
        // integrations of the same event may still be in flight.
        while let Some(delivery_result) = deliveries.next().await {
            if delivery_result.outcome == Outcome::Interrupted {
                interrupted.push(delivery_result);
                continue;
            }
            finished.push(delivery_result.outcome.label().0);
            if !republish_failed {
                republish_failed = !self
                    .enact(delivery, inbound, publisher, run_id, &delivery_result)
                    .await;
            }
        }
        if republish_failed || (finished.is_empty() && !interrupted.is_empty()) {
            // Nothing finished (shutdown), or a retry could not be published: the broker keeps
            // the message and the ledger keeps finished deliveries from repeating.
            metrics::event("requeued");
            return Disposition::Requeue;
        }
        for delivery_result in &interrupted {
            // Others finished: hand back just this one, straight to the event queue.
            let properties = inbound.retry(
                &delivery.properties,
                &delivery_result.integration,
                delivery_result.attempt,
                "interrupted by shutdown",
                None,
            );
            let published = publisher
                .publish("", &self.topology.queue, &delivery.data, properties)
                .await;
            if let Err(err) = published {
                warn!(error = %err, "cannot hand the delivery back; the message will be redelivered");
                metrics::event("requeued");
                return Disposition::Requeue;
            }
        }
        metrics::event(event_outcome(&finished));
        Disposition::Ack
    }

    /// Schedules the retry or publishes the dead letter an outcome asks for; `false` when the
    /// broker did not take it.
    async fn enact(
        &self,
        delivery: &Delivery,
        inbound: &Inbound,
        publisher: &Publisher,
        run_id: &str,
        result: &crate::dispatch::Delivery,
    ) -> bool {
        let integration = result.integration.as_str();
        let attempt = result.attempt;
        match &result.outcome {
            Outcome::RetryIn { delay, error } => {
                let queue = self.topology.retry_queue(*delay);
                let properties = inbound.retry(
                    &delivery.properties,
                    integration,
                    attempt + 1,
                    &error.to_string(),
                    Some(*delay),
                );
                match publisher
                    .publish("", &queue, &delivery.data, properties)
                    .await
                {
                    Ok(()) => {
                        metrics::retry_scheduled(integration);
                        true
                    }
                    Err(err) => {
                        warn!(integration, error = %err, "cannot publish the retry; the message will be redelivered");
                        false
                    }
                }
            }
            Outcome::GiveUp(failure) => {
                let reason = failure.to_string();
                let dead = DeadLetter {
                    kind: "delivery",
                    error: &reason,
                    integration: Some(integration),
                    attempts: attempt,
                    run_id: Some(run_id),
                };
                if let Disposition::Requeue =
                    self.dead_letter(delivery, inbound, publisher, &dead).await
                {
                    return false;
                }
                error!(
                    integration,
                    attempts = attempt,
                    reason = failure.kind().map(|k| k.as_str()),
                    error = %failure,
                    "delivery failed for good: dead-lettered"
                );
                true
            }
            Outcome::Delivered(_)
            | Outcome::Skipped(_)
            | Outcome::Canceled
            | Outcome::Interrupted => true,
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        inbound: &Inbound,
        publisher: &Publisher,
        dead: &DeadLetter<'_>,
    ) -> Disposition {
        let properties = inbound.dead_letter(&delivery.properties, dead);
        let queue = &self.topology.dead_letter_queue;
        match publisher
            .publish("", queue, &delivery.data, properties)
            .await
        {
            Ok(()) => {
                metrics::dead_letter(dead.kind);
                Disposition::Ack
            }
            Err(err) => {
                warn!(error = %err, "cannot publish the dead letter; the message will be redelivered");
                Disposition::Requeue
            }
        }
    }
}

/// What became of a message, from its deliveries' outcomes: the one that matters most to an
/// operator wins (a dead letter over a retry over a delivery).
fn event_outcome(outcomes: &[&'static str]) -> &'static str {
    ["dead_lettered", "retry", "delivered", "canceled"]
        .into_iter()
        .find(|wanted| outcomes.contains(wanted))
        .map_or(
            "skipped",
            |found| if found == "retry" { "retrying" } else { found },
        )
}

#[cfg(test)]
mod tests {
    use super::event_outcome;

    #[test]
    fn the_most_pressing_delivery_outcome_names_the_event() {
        assert_eq!(
            event_outcome(&["delivered", "dead_lettered", "retry"]),
            "dead_lettered"
        );
        assert_eq!(event_outcome(&["delivered", "retry"]), "retrying");
        assert_eq!(event_outcome(&["skipped", "delivered"]), "delivered");
        assert_eq!(event_outcome(&["skipped", "canceled"]), "canceled");
        assert_eq!(event_outcome(&["skipped"]), "skipped");
        assert_eq!(event_outcome(&[]), "skipped");
    }
}
