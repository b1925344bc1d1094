//! Instructions per event under `valgrind --tool=callgrind` (`--callgrind`): the child (worker
//! or bare forwarder) runs alone under callgrind while the broker and the receiver stay in this
//! process. A run over N events (published a few at a time, see [`WINDOW`]) minus a run over
//! none (start, consume, SIGTERM, exit), divided by N, is what one event costs. Unlike a time, the count hardly moves with the
//! machine's load, so a change's effect is a number.
//!
//! The child's readiness is read from the broker (the queue has a consumer), never from the
//! child's `/readyz`: polling it would add instructions that depend on how long start took.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::broker::Broker;
use crate::child::WorkerProcess;
use crate::mode::Mode;
use crate::receiver::Seen;
use crate::scenario::{Scenario, Shape, Subject, wait_for};

/// Where the profiles are kept (relative to the package, where `cargo bench` runs), for
/// `callgrind_annotate`.
const PROFILES: &str = "target/callgrind";

/// Events published at once, the next ones only once these are delivered. Under callgrind the
/// worker runs some 50 times slower than the broker: given the whole backlog, it would hold
/// all its prefetch at once and send about half the deliveries through the integrations'
/// queues (sealed, republished, consumed again), a path the timed runs hardly take. Three
/// events at a time (two windows in flight at most) stay within every integration's direct
/// share of the prefetch (`prefetch / (2 × integrations)`, 6 in the fan-out), so each
/// delivery is made straight from the event queue, as in the timed runs.
const WINDOW: usize = 3;

/// Under callgrind a child runs some 50 times slower: generous limits for start, and for a
/// window's requests to stop coming (an event skipped never makes its request).
const START_TIMEOUT: Duration = Duration::from_secs(600);
const STALL: Duration = Duration::from_secs(300);

/// `valgrind --version`, or `None` when valgrind cannot be run.
pub fn valgrind_version() -> Option<String> {
    let output = Command::new("valgrind").arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// What one scenario costs in instructions.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub per_event: f64,
}

/// Counts each scenario's instructions per event; prints a JSON line each (or the scenario's
/// failure) and the ratios. `false` when a scenario failed; a machine without valgrind skips
/// the whole mode with a message.
pub async fn all(broker: &Broker, seen: &Arc<Seen>, url: &str, dir: &Path, mode: &Mode) -> bool {
    let Some(version) = valgrind_version() else {
        println!(
            "callgrind: skipped: valgrind is not installed (apt-get install valgrind), so no instructions were counted"
        );
        return true;
    };
    let profiles = PathBuf::from(PROFILES);
    if let Err(err) = std::fs::create_dir_all(&profiles) {
        println!("callgrind: cannot create {PROFILES}: {err}");
        return false;
    }
    let runtime = std::env::var(crate::child::WORKER_RUNTIME).unwrap_or("multi_thread".into());
    eprintln!(
        "callgrind: {version}, {} events per run, worker runtime {runtime}; a run takes minutes",
        mode.events
    );
    let mut counts = std::collections::HashMap::new();
    let mut ok = true;
    for (subject, shape) in [
        (Subject::Forwarder, Shape::OneWebhook),
        (Subject::Worker, Shape::OneWebhook),
        (Subject::Forwarder, Shape::FanOut),
        (Subject::Worker, Shape::FanOut),
        (Subject::Worker, Shape::Lifecycle),
    ] {
        let label = subject.label(shape);
        if !mode.runs(label) {
            continue;
        }
        let measured = async {
            let baseline = count(broker, seen, url, subject, shape, dir, 0, &profiles).await?;
            let total = count(
                broker,
                seen,
                url,
                subject,
                shape,
                dir,
                mode.events,
                &profiles,
            )
            .await?;
            anyhow::Ok((baseline, total))
        };
        match measured.await {
            Ok(((baseline, _), (total, profile))) => {
                let per_event = (total as f64 - baseline as f64) / mode.events.max(1) as f64;
                println!(
                    "{{\"scenario\":\"callgrind-{label}\",\"integrations\":{},\"events\":{},\"runtime\":\"{runtime}\",\"instructions\":{total},\"baseline_instructions\":{baseline},\"instructions_per_event\":{per_event:.0},\"profile\":\"{}\"}}",
                    shape.per_event(),
                    mode.events,
                    profile.display()
                );
                counts.insert(label, Count { per_event });
            }
            Err(err) => {
                ok = false;
                println!(
                    "{{\"scenario\":\"callgrind-{label}\",\"failed\":{}}}",
                    serde_json::Value::String(format!("{err:#}"))
                );
            }
        }
    }
    for (worker, forwarder) in crate::RATIOS {
        if let (Some(w), Some(f)) = (counts.get(worker), counts.get(forwarder)) {
            println!(
                "instructions per event {worker}/{forwarder} = {:.2} ({:.0} / {:.0})",
                w.per_event / f.per_event,
                w.per_event,
                f.per_event
            );
        }
    }
    println!(
        "profiles: callgrind_annotate --inclusive=yes {PROFILES}/<scenario>-{}.out | head -40",
        mode.events
    );
    ok
}

