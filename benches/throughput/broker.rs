//! The broker side of the benchmark: the real topology, pre-publishing persistent events with
//! confirms, the bare consumer (the broker's limit), and deleting what a scenario declared.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use run_notifier::broker::{self, Topology};
use run_notifier::config::Config;

use crate::events::{self, Load, Message};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Publishes at most this many events before waiting for their confirms.
const CONFIRM_WINDOW: usize = 2_000;

/// A connection and a channel in confirm mode.
pub struct Broker {
    pub connection: Connection,
    pub channel: Channel,
}

impl Broker {
    pub async fn connect() -> Self {
        let connection = broker::connect(AMQP_URL, "bench")
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            connection,
            channel,
        }
    }

    /// Declares the topology exactly as the worker will (quorum queue, retry tiers, bindings).
    pub async fn declare(&self, config: &Config) -> Topology {
        let topology = Topology::of(config);
        topology.declare(&self.channel).await.unwrap();
        topology
    }

    /// Publishes one `run.canceled` event with this run id, persistent, as the dashboard does.
    pub async fn publish(&self, topology: &Topology, run_id: &str) -> lapin::PublisherConfirm {
        self.publish_message(topology, &events::canceled(run_id))
            .await
    }

    /// Publishes `message` with its type as routing key, persistent.
    pub async fn publish_message(
        &self,
        topology: &Topology,
        message: &Message,
    ) -> lapin::PublisherConfirm {
        self.publish_body(topology, message.routing_key, message.body.as_bytes())
            .await
    }

    /// Publishes `body` as an event would be, persistent, with `routing_key`.
    pub async fn publish_body(
        &self,
        topology: &Topology,
        routing_key: &str,
        body: &[u8],
    ) -> lapin::PublisherConfirm {
        let properties = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2);
        self.channel
            .basic_publish(
                topology.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
    }

    /// Publishes `count` `run.canceled` events and waits for every confirm.
    pub async fn prepublish(
        &self,
        topology: &Topology,
        prefix: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        self.publish_all(topology, &Load::CancelOnly.messages(prefix, count))
            .await
    }

    /// Publishes `messages` in order, at most [`CONFIRM_WINDOW`] unconfirmed at once, and
    /// waits for every confirm.
    pub async fn publish_all(
        &self,
        topology: &Topology,
        messages: &[Message],
    ) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(CONFIRM_WINDOW);
        for message in messages {
            pending.push(self.publish_message(topology, message).await);
            if pending.len() == CONFIRM_WINDOW {
                confirmed(pending.drain(..)).await?;
            }
        }
        confirmed(pending).await
    }

    /// The baseline: a bare consumer with the same prefetch that only acks, one ack per
    /// message; returns how long `count` messages took from `basic_consume`.
    pub async fn bare_consume(&self, queue: &str, prefetch: u16, count: usize) -> Duration {
        let channel = self.connection.create_channel().await.unwrap();
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .unwrap();
        let started = Instant::now();
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "bare".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for _ in 0..count {
            let delivery = consumer.next().await.unwrap().unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        let elapsed = started.elapsed();
        let _ = channel.close(200, "done".into()).await;
        elapsed
    }

    /// How many messages wait in `queue` (0 when it cannot be read).
    pub async fn depth(&self, queue: &str) -> u32 {
        self.queue_state(queue)
            .await
            .map_or(0, |(messages, _)| messages)
    }

    /// How many consumers `queue` has (0 when it cannot be read): whether a child consumes,
    /// known without asking the child anything.
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.queue_state(queue)
            .await
            .map_or(0, |(_, consumers)| consumers)
    }

    /// The messages waiting in `queue` and its consumers, from a passive declare.
    async fn queue_state(&self, queue: &str) -> Option<(u32, u32)> {
        let channel = self.connection.create_channel().await.ok()?;
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let state = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .ok()
            .map(|queue| (queue.message_count(), queue.consumer_count()));
        let _ = channel.close(200, "done".into()).await;
        state
    }

    /// Deletes what a scenario's config declares (best effort): the event, dead-letter and
    /// retry queues, each integration's own queue `<queue>.<integration>`, and the exchanges.
    pub async fn delete(&self, config: &Config) {
        let Ok(channel) = self.connection.create_channel().await else {
            return;
        };
        let broker = &config.broker;
        let topology = Topology::of(config);
        let mut queues = vec![broker.queue.clone(), broker.dead_letter_queue.clone()];
        queues.extend((0..16).map(|k| format!("{}.{}s", broker.retry_prefix(), 1u64 << k)));
        queues.extend(
            config
                .integrations
                .iter()
                .map(|integration| topology.work_queue(integration.name())),
        );
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [&topology.exchange, &broker.control_exchange] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = channel.close(200, "done".into()).await;
    }
}

/// Waits for each confirm; an error when the broker refused one (every event must be there).
async fn confirmed(
    pending: impl IntoIterator<Item = lapin::PublisherConfirm>,
) -> anyhow::Result<()> {
    for confirm in pending {
        if !confirm.await.context("publish confirm")?.is_ack() {
            bail!("the broker refused a published event");
        }
    }
    Ok(())
}
