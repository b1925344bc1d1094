//! Per-integration gauges that need a look at the broker: how many deliveries wait in each
//! integration's queue, and how old the oldest waiting one is.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Worker;
use crate::telemetry::metrics;

/// How often the queues are looked at.
const EVERY: Duration = Duration::from_secs(5);

/// Refreshes the gauges every few seconds until the session is over.
pub(super) async fn poll(worker: Arc<Worker>, channel: lapin::Channel, over: CancellationToken) {
    loop {
        for (integration, lane) in worker.dispatcher.lanes() {
            let queue = worker.topology.work_queue(integration.name());
            // Passive: only asks; the worker declared the queue when the session opened.
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(queue) => metrics::integration_queued(
                    integration.name(),
                    u64::from(queue.message_count()) + lane.waiting() as u64,
                ),
                Err(err) => {
                    debug!(error = %err, queue, "cannot read the queue depth");
                    return;
                }
            }
            metrics::integration_oldest_waiting(integration.name(), lane.oldest_waiting_ms());
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = over.cancelled() => return,
        }
    }
}
