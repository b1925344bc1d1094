//! The consumer: keeps a broker session alive, hands each message to the dispatcher, enacts
//! the deliveries that come back (retry, queued part, dead letter: each confirmed), settles the
//! message once, and shuts down without losing one. Knows nothing of HTTP, and decides nothing
//! about delivery: [`crate::dispatch`] owns the fan-out.

mod event_outcome;
mod gauges;
mod session;
mod settle;

use std::fmt::Write as _;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::stream::{self, Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::field::display;
use tracing::{Instrument as _, Span, info, warn};

pub use event_outcome::EventOutcome;

use crate::admin::Health;
use crate::broker::message::{DeadLetter, MAX_HEADER_BYTES, oversized_headers};
use crate::broker::{Seal, Topology};
use crate::config::Config;
use crate::control::ControlMessage;
use crate::dispatch::{Delivery, Dispatcher, Outcome, QueuedPart, Targets};
use crate::echo;
use crate::event::RunEvent;
use crate::telemetry::{metrics, otel};
use session::Session;
use settle::{Disposition, Message};

/// How long interrupted deliveries get to hand their messages back after the grace period.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a message was consumed from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The event queue: a new event, or a retry that came back.
    Events,
    /// The own queue of the integration at this index of [`Dispatcher::lanes`].
    Integration(usize),
}

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
            let session = Session::open(
                &self.config.broker,
                &self.topology,
                &self.dispatcher,
                &self.health,
            );
            let failure = match session.await {
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
            let (delivery, source) = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = session.events.next() => match next {
                    Some(Ok(delivery)) => (delivery, Source::Events),
                    Some(Err(err)) => return Err(err).context("consumer failed"),
                    None => anyhow::bail!("the broker ended the consumer"),
                },
                next = session.work.next() => match next {
                    Some((index, Ok(delivery))) => (delivery, Source::Integration(index)),
                    Some((_, Err(err))) => return Err(err).context("an integration's consumer failed"),
                    None => anyhow::bail!("the broker ended the integrations' consumers"),
                },
                command = session.control.next() => match command {
                    Some(Ok(delivery)) => {
                        self.obey(&delivery.data);
                        continue;
                    }
                    Some(Err(err)) => return Err(err).context("control consumer failed"),
                    None => anyhow::bail!("the broker ended the control consumer"),
                },
            };
            let worker = Arc::clone(self);
            let publisher = session.publisher.clone();
            let (stop, abort) = (shutdown.clone(), abort.clone());
            tracker.spawn(async move {
                let message = Message::new(delivery, &publisher, &worker.topology, &worker.seal);
                worker.handle(message, source, &stop, &abort).await;
            });
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

    /// Parses the message, has the dispatcher deliver its parts, enacts each finished one as it
    /// comes, and settles the message once. A message from an integration's queue counts as
    /// taken (for liveness) only once it has a slot: waiting for a paused integration is no
    /// stall.
    async fn handle(
        &self,
        message: Message<'_>,
        source: Source,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) {
        // The producer's trace goes on through the integration's queue.
        let span = otel::event_span(
            &message.inbound.message_id,
            message.delivery.properties.headers().as_ref(),
            message.body(),
        );
        async {
            let mut taken = matches!(source, Source::Events).then(|| self.health.take());
            let (label, disposition) = match self.parse(&message) {
                Err(reason) => (EventOutcome::Invalid, self.reject(&message, reason).await),
                Ok(event) => {
                    Span::current().record("run_id", event.data.run_id.as_str());
                    let project = display(echo::value(&event.data.project_id));
                    Span::current().record("project", project);
                    let started = || taken = Some(self.health.take());
                    // Boxed: the spawned task that handles a message then moves a small future.
                    Box::pin(self.deliver(&message, &event, source, stop, abort, started)).await
                }
            };
            if let Source::Events = source {
                metrics::event(label.settled(disposition).as_str());
            }
            self.settle(message, disposition).await;
            drop(taken);
        }
        .instrument(span)
        .await;
    }

    /// Has the dispatcher deliver the message's parts, and enacts each as it finishes.
    /// `started`: a part from an integration's queue got its slot.
    async fn deliver(
        &self,
        message: &Message<'_>,
        event: &RunEvent,
        source: Source,
        stop: &CancellationToken,
        abort: &CancellationToken,
        started: impl FnOnce(),
    ) -> (EventOutcome, Disposition) {
        let inbound = &message.inbound;
        match source {
            Source::Events => {
                let targets = match &inbound.integration {
                    // A retry that came back: for its one integration.
                    Some(integration) => Targets::Retry {
                        integration,
                        attempt: inbound.attempt,
                    },
                    None => Targets::Routed,
                };
                let deliveries = self.dispatcher.dispatch(event, targets, stop, abort);
                self.enact_all(message, event, deliveries).await
            }
            Source::Integration(integration) => {
                let part = QueuedPart {
                    integration,
                    // Without the seal of a worker that queued it, the part is a new event.
                    admitted: inbound.integration.is_some(),
                    attempt: inbound.attempt,
                    queued_at_ms: inbound.queued_at_ms.unwrap_or_else(crate::ledger::now_ms),
                };
                let delivery = self
                    .dispatcher
                    .dispatch_queued(event, part, stop, abort, started);
                self.enact_all(message, event, stream::once(delivery)).await
            }
        }
    }

    /// The event in a message, or why it is not one.
    fn parse(&self, message: &Message<'_>) -> Result<RunEvent, String> {
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
        RunEvent::from_amqp(body, &message.delivery.properties).map_err(|err| err.to_string())
    }

    /// Dead-letters a message that is not a valid event, unread. Only valid events are queued
    /// or retried, so one from the worker's own queues was changed on the way.
    async fn reject(&self, message: &Message<'_>, reason: String) -> Disposition {
        warn!(message_id = %echo::value(&message.inbound.message_id), reason, "invalid event: dead-lettered");
        let published = message.dead_letter(&DeadLetter::invalid(reason)).await;
        match &published {
            Ok(()) => metrics::dead_letter("invalid"),
            Err(err) => {
                warn!(error = %err, "cannot publish the dead letter; the message will be redelivered");
            }
        }
        Disposition::after(&published)
    }

    /// Enacts each delivery as soon as it has finished; the message's label, and how to settle
    /// it: requeued whole when the broker did not take something a delivery asked for.
    async fn enact_all(
        &self,
        message: &Message<'_>,
        event: &RunEvent,
        deliveries: impl Stream<Item = Delivery>,
    ) -> (EventOutcome, Disposition) {
        let mut deliveries = pin!(deliveries);
        let (mut label, mut disposition) = (EventOutcome::Skipped, Disposition::Ack);
        // The one INFO line of the message: each part's outcome (details are at DEBUG, and
        // failures at WARN, one line each).
        let mut parts = String::new();
        while let Some(delivery) = deliveries.next().await {
            label = label.max(EventOutcome::of(&delivery.outcome));
            disposition = disposition.max(self.enact(message, event, &delivery).await);
            let separator = if parts.is_empty() { "" } else { " " };
            let outcome = delivery.outcome.label().0;
            let _ = write!(parts, "{separator}{}={outcome}", delivery.integration);
        }
        info!(
            outcome = label.as_str(),
            deliveries = parts,
            "event handled"
        );
        (label, disposition)
    }

    /// Publishes the retry, queued part or dead letter a delivery's outcome asks for: the one
    /// place that writes to the broker for a delivery.
    async fn enact(
        &self,
        message: &Message<'_>,
        event: &RunEvent,
        delivery: &Delivery,
    ) -> Disposition {
        let integration = delivery.integration.as_str();
        let attempt = delivery.attempt;
        let published = match &delivery.outcome {
            Outcome::RetryIn { delay, error } => message
                .retry(integration, attempt + 1, *delay, &error.to_string())
                .await
                .map(|()| metrics::retry_scheduled(integration)),
            // The same attempt again once the other attempt's lease has run out.
            Outcome::Busy { until, holder } => {
                message
                    .retry(integration, attempt, *until, holder.sentence())
                    .await
            }
            // Paused, no room now, or stopped by shutdown: its integration's queue keeps it (for
            // the next worker, after a shutdown). Published again rather than nacked, so that
            // restarts while an integration is paused do not count towards the queue's
            // delivery limit (which would dead-letter it).
            Outcome::Queue(_) | Outcome::Interrupted => {
                message.queue_for(integration, attempt).await
            }
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
        if let Err(err) = &published {
            let (outcome, _) = delivery.outcome.label();
            warn!(integration, outcome, error = %err, "cannot publish what the delivery's outcome asks for; the message will be redelivered");
        }
        Disposition::after(&published)
    }

    /// Acks or requeues the message.
    async fn settle(&self, message: Message<'_>, disposition: Disposition) {
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
