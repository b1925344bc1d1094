//! The measurement window of a throughput scenario: opened while the child is ready and idle,
//! just before the first measured event is published, closed at the last request those events
//! caused. The child's CPU over it is its own (`/proc/<pid>/stat`, utime + stime) for exactly
//! that work. A window that saw no CPU time, or another number of requests than the events
//! make, is an error, never a figure.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

use crate::child::WorkerProcess;
use crate::receiver::Seen;

/// Opened before the first measured event is published.
pub struct Window {
    started: Instant,
    cpu: Duration,
    requests: u64,
}

/// What one window measured.
pub struct Measured {
    pub events: usize,
    pub seconds: f64,
    pub cpu: Duration,
}

impl Measured {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    pub fn cpu_us_per_event(&self) -> f64 {
        self.cpu.as_micros() as f64 / self.events as f64
    }
}

impl Window {
    pub fn open(process: &WorkerProcess, seen: &Seen) -> Self {
        Self {
            cpu: process.cpu(),
            requests: seen.requests(),
            started: Instant::now(),
        }
    }

    /// Closes the window once the receiver has seen the requests `events` events should make
    /// (`per_event` each); an error when it saw another number, or when the child used no CPU
    /// time meanwhile (the window missed the work, or too few events for 10 ms clock ticks).
    pub fn close(
        self,
        process: &WorkerProcess,
        seen: &Seen,
        events: usize,
        per_event: usize,
    ) -> anyhow::Result<Measured> {
        let (cpu, seconds) = (
            process.cpu() - self.cpu,
            self.started.elapsed().as_secs_f64(),
        );
        let arrived = seen.requests() - self.requests;
        let expected = (events * per_event) as u64;
        ensure!(events > 0, "no events were published: nothing was measured");
        ensure!(
            arrived == expected,
            "{arrived} requests arrived in the window for {events} events, not {expected} ({per_event} per event): duplicates or strays, so no figure is given"
        );
        if cpu.is_zero() {
            bail!(
                "the child used no CPU time between the first publish and the last of {arrived} requests ({seconds:.3} s): the window missed the work, or {events} events are too few for the kernel's 10 ms CPU ticks (raise EVENTS)"
            );
        }
        Ok(Measured {
            events,
            seconds,
            cpu,
        })
    }
}

/// How long a worker may take, after the receiver has counted the last request, to record the
/// delivery (it does once the answer is back).
const SETTLE: Duration = Duration::from_secs(10);

/// The worker's `/metrics` once it has recorded as many finished deliveries (made, skipped,
/// failed) as `expected`, or after [`SETTLE`]: the receiver counts a request before the worker
/// has its answer.
pub async fn settled_metrics(process: &WorkerProcess, expected: usize) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let metrics = process.metrics().await?;
        let finished: usize = delivery_outcomes(&metrics)
            .iter()
            .filter(|(outcome, _)| !matches!(outcome.as_str(), "queued" | "busy"))
            .map(|(_, count)| count)
            .sum();
        if finished >= expected || started.elapsed() > SETTLE {
            return Ok(metrics);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the worker's `run_notifier_deliveries_total` after a window: exactly `expected`
/// deliveries made, and none skipped (a lifecycle event superseded or filtered out), retried,
/// dead-lettered or cancelled. Deliveries handed to an integration's queue (`queued`) or left
/// for later (`busy`) are counted again when they are made.
pub fn check_deliveries(metrics: &str, expected: usize) -> anyhow::Result<()> {
    let outcomes = delivery_outcomes(metrics);
    let delivered = outcomes
        .iter()
        .filter(|(outcome, _)| outcome == "delivered")
        .map(|(_, count)| count)
        .sum::<usize>();
    let others = outcomes
        .iter()
        .any(|(outcome, _)| !matches!(outcome.as_str(), "delivered" | "queued" | "busy"));
    ensure!(
        delivered == expected && !others,
        "the worker made {delivered} deliveries of the {expected} expected ({})",
        describe(&outcomes)
    );
    Ok(())
}

/// The worker's deliveries by outcome, event type and reason, from its `/metrics`, as words.
pub fn describe(outcomes: &[(String, usize)]) -> String {
    let words: Vec<String> = outcomes
        .iter()
        .map(|(outcome, count)| format!("{count} {outcome}"))
        .collect();
    format!("deliveries by outcome: {}", words.join(", "))
}

/// The worker's `run_notifier_deliveries_total` by outcome (with the reason, if any, as
/// `outcome/reason`), from its `/metrics`, each non-zero outcome once.
pub fn delivery_outcomes(metrics: &str) -> Vec<(String, usize)> {
    let mut outcomes: Vec<(String, usize)> = Vec::new();
    for line in metrics.lines() {
        let Some((labels, count)) = line
            .strip_prefix("run_notifier_deliveries_total{")
            .and_then(|rest| rest.rsplit_once("} "))
        else {
            continue;
        };
        let count = count.trim().parse::<f64>().unwrap_or(0.0) as usize;
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|label| label.strip_prefix(&format!("{name}=\"")))
                .map(|value| value.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let outcome = match label("reason").as_str() {
            "" => label("outcome"),
            reason => format!("{}/{reason}", label("outcome")),
        };
        match outcomes.iter_mut().find(|(known, _)| *known == outcome) {
            Some((_, total)) => *total += count,
            None if count > 0 => outcomes.push((outcome, count)),
            None => {}
        }
    }
    outcomes
}
