//! The consumer: keeps a broker session alive, hands each message to its handler, and shuts
//! down without losing one. Knows nothing of HTTP: [`crate::dispatch`] delivers.

mod event;
mod gauges;
mod session;
mod settle;
mod work;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use event::EventOutcome;

use crate::admin::Health;
use crate::broker::{Seal, Topology};
use crate::config::Config;
use crate::control::ControlMessage;
use crate::dispatch::Dispatcher;
use session::Session;
use settle::Message;

/// How long interrupted deliveries get to hand their messages back after the grace period.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a message handler needs, shared by all in-flight messages.
pub struct Worker {
    config: Config,
    topology: Topology,
    dispatcher: Dispatcher,
    health: Health,
    /// Vouches for the retries and queued parts this worker (or another on its ledger) wrote.
    seal: Seal,
}

impl Worker {
    pub fn new(config: Config, dispatcher: Dispatcher, health: Health, seal: Seal) -> Self {
        Self {
            topology: Topology::of(&config),
            config,
            dispatcher,
            health,
            seal,
        }
    }

    /// Consumes until `shutdown`, reconnecting with capped exponential backoff whenever the
    /// session fails; then drains in-flight deliveries within the grace period.
    pub async fn run(self: Arc<Self>, shutdown: &CancellationToken) {
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
        mut session: Session,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        self.health.set_consuming(true);
        info!(queue = %self.topology.queue, prefetch = self.config.broker.prefetch, "consuming");
        let tracker = TaskTracker::new();
        let abort = CancellationToken::new();
        let session_over = CancellationToken::new();
        tokio::spawn(gauges::poll(
            Arc::clone(self),
            session.gauges.clone(),
            session_over.clone(),
        ));
        let _session_over = session_over.drop_guard();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = session.events.next() => match next {
                    Some(Ok(delivery)) => {
                        self.health.taken();
                        let worker = Arc::clone(self);
                        let publisher = session.publisher.clone();
                        let (stop, abort) = (shutdown.clone(), abort.clone());
                        tracker.spawn(async move {
                            let message = Message::new(delivery, &publisher, &worker.topology, &worker.seal);
                            worker.handle_event(message, &stop, &abort).await;
                        });
                    }
                    Some(Err(err)) => return Err(err).context("consumer failed"),
                    None => anyhow::bail!("the broker ended the consumer"),
                },
                next = session.work.next() => match next {
                    Some((integration, Ok(delivery))) => {
                        let worker = Arc::clone(self);
                        let publisher = session.publisher.clone();
                        let (stop, abort) = (shutdown.clone(), abort.clone());
                        tracker.spawn(async move {
                            let message = Message::new(delivery, &publisher, &worker.topology, &worker.seal);
                            worker.handle_work(integration, message, &stop, &abort).await;
                        });
                    }
                    Some((_, Err(err))) => return Err(err).context("an integration's consumer failed"),
                    None => anyhow::bail!("the broker ended the integrations' consumers"),
                },
                command = session.control.next() => match command {
                    Some(Ok(delivery)) => self.obey(&delivery.data),
                    Some(Err(err)) => return Err(err).context("control consumer failed"),
                    None => anyhow::bail!("the broker ended the control consumer"),
                },
            }
        }

        // Shutdown: no new messages; prefetched ones not yet taken go back when the channels close.
        self.health.set_consuming(false);
        session.stop_consuming().await;
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
        session.close().await;
        info!("stopped");
        Ok(())
    }
}
