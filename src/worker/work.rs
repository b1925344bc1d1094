//! A message from an integration's own queue: it waits for a slot in that integration's lane
//! (its concurrency and circuit breaker), is delivered, and is acked once its outcome is safe.

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, warn};

use super::Worker;
use super::settle::{Disposition, Message};
use crate::broker::message::DeadLetter;
use crate::dispatch::Assignment;
use crate::telemetry::{metrics, otel};

impl Worker {
    pub(super) async fn handle_work(
        &self,
        integration: usize,
        message: Message<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) {
        let Some((integration, lane)) = self.dispatcher.lanes().nth(integration) else {
            return;
        };
        // The producer's trace goes on through the integration's queue.
        let span = otel::event_span(
            &message.inbound.message_id,
            message.delivery.properties.headers().as_ref(),
            message.body(),
        );
        async {
            let event = match self.parse(&message) {
                Ok(event) => event,
                Err(reason) => {
                    // Only valid events are queued; this one was changed in the queue.
                    warn!(
                        reason,
                        "invalid message in an integration's queue: dead-lettered"
                    );
                    let dead = message.dead_letter(&DeadLetter::invalid(reason)).await;
                    let dead = dead.inspect_err(|err| warn!(error = %err, "cannot publish the dead letter; the message will be redelivered"));
                    return self.settle(message, Disposition::after(dead.is_ok())).await;
                }
            };
            tracing::Span::current().record("run_id", event.data.run_id.as_str());
            // Without the seal of a worker that queued it, the part is a new event at its first
            // attempt (`inbound.attempt` is 1 then): the integration's filters decide.
            let unsealed = Assignment {
                integration,
                lane,
                attempt: 1,
            };
            if message.inbound.integration.is_none()
                && self.dispatcher.filtered_out(&event, unsealed).is_some()
            {
                self.settle(message, Disposition::Ack).await;
                return self.health.progress();
            }
            let queued_at = message
                .inbound
                .queued_at_ms
                .unwrap_or_else(crate::ledger::now_ms);
            // Waiting here holds only this integration's prefetch: its queue keeps the rest.
            let Some(slot) = lane.slot(queued_at, stop).await else {
                // Shutdown came first. Published again rather than nacked, so that restarts
                // while an integration is paused do not count towards the queue's delivery
                // limit (which would dead-letter it).
                let queued = message
                    .queue_for(integration.name(), message.inbound.attempt)
                    .await;
                let queued = queued.inspect_err(|err| warn!(error = %err, "cannot put the delivery back in its queue; the message will be redelivered"));
                return self.settle(message, Disposition::after(queued.is_ok())).await;
            };
            metrics::queue_wait(integration.name(), queued_at);
            self.health.taken();
            let assignment = Assignment {
                integration,
                lane,
                attempt: message.inbound.attempt,
            };
            let delivery = self
                .dispatcher
                .deliver(&event, assignment, slot, stop, abort)
                .await;
            let enacted = self.enact(&message, &event, &delivery).await;
            self.settle(message, Disposition::after(enacted)).await;
            self.health.progress();
        }
        .instrument(span)
        .await;
    }
}
