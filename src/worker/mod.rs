//! The worker: keeps a broker session alive, consumes events, and shuts down without losing one.

mod handle;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::{self, Health};
use crate::broker::{self, Publisher, Topology};
use crate::config::Config;
use crate::control::ControlMessage;
use crate::dispatch::Dispatcher;
use crate::integrations::{build_all, http_client};
use crate::ledger::Ledger;
use crate::render::TemplateError;
use crate::retry::RetryPolicy;

/// How long interrupted deliveries get to hand their messages back after the grace period.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a message handler needs, shared by all in-flight messages.
struct Worker {
    config: Config,
    topology: Topology,
    dispatcher: Dispatcher,
    health: Health,
    ledger: Ledger,
}

/// Runs the worker until `shutdown` is cancelled (SIGTERM/SIGINT in the binary), then stops
/// consuming, lets in-flight deliveries finish within the grace period, hands back the rest,
/// and closes the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let integrations = build_all(&config.integrations, &config.templates_dir, &http_client())
        .map_err(TemplateError::all)?;
    let ledger = Ledger::open(&config.ledger)
        .await
        .context("cannot open the ledger")?;
    let health = Health::new(*config.worker.stall_timeout);
    let admin = admin::serve(
        config.admin.listen,
        health.clone(),
        ledger.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {} (admin.listen)", config.admin.listen))?;
    tokio::spawn(prune(
        ledger.clone(),
        config.ledger.retention.0,
        config.ledger.prune_interval.0,
        shutdown.clone(),
    ));

    let policy = RetryPolicy::new(config.retry.clone());
    let topology = Topology::new(&config.broker, policy.longest_delay());
    let worker = Arc::new(Worker {
        dispatcher: Dispatcher::new(integrations, policy, ledger.clone()),
        topology,
        health,
        ledger,
        config,
    });
    worker.supervise(&shutdown).await;
    admin.await.context("admin listener panicked")??;
    worker.ledger.close().await;
    Ok(())
}

/// Deletes old finished deliveries from the ledger every `interval`, so it does not grow
/// without bound.
async fn prune(
    ledger: Ledger,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match ledger.prune(retention).await {
            Ok(0) => {}
            Ok(pruned) => info!(pruned, "pruned old deliveries from the ledger"),
            Err(err) => warn!(error = %err, "cannot prune the ledger"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// An open broker session, ready to consume.
struct Session {
    connection: lapin::Connection,
    channel: lapin::Channel,
    publisher: Publisher,
    consumer: lapin::Consumer,
    control: lapin::Consumer,
    tag: String,
}

impl Worker {
    /// Reconnects with capped exponential backoff until shutdown.
    async fn supervise(self: &Arc<Self>, shutdown: &CancellationToken) {
        let reconnect = || {
            ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(*self.config.broker.reconnect_max_delay)
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut delays = reconnect();
        loop {
            let failure = match self.open().await {
                Ok(session) => {
                    delays = reconnect();
                    match self.consume(session, shutdown).await {
                        Ok(()) => return,
                        Err(err) => err,
                    }
                }
                Err(err) => err,
            };
            self.health.set_consuming(false);
            let delay = delays
                .next()
                .unwrap_or(*self.config.broker.reconnect_max_delay);
            warn!(
                error = format!("{failure:#}"),
                delay_ms = delay.as_millis() as u64,
                "broker session failed; reconnecting"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Connects, declares the topology and starts consuming.
    async fn open(&self) -> anyhow::Result<Session> {
        let broker = &self.config.broker;
        let connection = broker::connect(broker.url.expose(), "worker")
            .await
            .context("cannot connect to the broker")?;
        let publisher = Publisher::open(&connection)
            .await
            .context("cannot open the publishing channel")?;
        self.topology
            .declare(publisher.channel())
            .await
            .context("cannot declare the topology")?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(broker.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("run-notifier-{}", std::process::id());
        let consumer = channel
            .basic_consume(
                self.topology.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("cannot consume from the event queue")?;
        let control = self
            .control_consumer(&channel)
            .await
            .context("cannot subscribe to the control exchange")?;
        Ok(Session {
            connection,
            channel,
            publisher,
            consumer,
            control,
            tag,
        })
    }

    /// A private queue on the control fanout exchange: every worker hears every command.
    async fn control_consumer(
        &self,
        channel: &lapin::Channel,
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
                self.topology.control_exchange.as_str().into(),
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

    fn obey(&self, body: &[u8]) {
        match ControlMessage::parse(body) {
            Ok(ControlMessage::CancelRun {
                run_id,
                integration,
            }) => {
                let aborted = self.dispatcher.abort_run(&run_id, integration.as_deref());
                info!(
                    run_id,
                    integration, aborted, "operator canceled the run's deliveries"
                );
            }
            Err(err) => warn!(error = %err, "ignored an unknown control message"),
        }
    }

    /// Consumes until shutdown (then drains and closes: `Ok`) or until the session fails.
    async fn consume(
        self: &Arc<Self>,
        session: Session,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let Session {
            connection,
            channel,
            publisher,
            mut consumer,
            mut control,
            tag,
        } = session;
        self.health.set_consuming(true);
        info!(queue = %self.topology.queue, prefetch = self.config.broker.prefetch, "consuming");
        let tracker = TaskTracker::new();
        let abort = CancellationToken::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        self.health.taken();
                        let worker = Arc::clone(self);
                        let publisher = publisher.clone();
                        let (stop, abort) = (shutdown.clone(), abort.clone());
                        tracker.spawn(async move {
                            worker.handle(delivery, &publisher, &stop, &abort).await;
                        });
                    }
                    Some(Err(err)) => return Err(err).context("consumer failed"),
                    None => anyhow::bail!("the broker ended the consumer"),
                },
                command = control.next() => match command {
                    Some(Ok(delivery)) => self.obey(&delivery.data),
                    Some(Err(err)) => return Err(err).context("control consumer failed"),
                    None => anyhow::bail!("the broker ended the control consumer"),
                },
            }
        }

        // Shutdown: no new messages; prefetched ones not yet taken go back when the channel closes.
        self.health.set_consuming(false);
        if let Err(err) = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            warn!(error = %err, "cannot cancel the consumer");
        }
        tracker.close();
        let grace = *self.config.worker.shutdown_grace;
        info!(
            in_flight = tracker.len(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: waiting for in-flight deliveries"
        );
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            info!(
                in_flight = tracker.len(),
                "grace period over: aborting the rest and handing them back"
            );
            abort.cancel();
            if tokio::time::timeout(HAND_BACK_TIMEOUT, tracker.wait())
                .await
                .is_err()
            {
                warn!("some messages could not be handed back in time; the broker redelivers them");
            }
        }
        // Closing is best effort: whatever is still unacked is requeued by the broker.
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = publisher.channel().close(200, "shutdown".into()).await;
        let _ = connection.close(200, "shutdown".into()).await;
        info!("stopped");
        Ok(())
    }
}
