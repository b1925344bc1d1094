//! One broker session: the connection, the confirm-mode publisher, the declared topology, and
//! the consumers: the event queue, each integration's own queue (on its own channel, with its
//! concurrency as prefetch), and the control exchange.

use anyhow::Context as _;
use futures_util::Stream;
use futures_util::StreamExt as _;
use futures_util::stream::select_all;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use tracing::warn;

use crate::admin::Health;
use crate::broker::{self, DeclareError, Publisher, Topology};
use crate::config::BrokerConfig;
use crate::dispatch::Dispatcher;

/// Deliveries of every integration's queue, tagged with the integration's index.
pub(super) type WorkStream =
    std::pin::Pin<Box<dyn Stream<Item = (usize, Result<Delivery, lapin::Error>)> + Send + Sync>>;

/// An open broker session, ready to consume.
pub(super) struct Session {
    pub connection: lapin::Connection,
    pub publisher: Publisher,
    pub events: lapin::Consumer,
    /// Deliveries of every integration's queue, tagged with the integration's index.
    pub work: WorkStream,
    pub control: lapin::Consumer,
    /// A channel of its own for reading queue depths (a failed read closes only it).
    pub gauges: lapin::Channel,
    /// Each consumer's channel and tag, to stop them at shutdown.
    pub consumers: Vec<(lapin::Channel, String)>,
}

impl Session {
    /// Connects, declares the topology and starts consuming the event queue, the control
    /// exchange and the queue of each of the dispatcher's integrations. A topology conflict
    /// is also reported to `health`, where readiness is read.
    pub async fn open(
        broker: &BrokerConfig,
        topology: &Topology,
        dispatcher: &Dispatcher,
        health: &Health,
    ) -> anyhow::Result<Session> {
        let connection = broker::connect_to(broker, "worker")
            .await
            .context("cannot connect to the broker")?;
        let publisher = Publisher::open(&connection)
            .await
            .context("cannot open the publishing channel")?;
        if let Err(err) = topology.declare(publisher.channel()).await {
            // A name taken with other arguments stays taken until an operator acts: say so
            // where readiness is read, not only in the log.
            if let DeclareError::Conflict(sentence) = &err {
                health.set_broker_problem(Some(sentence.clone()));
            }
            return Err(err.into());
        }
        let pid = std::process::id();
        let mut consumers = Vec::new();

        let tag = format!("run-notifier-{pid}");
        let (channel, events) = consume(&connection, &topology.queue, &tag, broker.prefetch)
            .await
            .context("cannot consume from the event queue")?;
        let control = control_consumer(&channel, topology)
            .await
            .context("cannot subscribe to the control exchange")?;
        consumers.push((channel, tag));

        let mut work = Vec::new();
        for (index, (integration, _)) in dispatcher.lanes().enumerate() {
            let queue = topology.work_queue(integration.name());
            let tag = format!("run-notifier-{pid}-{}", integration.name());
            // The prefetch is the integration's concurrency: a paused or hung integration holds
            // at most that many of its own messages, and its queue keeps the rest.
            let prefetch = u16::try_from(integration.common().concurrency).unwrap_or(u16::MAX);
            let (channel, consumer) = consume(&connection, &queue, &tag, prefetch)
                .await
                .with_context(|| format!("cannot consume from `{queue}`"))?;
            consumers.push((channel, tag));
            work.push(consumer.map(move |delivery| (index, delivery)));
        }
        // With no integration there is nothing to consume there, and nothing has ended either.
        let work: WorkStream = if work.is_empty() {
            Box::pin(futures_util::stream::pending())
        } else {
            Box::pin(select_all(work))
        };
        Ok(Session {
            gauges: connection.create_channel().await?,
            connection,
            publisher,
            events,
            work,
            control,
            consumers,
        })
    }

    /// Stops every consumer: the broker sends nothing more; what it sent and was not taken
    /// goes back when the channels close.
    pub async fn stop_consuming(&self) {
        for (channel, tag) in &self.consumers {
            if let Err(err) = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                warn!(error = %err, consumer = tag, "cannot cancel the consumer");
            }
        }
    }

    /// Closes channels and connection; best effort, since the broker requeues whatever is
    /// still unacked.
    pub async fn close(self) {
        for (channel, _) in &self.consumers {
            let _ = channel.close(200, "shutdown".into()).await;
        }
        let _ = self.gauges.close(200, "shutdown".into()).await;
        let _ = self.publisher.channel().close(200, "shutdown".into()).await;
        let _ = self.connection.close(200, "shutdown".into()).await;
    }
}

/// A private queue on the control fanout exchange: every worker hears every command.
async fn control_consumer(
    channel: &lapin::Channel,
    topology: &Topology,
) -> Result<lapin::Consumer, lapin::Error> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            topology.control_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// A channel with `prefetch` consuming `queue` as `tag`.
async fn consume(
    connection: &lapin::Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> Result<(lapin::Channel, lapin::Consumer), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}
