//! The measured scenarios: the bare consumer (the broker's limit), the bare forwarder and the
//! worker, each with one webhook and fanning out to five integrations, and the worker taking
//! whole run lifecycles (four events per run) to the same five. Each scenario declares its own
//! uniquely named topology and deletes it afterwards, whether it succeeded or not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::FutureExt as _;
use run_notifier::broker::Topology;
use run_notifier::config::Config;

use crate::broker::{AMQP_URL, Broker};
use crate::child::WorkerProcess;
use crate::events::Load;
use crate::forwarder::Spec;
use crate::mode::Mode;
use crate::receiver::Seen;
use crate::window::{Window, check_deliveries, delivery_outcomes, describe, settled_metrics};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The example config's prefetch, used by the worker, the forwarder and the consumer alike.
pub const PREFETCH: u16 = 64;

/// Names unique to one scenario of one run, and its config.
pub struct Scenario {
    pub id: String,
    pub config_path: PathBuf,
    pub config: Config,
}

impl Scenario {
    /// The queue is bound with the four event types (the default), which events are published
    /// with; the children bind their admin listener themselves (see `child.rs`), so
    /// `admin.listen` is never used.
    pub fn new(label: &str, integrations: &str, dir: &Path) -> Self {
        let id = format!("bench-{label}-{:08x}", rand::random::<u32>());
        let yaml = format!(
            "broker:\n  url: {AMQP_URL}\n  exchange: {id}.runs\n  queue: {id}.events\n  retry_queue_prefix: {id}.retry\n  dead_letter_queue: {id}.dead\n  control_exchange: {id}.control\n  prefetch: {PREFETCH}\nadmin:\n  listen: 127.0.0.1:0\nledger:\n  path: {}\ntemplates_dir: {}\nintegrations:\n{integrations}",
            dir.join(format!("{id}.db")).display(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .display(),
        );
        let config_path = dir.join(format!("{id}.yaml"));
        std::fs::write(&config_path, &yaml).unwrap();
        let config = Config::parse(&yaml, HashMap::new()).unwrap();
        Self {
            id,
            config_path,
            config,
        }
    }

    /// Runs `body` on this scenario's declared topology, then deletes the topology whatever
    /// happened (an error or a panic becomes the scenario's error).
    pub async fn run<T>(
        &self,
        broker: &Broker,
        body: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let result = std::panic::AssertUnwindSafe(body).catch_unwind().await;
        broker.delete(&self.config).await;
        match result {
            Ok(result) => result,
            Err(panic) => bail!("panicked: {}", panic_text(&panic)),
        }
    }
}

pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".into())
}

/// A port that was free a moment ago, for the one process that must be told its admin port in
/// its config (`run-notifier run` in start-to-ready): another process may take it meanwhile.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which shape of delivery: one signed webhook, or five integrations per event; one
/// `run.canceled` per run, or each run's four events (the lifecycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OneWebhook,
    FanOut,
    /// The fan-out's five integrations, each taking all four event types (webhooks, Slack and
    /// Teams take only the three ends of a run by default), over whole runs.
    Lifecycle,
}

/// `events:` for an integration that takes every type of a run's life.
const ALL_EVENTS: &str = "    events: [run.started, run.finished, run.timed_out, run.canceled]\n";

impl Shape {
    /// Requests each event causes.
    pub fn per_event(self) -> usize {
        match self {
            Shape::OneWebhook => 1,
            Shape::FanOut | Shape::Lifecycle => 5,
        }
    }

    /// What the shape's runs send.
    pub fn load(self) -> Load {
        match self {
            Shape::OneWebhook | Shape::FanOut => Load::CancelOnly,
            Shape::Lifecycle => Load::Lifecycle,
        }
    }

    /// The worker's integrations.
    pub fn integrations(self, url: &str) -> String {
        match self {
            Shape::OneWebhook => webhook(url, 1, ""),
            Shape::FanOut => fan_out(url, ""),
            Shape::Lifecycle => fan_out(url, ALL_EVENTS),
        }
    }

    /// The same receiver URLs, for the forwarder.
    pub fn targets(self, url: &str) -> Vec<String> {
        let hooks = (1..=3).map(|n| format!("{url}/hook/{n}"));
        match self {
            Shape::OneWebhook => vec![format!("{url}/hook/1")],
            Shape::FanOut | Shape::Lifecycle => hooks
                .chain([format!("{url}/slack"), format!("{url}/teams")])
                .collect(),
        }
    }
}

/// Webhook ×3, Slack and Teams, each with `events` (a YAML line, or nothing for the defaults).
fn fan_out(url: &str, events: &str) -> String {
    format!(
        "{}{}{}  - name: slack\n    type: slack\n    webhook_url: {url}/slack\n    timeout: 5s\n    rate_limit:\n      per_minute: 60000000\n      burst: 10000\n{events}  - name: teams\n    type: teams\n    webhook_url: {url}/teams\n    timeout: 5s\n{events}",
        webhook(url, 1, events),
        webhook(url, 2, events),
        webhook(url, 3, events)
    )
}

