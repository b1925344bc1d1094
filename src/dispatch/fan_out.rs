//! The dispatcher's two entry points: a message from the event queue fans out into a stream of
//! finished deliveries, one per integration it reaches; a part from an integration's own queue
//! waits for a slot of that integration's lane and becomes one finished delivery. Either way
//! the dispatcher decides now, queued or paused, and the worker only enacts what comes out.

use futures_util::stream::{self, FuturesUnordered, Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use super::plan::{Planned, Step};
use super::{Assignment, Delivery, Dispatcher, QueueReason, Targets, queued};
use crate::event::RunEvent;
use crate::telemetry::metrics;

/// A part taken from an integration's own queue.
#[derive(Debug, Clone, Copy)]
pub struct QueuedPart {
    /// The integration's index among [`Dispatcher::lanes`] (its queue's consumer is that one).
    pub integration: usize,
    /// Whether the integration's filters admitted it already: a worker queued it (its seal
    /// vouches for that). One a producer wrote to the queue is a new event, which the filters
    /// must admit first.
    pub admitted: bool,
    /// The attempt the part makes.
    pub attempt: u32,
    /// When it entered the queue (Unix ms), for the queue-wait metric and the oldest-waiting
    /// gauge.
    pub queued_at_ms: i64,
}

impl Dispatcher {
    /// Every integration's part of a message from the event queue, each yielded as soon as it
    /// has finished: filtered out, delivered now in a slot of its lane, or queued (paused, or
    /// no room in time). `stop` keeps deliveries from starting; `abort` interrupts them under
    /// way. The message's share of the direct half of the prefetch is held until the stream
    /// ends, so the caller settles the message before the share goes to another.
    pub fn dispatch<'a>(
        &'a self,
        event: &'a RunEvent,
        targets: Targets<'a>,
        stop: &'a CancellationToken,
        abort: &'a CancellationToken,
    ) -> impl Stream<Item = Delivery> + Send + 'a {
        stream::once(self.plan(event, targets)).flat_map(move |Planned { steps, held }| {
            let parts: FuturesUnordered<_> = steps
                .into_iter()
                .map(|step| self.take_step(event, step, stop, abort))
                .collect();
            parts.map(move |delivery| {
                // Moved in here so that it lives as long as the parts do.
                let _held = &held;
                delivery
            })
        })
    }

    /// A part from an integration's own queue: skipped if it is a new event the integration's
    /// filters refuse; otherwise waits for a slot of its lane (holding only that queue's
    /// prefetch), calls `started` once it has one, and delivers. Handed back to the queue
    /// (`Outcome::Queue`) when shutdown comes first.
    pub async fn dispatch_queued(
        &self,
        event: &RunEvent,
        part: QueuedPart,
        stop: &CancellationToken,
        abort: &CancellationToken,
        started: impl FnOnce(),
    ) -> Delivery {
        let (integration, lane) = &self.integrations[part.integration];
        let assignment = Assignment {
            integration,
            lane,
            attempt: part.attempt,
        };
        if !part.admitted
            && let Some(skipped) = self.filtered_out(event, assignment)
        {
            return skipped;
        }
        let Some(slot) = lane.slot(part.queued_at_ms, stop).await else {
            return queued(assignment, QueueReason::Stopping);
        };
        metrics::queue_wait(integration.name(), part.queued_at_ms);
        started();
        self.deliver(event, assignment, slot, stop, abort).await
    }

    /// One part of a fanned-out message: a direct one waits briefly for a slot of its lane
    /// and goes to the integration's queue when none comes in time.
    async fn take_step(
        &self,
        event: &RunEvent,
        step: Step<'_>,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Delivery {
        match step {
            Step::Done(delivery) => delivery,
            Step::Direct(assignment) => match assignment.lane.direct_slot().await {
                Some(slot) => self.deliver(event, assignment, slot, stop, abort).await,
                None => queued(assignment, QueueReason::Full),
            },
        }
    }
}