/// One child's whole life under callgrind over `events` events: its total instruction count
/// and where its profile is.
#[allow(clippy::too_many_arguments)]
async fn count(
    broker: &Broker,
    seen: &Arc<Seen>,
    url: &str,
    subject: Subject,
    shape: Shape,
    dir: &Path,
    events: usize,
    profiles: &Path,
) -> anyhow::Result<(u64, PathBuf)> {
    let label = subject.label(shape);
    // Profiles of the single-threaded worker are kept apart from the default ones.
    let runtime = match std::env::var(crate::child::WORKER_RUNTIME).as_deref() {
        Ok("current_thread") if subject == Subject::Worker => "-current_thread",
        _ => "",
    };
    let profile = profiles.join(format!("{label}{runtime}-{events}.out"));
    let log = profiles.join(format!("{label}{runtime}-{events}.log"));
    let scenario = Scenario::new(label, &shape.integrations(url), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            let before = seen.requests();
            let command = under_callgrind(
                subject.command(shape, &scenario, &topology, url),
                &profile,
                &log,
            );
            let _ = std::fs::remove_file(&profile);
            let messages = shape.load().messages(&scenario.id, events);
            let mut process = WorkerProcess::spawn(command)?;
            let started = Instant::now();
            while broker.consumers(&topology.queue).await == 0 {
                process.check_alive().with_context(|| log_hint(&log))?;
                if started.elapsed() > START_TIMEOUT {
                    bail!("the child did not consume within {START_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A few events at a time, each window delivered before the next is published.
            let mut sent = 0;
            for window in messages.chunks(WINDOW) {
                broker.publish_all(&topology, window).await?;
                sent += window.len();
                let expected = before + (sent * shape.per_event()) as u64;
                wait_for(seen, expected, STALL, &mut process).await?;
            }
            let arrived = seen.requests() - before;
            anyhow::ensure!(
                arrived == (events * shape.per_event()) as u64,
                "{arrived} requests arrived for {events} events ({} per event): duplicates or strays, so no count is given",
                shape.per_event()
            );
            let status = process.stop_with_status()?;
            let text = std::fs::read_to_string(&profile)
                .with_context(|| format!("no profile after the child ended ({status})"))
                .with_context(|| log_hint(&log))?;
            let total = totals(&text).context("the profile has no totals line")?;
            Ok((total, profile.clone()))
        })
        .await
}

fn log_hint(log: &Path) -> String {
    format!("valgrind's log is {}", log.display())
}

/// `command` run by valgrind's callgrind, writing its profile to `profile` and valgrind's own
/// messages to `log`.
fn under_callgrind(command: Command, profile: &Path, log: &Path) -> Command {
    let mut wrapped = Command::new("valgrind");
    wrapped
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// The instructions of the whole run: the `totals:` (or `summary:`) line of a callgrind profile.
fn totals(profile: &str) -> Option<u64> {
    profile.lines().find_map(|line| {
        let rest = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
