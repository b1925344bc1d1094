//! The scenarios: the bare consumer baseline, the worker with one webhook, the worker fanning
//! out to five integrations, start-to-ready with the example config, and the optional soak.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use run_notifier::config::Config;

use crate::broker::{AMQP_URL, Broker};
use crate::child::WorkerProcess;
use crate::receiver::{self, Seen};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The example config's prefetch, used by the worker and the baseline alike.
const PREFETCH: u16 = 64;
const SOAK_CHECKPOINT: usize = 100_000;
/// The soak keeps at most this many events waiting in the queue.
const SOAK_BACKLOG: usize = 20_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Names unique to one scenario of one run, and its config.
struct Scenario {
    id: String,
    admin: String,
    config_path: PathBuf,
    config: Config,
}

impl Scenario {
    fn new(label: &str, integrations: &str, dir: &Path) -> Self {
        let id = format!("bench-{label}-{:08x}", rand::random::<u32>());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let admin = format!("127.0.0.1:{port}");
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
}

fn webhook(url: &str, n: usize) -> String {
    format!(
        "  - name: hook{n}\n    type: webhook\n    url: {url}/hook/{n}\n    timeout: 5s\n    secrets: [{SECRET}]\n"
    )
}

fn fan_out(url: &str) -> String {
    format!(
        "{}{}{}  - name: slack\n    type: slack\n    webhook_url: {url}/slack\n    timeout: 5s\n    rate_limit:\n      per_minute: 60000000\n      burst: 10000\n  - name: teams\n    type: teams\n    webhook_url: {url}/teams\n    timeout: 5s\n",
        webhook(url, 1),
        webhook(url, 2),
        webhook(url, 3)
    )
}

/// Waits until the receiver has seen `count` requests.
async fn wait_for(seen: &Seen, count: u64, timeout: Duration) {
    let started = Instant::now();
    while seen.requests() < count {
        assert!(
            started.elapsed() < timeout,
            "only {} of {count} requests arrived",
            seen.requests()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

pub async fn all() {
    let events = env_usize("EVENTS", 10_000);
    let (url, seen) = receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::connect().await;

    let baseline = baseline(&broker, &url, dir.path(), events).await;
    let worker = worker(
        &broker,
        &seen,
        "worker",
        &webhook(&url, 1),
        1,
        dir.path(),
        events,
    )
    .await;
    let fan_out_rate = worker_scenario_fan_out(&broker, &seen, &url, dir.path(), events).await;
    start_to_ready(dir.path()).await;
    if std::env::var("SOAK").is_ok_and(|v| v == "1") {
        soak(&broker, &seen, &url, dir.path()).await;
    }
    println!("ratio fan-out/baseline = {:.2}", fan_out_rate / baseline);
    println!("ratio worker/baseline = {:.2}", worker / baseline);
    let _ = broker.connection.close(200, "done".into()).await;
}

async fn worker_scenario_fan_out(
    broker: &Broker,
    seen: &Arc<Seen>,
    url: &str,
    dir: &Path,
    events: usize,
) -> f64 {
    worker(broker, seen, "fan-out", &fan_out(url), 5, dir, events).await
}

/// The bare consumer: only acks, same queue kind, same event size, same prefetch.
async fn baseline(broker: &Broker, url: &str, dir: &Path, events: usize) -> f64 {
    let scenario = Scenario::new("baseline", &webhook(url, 1), dir);
    let topology = broker.declare(&scenario.config).await;
    broker.prepublish(&topology, &scenario.id, events).await;
    let took = broker.bare_consume(&topology.queue, PREFETCH, events).await;
    broker.delete(&topology, &scenario.config).await;
    let rate = events as f64 / took.as_secs_f64();
    println!(
        "{{\"scenario\":\"baseline\",\"events\":{events},\"prefetch\":{PREFETCH},\"seconds\":{:.3},\"events_per_s\":{rate:.0}}}",
        took.as_secs_f64()
    );
    rate
}

/// The worker in its own process: throughput over pre-published events (timed from ready to
/// the last request), then latency at a fixed offered rate, then its peak RSS.
async fn worker(
    broker: &Broker,
    seen: &Arc<Seen>,
    label: &str,
    integrations: &str,
    per_event: usize,
    dir: &Path,
    events: usize,
) -> f64 {
    let scenario = Scenario::new(label, integrations, dir);
    let topology = broker.declare(&scenario.config).await;
    broker.prepublish(&topology, &scenario.id, events).await;
    let before = seen.requests();
    let (process, _) = WorkerProcess::start(
        WorkerProcess::library(&scenario.config_path),
        &scenario.admin,
    )
    .await;
    let started = Instant::now();
    let cpu_before = process.cpu();
    let expected = before + (events * per_event) as u64;
    wait_for(seen, expected, Duration::from_secs(600)).await;
    let took = started.elapsed().as_secs_f64();
    let cpu_us_per_event = (process.cpu() - cpu_before).as_micros() as f64 / events as f64;
    let (_, throughput_hwm) = process.rss_kib();

    // Latency: events offered at a steady rate to the idle worker, publish to receipt.
    let rate = env_usize("LATENCY_RATE", 500);
    let offered = rate * env_usize("LATENCY_SECONDS", 6);
    seen.take_latencies();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut confirms = Vec::with_capacity(offered);
    for n in 0..offered {
        tick.tick().await;
        let run_id = format!("lat-{}-{n}-{}", seen.now_us(), scenario.id);
        confirms.push(broker.publish(&topology, &run_id).await);
    }
    for confirm in confirms {
        assert!(confirm.await.unwrap().is_ack());
    }
    wait_for(
        seen,
        expected + (offered * per_event) as u64,
        Duration::from_secs(60),
    )
    .await;
    let mut latencies = seen.take_latencies();
    latencies.sort_unstable();
    let (rss, hwm) = process.rss_kib();
    process.stop();
    broker.delete(&topology, &scenario.config).await;

    let events_per_s = events as f64 / took;
    println!(
        "{{\"scenario\":\"{label}\",\"integrations\":{per_event},\"events\":{events},\"seconds\":{took:.3},\"events_per_s\":{events_per_s:.0},\"deliveries_per_s\":{:.0},\"worker_cpu_us_per_event\":{cpu_us_per_event:.0},\"latency_rate\":{rate},\"latency_samples\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"peak_rss_mib_throughput\":{:.1},\"peak_rss_mib\":{:.1},\"rss_mib_end\":{:.1}}}",
        events_per_s * per_event as f64,
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        throughput_hwm as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
    );
    events_per_s
}

/// `run-notifier run` (the release binary) on the example config, with its broker names,
/// admin port and ledger file made unique to this run: spawn to `/readyz` 200.
async fn start_to_ready(dir: &Path) {
    let id = format!("bench-ready-{:08x}", rand::random::<u32>());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let example = include_str!("../../config/run-notifier.yaml");
    let yaml = format!(
        "{}\nledger:\n  path: {}\n",
        example
            .replace("exchange: runs", &format!("exchange: {id}.runs"))
            .replace("queue: run-notifier.events", &format!("queue: {id}.events"))
            .replace("prefix: run-notifier.retry", &format!("prefix: {id}.retry"))
            .replace("queue: run-notifier.dead", &format!("queue: {id}.dead"))
            .replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"))
            .replace(
                "templates_dir: ../templates",
                concat!("templates_dir: ", env!("CARGO_MANIFEST_DIR"), "/templates"),
            ),
        dir.join(format!("{id}.db")).display()
    );
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, &yaml).unwrap();
    let config = Config::parse(&yaml, HashMap::new()).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut command = Command::new(env!("CARGO_BIN_EXE_run-notifier"));
        command
            .args(["run", "--config"])
            .arg(&path)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        let (process, ready) = WorkerProcess::start(command, &format!("127.0.0.1:{port}")).await;
        process.stop();
        times.push(ready.as_secs_f64() * 1000.0);
    }
    let broker = Broker::connect().await;
    let topology = broker.declare(&config).await;
    broker.delete(&topology, &config).await;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{{\"scenario\":\"start-to-ready\",\"config\":\"config/run-notifier.yaml\",\"runs_ms\":{times:.1?},\"median_ms\":{:.1},\"max_ms\":{:.1}}}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
}

/// `SOAK_EVENTS` through the fan-out worker, publishing while it consumes (at most
/// `SOAK_BACKLOG` waiting), with the worker's RSS every `SOAK_CHECKPOINT` events.
async fn soak(broker: &Broker, seen: &Arc<Seen>, url: &str, dir: &Path) {
    let total = env_usize("SOAK_EVENTS", 1_000_000);
    let scenario = Scenario::new("soak", &fan_out(url), dir);
    let topology = broker.declare(&scenario.config).await;
    let before = seen.requests();
    let (process, _) = WorkerProcess::start(
        WorkerProcess::library(&scenario.config_path),
        &scenario.admin,
    )
    .await;
    let started = Instant::now();
    let delivered = |seen: &Seen| ((seen.requests() - before) / 5) as usize;
    let mut published = 0;
    let mut checkpoint = SOAK_CHECKPOINT;
    let mut first = None;
    while checkpoint <= total {
        while published < total && published < delivered(seen) + SOAK_BACKLOG {
            let chunk = 1_000.min(total - published);
            broker
                .prepublish(&topology, &format!("{}-{published}", scenario.id), chunk)
                .await;
            published += chunk;
        }
        if delivered(seen) >= checkpoint {
            let (rss, hwm) = process.rss_kib();
            let rss_mib = rss as f64 / 1024.0;
            let base = *first.get_or_insert(rss_mib);
            println!(
                "{{\"scenario\":\"soak\",\"events\":{checkpoint},\"seconds\":{:.0},\"rss_mib\":{rss_mib:.1},\"peak_rss_mib\":{:.1},\"growth_since_first_pct\":{:.1}}}",
                started.elapsed().as_secs_f64(),
                hwm as f64 / 1024.0,
                (rss_mib - base) / base * 100.0
            );
            checkpoint += SOAK_CHECKPOINT;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    process.stop();
    broker.delete(&topology, &scenario.config).await;
}