fn webhook(url: &str, n: usize, events: &str) -> String {
    format!(
        "  - name: hook{n}\n    type: webhook\n    url: {url}/hook/{n}\n    timeout: 5s\n    secrets: [{SECRET}]\n{events}"
    )
}

/// Waits until the receiver has seen `count` requests, while the child still runs; an error
/// when none arrived for `stall` (an event skipped or lost never makes its request).
pub async fn wait_for(
    seen: &Seen,
    count: u64,
    stall: Duration,
    process: &mut WorkerProcess,
) -> anyhow::Result<()> {
    let (mut last, mut moved) = (seen.requests(), Instant::now());
    while last < count {
        process.check_alive()?;
        if moved.elapsed() > stall {
            bail!(
                "only {last} of {count} requests arrived, none for {stall:?} (the receiver counts every scenario's requests)"
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = seen.requests();
        if now != last {
            (last, moved) = (now, Instant::now());
        }
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

/// The bare consumer: only acks, same queue kind, same event size, same prefetch.
pub async fn bare_consumer(
    broker: &Broker,
    url: &str,
    dir: &Path,
    mode: &Mode,
) -> anyhow::Result<f64> {
    let events = mode.events;
    let scenario = Scenario::new("consumer", &Shape::OneWebhook.integrations(url), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            broker.prepublish(&topology, &scenario.id, events).await?;
            let took = broker.bare_consume(&topology.queue, PREFETCH, events).await;
            let rate = events as f64 / took.as_secs_f64();
            println!(
                "{{\"scenario\":\"bare-consumer\",\"events\":{events},\"prefetch\":{PREFETCH},\"seconds\":{:.3},\"events_per_s\":{rate:.0}}}",
                took.as_secs_f64()
            );
            Ok(rate)
        })
        .await
}

/// What one child (worker or forwarder) did in one shape.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub events_per_s: f64,
    pub cpu_us_per_event: f64,
    /// At the offered rate; the lifecycle scenario measures no latency.
    pub p99_ms: Option<f64>,
    pub peak_rss_mib: f64,
}

/// Which child to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Worker,
    Forwarder,
}

impl Subject {
    /// The scenario's name: `worker`, `fan-out`, `lifecycle`, `forwarder` or
    /// `forwarder-fan-out` (also the forwarder's in the lifecycle shape: to the forwarder an
    /// event is a body to post five times, whatever its type).
    pub fn label(self, shape: Shape) -> &'static str {
        match (self, shape) {
            (Subject::Worker, Shape::OneWebhook) => "worker",
            (Subject::Worker, Shape::FanOut) => "fan-out",
            (Subject::Worker, Shape::Lifecycle) => "lifecycle",
            (Subject::Forwarder, Shape::OneWebhook) => "forwarder",
            (Subject::Forwarder, Shape::FanOut | Shape::Lifecycle) => "forwarder-fan-out",
        }
    }

    /// The command that runs this child on `scenario`'s declared `topology`, delivering to the
    /// receiver at `url`.
    pub fn command(
        self,
        shape: Shape,
        scenario: &Scenario,
        topology: &Topology,
        url: &str,
    ) -> Command {
        match self {
            Subject::Worker => WorkerProcess::library(&scenario.config_path),
            Subject::Forwarder => WorkerProcess::forwarder(
                &Spec {
                    amqp_url: AMQP_URL.to_owned(),
                    queue: topology.queue.clone(),
                    prefetch: PREFETCH,
                    targets: shape.targets(url),
                }
                .encode(),
            ),
        }
    }
}

/// The child in its own process: throughput (from the first published event to the last
/// request, the child ready and idle before), then latency at a fixed offered rate (not for
/// the lifecycle), then its peak RSS.
pub async fn measure(
    broker: &Broker,
    seen: &Arc<Seen>,
    url: &str,
    subject: Subject,
    shape: Shape,
    dir: &Path,
    mode: &Mode,
) -> anyhow::Result<Figures> {
    let label = subject.label(shape);
    let scenario = Scenario::new(label, &shape.integrations(url), dir);
    scenario
        .run(
            broker,
            measure_in(broker, seen, url, subject, shape, &scenario, label, mode),
        )
        .await
}

/// How long the receiver may see no request before a measurement gives up.
const STALL: Duration = Duration::from_secs(60);

