//! One consumed message and everything the worker may do with it: publish a retry, a dead
//! letter or an integration's queued part (each confirmed by the broker), then ack or requeue
//! the message itself exactly once.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use crate::broker::message::{DeadLetter, Inbound};
use crate::broker::{PublishError, Publisher, Seal, Topology};
use crate::telemetry::metrics;

/// A consumed message, with what it needs to be settled.
pub struct Message<'a> {
    pub delivery: Delivery,
    pub inbound: Inbound,
    publisher: &'a Publisher,
    topology: &'a Topology,
    seal: &'a Seal,
}

/// What to tell the broker about the message itself. Ordered from least to most cautious: a
/// message settles as the most cautious of what its parts asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disposition {
    /// Everything it asked for is done or safely republished.
    Ack,
    /// A republish failed: the broker keeps it for another try, and the ledger keeps finished
    /// deliveries from repeating.
    Requeue,
}

impl Disposition {
    /// Ack once what was asked for is safely published; requeue otherwise.
    pub fn after<E>(published: &Result<(), E>) -> Self {
        match published {
            Ok(()) => Disposition::Ack,
            Err(_) => Disposition::Requeue,
        }
    }
}

impl<'a> Message<'a> {
    /// Reads the message's headers, trusting those that steer it only under `seal`, which
    /// also seals everything it publishes.
    pub fn new(
        delivery: Delivery,
        publisher: &'a Publisher,
        topology: &'a Topology,
        seal: &'a Seal,
    ) -> Self {
        let inbound = Inbound::from_delivery(&delivery, seal);
        if !inbound.unsealed.is_empty() {
            // Header names only (and the message id, at most 255 bytes): never their values.
            tracing::warn!(
                message_id = %inbound.message_id,
                headers = inbound.unsealed.join(", "),
                "the message carries retry headers this worker did not seal (a producer's, or a \
                 version's before seals): they are ignored and it is handled as a new event"
            );
            metrics::unsealed_headers();
        }
        Self {
            delivery,
            inbound,
            publisher,
            topology,
            seal,
        }
    }

    pub fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    /// Schedules `attempt` of `integration` after `delay` in the broker's retry tier.
    pub async fn retry(
        &self,
        integration: &str,
        attempt: u32,
        delay: Duration,
        last_error: &str,
    ) -> Result<(), PublishError> {
        let properties = self.inbound.retry(
            &self.delivery.properties,
            integration,
            attempt,
            last_error,
            Some(delay),
        );
        let properties = self.seal.apply(properties, self.body());
        let queue = self.topology.retry_queue(delay);
        self.publisher
            .publish("", &queue, self.body(), properties)
            .await
    }

    /// Puts `integration`'s part, at `attempt`, in that integration's own queue.
    pub async fn queue_for(&self, integration: &str, attempt: u32) -> Result<(), PublishError> {
        let properties = self
            .inbound
            .queued(&self.delivery.properties, integration, attempt);
        let properties = self.seal.apply(properties, self.body());
        let queue = self.topology.work_queue(integration);
        self.publisher
            .publish("", &queue, self.body(), properties)
            .await
    }

    /// Publishes the message to the dead-letter queue with why.
    pub async fn dead_letter(&self, dead: &DeadLetter) -> Result<(), PublishError> {
        let properties = self.inbound.dead_letter(&self.delivery.properties, dead);
        let properties = self.seal.apply_for_replay(properties, self.body());
        self.publisher
            .publish(
                "",
                &self.topology.dead_letter_queue,
                self.body(),
                properties,
            )
            .await
    }

    /// Acks or requeues the message. `Ok(false)`: the channel was replaced meanwhile and the
    /// broker will redeliver it (the ledger keeps that from repeating a delivery).
    pub async fn settle(self, disposition: Disposition) -> Result<bool, lapin::Error> {
        let acker = &self.delivery.acker;
        match disposition {
            Disposition::Ack => acker.ack(BasicAckOptions::default()).await,
            Disposition::Requeue => {
                acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        }
    }
}
