//! Start-to-ready: `run-notifier run` on the documented example config, with only its broker
//! names, admin port and ledger file made unique to this run, from spawn to `/readyz` 200.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::bail;
use futures_util::FutureExt as _;
use run_notifier::config::Config;

use crate::broker::Broker;
use crate::child::WorkerProcess;
use crate::mode::Mode;
use crate::scenario::{free_port, panic_text};

/// `run-notifier run` (the binary) on the example config, with its broker names, admin port
/// and ledger file made unique to this run (the retry tiers follow the queue's name):
/// spawn to `/readyz` 200. Returns the median, in milliseconds.
pub async fn start_to_ready(broker: &Broker, dir: &Path, mode: &Mode) -> anyhow::Result<f64> {
    let id = format!("bench-ready-{:08x}", rand::random::<u32>());
    let port = free_port();
    let example = include_str!("../../config/run-notifier.yaml");
    let ledger = dir.join(format!("{id}.db"));
    let mut yaml = example.to_owned();
    for (from, to) in [
        ("exchange: runs", format!("exchange: {id}.runs")),
        ("queue: run-notifier.events", format!("queue: {id}.events")),
        ("queue: run-notifier.dead", format!("queue: {id}.dead")),
        (
            "exchange: run-notifier.control",
            format!("exchange: {id}.control"),
        ),
        (
            "path: run-notifier.db",
            format!("path: {}", ledger.display()),
        ),
        ("127.0.0.1:9464", format!("127.0.0.1:{port}")),
        (
            "templates_dir: ../templates",
            concat!("templates_dir: ", env!("CARGO_MANIFEST_DIR"), "/templates").to_owned(),
        ),
    ] {
        // Each replaced line must exist: the example changing must fail here, loudly.
        if !yaml.contains(from) {
            bail!("config/run-notifier.yaml no longer has `{from}`");
        }
        yaml = yaml.replace(from, &to);
    }
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, &yaml)?;
    let config = Config::parse(&yaml, HashMap::new())
        .map_err(|err| anyhow::anyhow!("the adjusted example config: {err}"))?;
    let result = std::panic::AssertUnwindSafe(async {
        let mut times = Vec::new();
        for _ in 0..mode.ready_runs {
            let mut command = Command::new(env!("CARGO_BIN_EXE_run-notifier"));
            command
                .args(["run", "--config"])
                .arg(&path)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            let admin = format!("127.0.0.1:{port}");
            let (process, ready) = WorkerProcess::start_at(command, Some(&admin)).await?;
            process.stop();
            times.push(ready.as_secs_f64() * 1000.0);
        }
        anyhow::Ok(times)
    })
    .catch_unwind()
    .await;
    broker.delete(&config).await;
    let times = match result {
        Ok(times) => times?,
        Err(panic) => bail!("panicked: {}", panic_text(&panic)),
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{{\"scenario\":\"start-to-ready\",\"config\":\"config/run-notifier.yaml\",\"runs_ms\":{times:.1?},\"median_ms\":{median:.1},\"max_ms\":{:.1}}}",
        sorted[sorted.len() - 1]
    );
    Ok(median)
}