#[allow(clippy::too_many_arguments)]
async fn measure_in(
    broker: &Broker,
    seen: &Arc<Seen>,
    url: &str,
    subject: Subject,
    shape: Shape,
    scenario: &Scenario,
    label: &str,
    mode: &Mode,
) -> anyhow::Result<Figures> {
    let per_event = shape.per_event();
    let phases = shape.load().phases(&scenario.id, mode.events);
    let events = phases.iter().map(Vec::len).sum();
    let topology = broker.declare(&scenario.config).await;
    let command = subject.command(shape, scenario, &topology, url);
    let (mut process, _) = WorkerProcess::start(command).await?;
    mode.announce_child(label, &process);

    // The child is ready and has nothing to do: the window opens before the first event is
    // published, so it cannot start after the work, and closes at the last request.
    let window = Window::open(&process, seen);
    if let Err(err) = publish(broker, seen, &topology, &phases, per_event, &mut process).await {
        // What the worker made of the events, when it can say.
        let outcomes = match subject {
            Subject::Worker => process.metrics().await.ok(),
            Subject::Forwarder => None,
        };
        return Err(match outcomes {
            Some(metrics) => err.context(describe(&delivery_outcomes(&metrics))),
            None => err,
        });
    }
    let measured = window.close(&process, seen, events, per_event)?;
    let (_, throughput_hwm) = process.rss_kib();
    let queued = match subject {
        Subject::Worker => {
            let metrics = settled_metrics(&process, events * per_event).await?;
            check_deliveries(&metrics, events * per_event)?;
            queued_deliveries(&metrics)
        }
        Subject::Forwarder => 0,
    };

    let latencies = match shape.load() {
        Load::CancelOnly => Some(
            latency(
                broker,
                seen,
                &topology,
                scenario,
                mode,
                per_event,
                &mut process,
            )
            .await?,
        ),
        Load::Lifecycle => None,
    };
    let (rss, hwm) = process.rss_kib();
    process.stop();
    // No samples (`LATENCY_SECONDS=0`): no latency figures, rather than NaN in the JSON line.
    let latencies = latencies.filter(|latencies| !latencies.is_empty());

    let figures = Figures {
        events_per_s: measured.events_per_s(),
        cpu_us_per_event: measured.cpu_us_per_event(),
        p99_ms: latencies.as_deref().map(|l| percentile(l, 0.99)),
        peak_rss_mib: hwm as f64 / 1024.0,
    };
    let latency_fields = match &latencies {
        Some(latencies) => format!(
            "\"latency_rate\":{},\"latency_samples\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},",
            mode.latency_rate,
            latencies.len(),
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0),
        ),
        None => String::new(),
    };
    println!(
        "{{\"scenario\":\"{label}\",\"integrations\":{per_event},\"events\":{events},\"seconds\":{:.3},\"events_per_s\":{:.0},\"deliveries_per_s\":{:.0},\"cpu_ms\":{},\"cpu_us_per_event\":{:.0},\"deliveries_via_integration_queues\":{queued},{latency_fields}\"peak_rss_mib_throughput\":{:.1},\"peak_rss_mib\":{:.1},\"rss_mib_end\":{:.1}}}",
        measured.seconds,
        figures.events_per_s,
        figures.events_per_s * per_event as f64,
        measured.cpu.as_millis(),
        figures.cpu_us_per_event,
        throughput_hwm as f64 / 1024.0,
        figures.peak_rss_mib,
        rss as f64 / 1024.0,
    );
    Ok(figures)
}

/// Publishes each phase once the requests of the ones before have all arrived.
async fn publish(
    broker: &Broker,
    seen: &Seen,
    topology: &Topology,
    phases: &[Vec<crate::events::Message>],
    per_event: usize,
    process: &mut WorkerProcess,
) -> anyhow::Result<()> {
    let mut expected = seen.requests();
    for phase in phases {
        broker.publish_all(topology, phase).await?;
        expected += (phase.len() * per_event) as u64;
        wait_for(seen, expected, STALL, process).await?;
    }
    Ok(())
}

/// Latency: `run.canceled` events offered at a steady rate to the idle child, publish to
/// receipt; the sorted latencies in µs.
async fn latency(
    broker: &Broker,
    seen: &Seen,
    topology: &Topology,
    scenario: &Scenario,
    mode: &Mode,
    per_event: usize,
    process: &mut WorkerProcess,
) -> anyhow::Result<Vec<u64>> {
    let rate = mode.latency_rate;
    let offered = rate * mode.latency_seconds;
    seen.take_latencies();
    let before = seen.requests();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut confirms = Vec::with_capacity(offered);
    for n in 0..offered {
        tick.tick().await;
        let run_id = format!("lat-{}-{n}-{}", seen.now_us(), scenario.id);
        confirms.push(broker.publish(topology, &run_id).await);
    }
    for confirm in confirms {
        if !confirm.await.context("publish confirm")?.is_ack() {
            bail!("the broker refused a published event");
        }
    }
    wait_for(seen, before + (offered * per_event) as u64, STALL, process).await?;
    let mut latencies = seen.take_latencies();
    latencies.sort_unstable();
    Ok(latencies)
}

/// How many deliveries went through the integrations' own queues: the sum of
/// `run_notifier_integration_queue_wait_seconds_count` over integrations.
fn queued_deliveries(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("run_notifier_integration_queue_wait_seconds_count"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
