//! The measured scenarios: the bare consumer (the broker's limit), the bare forwarder and the
//! worker, each with one webhook and fanning out to five integrations. Each scenario declares
//! its own uniquely named topology and deletes it afterwards, whether it succeeded or not.

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
use crate::forwarder::Spec;
use crate::mode::Mode;
use crate::receiver::Seen;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The example config's prefetch, used by the worker, the forwarder and the consumer alike.
pub const PREFETCH: u16 = 64;

/// Names unique to one scenario of one run, and its config.
pub struct Scenario {
    pub id: String,
    pub admin: String,
    pub config_path: PathBuf,
    pub config: Config,
}

impl Scenario {
    pub fn new(label: &str, integrations: &str, dir: &Path) -> Self {
        let id = format!("bench-{label}-{:08x}", rand::random::<u32>());
        let admin = format!("127.0.0.1:{}", free_port());
        let yaml = format!(
            "broker:\n  url: {AMQP_URL}\n  exchange: {id}.runs\n  queue: {id}.events\n  routing_key: run.canceled\n  retry_queue_prefix: {id}.retry\n  dead_letter_queue: {id}.dead\n  control_exchange: {id}.control\n  prefetch: {PREFETCH}\nadmin:\n  listen: {admin}\nledger:\n  path: {}\ntemplates_dir: {}\nintegrations:\n{integrations}",
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
            admin,
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which shape of delivery: one signed webhook, or five integrations per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OneWebhook,
    FanOut,
}

impl Shape {
    pub fn per_event(self) -> usize {
        match self {
            Shape::OneWebhook => 1,
            Shape::FanOut => 5,
        }
    }

    /// The worker's integrations.
    pub fn integrations(self, url: &str) -> String {
        match self {
            Shape::OneWebhook => webhook(url, 1),
            Shape::FanOut => format!(
                "{}{}{}  - name: slack\n    type: slack\n    webhook_url: {url}/slack\n    timeout: 5s\n    rate_limit:\n      per_minute: 60000000\n      burst: 10000\n  - name: teams\n    type: teams\n    webhook_url: {url}/teams\n    timeout: 5s\n",
                webhook(url, 1),
                webhook(url, 2),
                webhook(url, 3)
            ),
        }
    }

    /// The same receiver URLs, for the forwarder.
    pub fn targets(self, url: &str) -> Vec<String> {
        let hooks = (1..=3).map(|n| format!("{url}/hook/{n}"));
        match self {
            Shape::OneWebhook => vec![format!("{url}/hook/1")],
            Shape::FanOut => hooks
                .chain([format!("{url}/slack"), format!("{url}/teams")])
                .collect(),
        }
    }
}

fn webhook(url: &str, n: usize) -> String {
    format!(
        "  - name: hook{n}\n    type: webhook\n    url: {url}/hook/{n}\n    timeout: 5s\n    secrets: [{SECRET}]\n"
    )
}

/// Waits until the receiver has seen `count` requests, while the child still runs.
pub async fn wait_for(
    seen: &Seen,
    count: u64,
    timeout: Duration,
    process: &mut WorkerProcess,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while seen.requests() < count {
        process.check_alive()?;
        if started.elapsed() > timeout {
            bail!("only {} of {count} requests arrived", seen.requests());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
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
    let scenario = Scenario::new("consumer", &webhook(url, 1), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            broker.prepublish(&topology, &scenario.id, events).await;
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
    pub p99_ms: f64,
    pub peak_rss_mib: f64,
}

/// Which child to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Worker,
    Forwarder,
}

impl Subject {
    /// The scenario's name: `worker`, `fan-out`, `forwarder` or `forwarder-fan-out`.
    pub fn label(self, shape: Shape) -> &'static str {
        match (self, shape) {
            (Subject::Worker, Shape::OneWebhook) => "worker",
            (Subject::Worker, Shape::FanOut) => "fan-out",
            (Subject::Forwarder, Shape::OneWebhook) => "forwarder",
            (Subject::Forwarder, Shape::FanOut) => "forwarder-fan-out",
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
                    admin: scenario.admin.clone(),
                    targets: shape.targets(url),
                }
                .encode(),
            ),
        }
    }
}

/// The child in its own process: throughput over pre-published events (timed from ready to
/// the last request), then latency at a fixed offered rate, then its peak RSS.
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
    let (events, per_event) = (mode.events, shape.per_event());
    let topology = broker.declare(&scenario.config).await;
    broker.prepublish(&topology, &scenario.id, events).await;
    let before = seen.requests();
    let command = subject.command(shape, scenario, &topology, url);
    let (mut process, _) = WorkerProcess::start(command, &scenario.admin).await?;
    mode.announce_child(label, &process);
    let started = Instant::now();
    let cpu_before = process.cpu();
    let expected = before + (events * per_event) as u64;
    wait_for(seen, expected, Duration::from_secs(600), &mut process).await?;
    let took = started.elapsed().as_secs_f64();
    let cpu_us_per_event = (process.cpu() - cpu_before).as_micros() as f64 / events as f64;
    let (_, throughput_hwm) = process.rss_kib();
    let queued = match subject {
        Subject::Worker => queued_deliveries(&process.metrics().await?),
        Subject::Forwarder => 0,
    };

    // Latency: events offered at a steady rate to the idle child, publish to receipt.
    let rate = mode.latency_rate;
    let offered = rate * mode.latency_seconds;
    seen.take_latencies();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut confirms = Vec::with_capacity(offered);
    for n in 0..offered {
        tick.tick().await;
        let run_id = format!("lat-{}-{n}-{}", seen.now_us(), scenario.id);
        confirms.push(broker.publish(&topology, &run_id).await);
    }
    for confirm in confirms {
        if !confirm.await.context("publish confirm")?.is_ack() {
            bail!("the broker refused a published event");
        }
    }
    wait_for(
        seen,
        expected + (offered * per_event) as u64,
        Duration::from_secs(60),
        &mut process,
    )
    .await?;
    let mut latencies = seen.take_latencies();
    latencies.sort_unstable();
    let (rss, hwm) = process.rss_kib();
    process.stop();

    let events_per_s = events as f64 / took;
    let figures = Figures {
        events_per_s,
        cpu_us_per_event,
        p99_ms: percentile(&latencies, 0.99),
        peak_rss_mib: hwm as f64 / 1024.0,
    };
    println!(
        "{{\"scenario\":\"{label}\",\"integrations\":{per_event},\"events\":{events},\"seconds\":{took:.3},\"events_per_s\":{events_per_s:.0},\"deliveries_per_s\":{:.0},\"cpu_us_per_event\":{cpu_us_per_event:.0},\"deliveries_via_integration_queues\":{queued},\"latency_rate\":{rate},\"latency_samples\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"peak_rss_mib_throughput\":{:.1},\"peak_rss_mib\":{:.1},\"rss_mib_end\":{:.1}}}",
        events_per_s * per_event as f64,
        latencies.len(),
        percentile(&latencies, 0.50),
        figures.p99_ms,
        percentile(&latencies, 1.0),
        throughput_hwm as f64 / 1024.0,
        figures.peak_rss_mib,
        rss as f64 / 1024.0,
    );
    Ok(figures)
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
