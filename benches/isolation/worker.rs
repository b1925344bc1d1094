//! The worker under test: in this process through `app::run` (hung and storm), or the
//! `run-notifier` binary as a child process (kill); waiting for `/readyz`, reading `/metrics`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::harness::Run;
/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(admin: &str) {
    let client = reqwest::Client::new();
    let url = format!("http://{admin}/readyz");
    wait_until("the worker is ready", Duration::from_secs(60), || async {
        matches!(client.get(&url).send().await, Ok(r) if r.status() == 200)
    })
    .await;
}

/// Polls `ready` every 5 ms; panics with `what` after `fuse`.
pub async fn wait_until<F, Fut>(what: &str, fuse: Duration, ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(poll(fuse, ready).await, "timed out waiting until {what}");
}

/// Polls `ready` every 5 ms for at most `fuse`; whether it became true.
pub async fn poll<F, Fut>(fuse: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !ready().await {
        if started.elapsed() > fuse {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// The worker running in this process through `app::run`.
pub struct InProcess {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: String,
}

impl InProcess {
    pub async fn start(run: &Run) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_notifier::app::run(run.config(), shutdown.clone()));
        wait_ready(&run.admin).await;
        Self {
            shutdown,
            task,
            admin: run.admin.clone(),
        }
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The value of a series whose line starts with `name{` and holds `label`.
pub fn sample(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `run-notifier` binary as a child process, its logs in a file.
pub struct ChildWorker {
    child: Child,
}

impl ChildWorker {
    pub async fn start(config: &Path, log: &Path, admin: &str) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let worker = Self { child };
        wait_ready(admin).await;
        worker
    }

    /// SIGKILL, then reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildWorker {
    /// A benchmark that fails half-way leaves no worker behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) process `pid` has used, from `/proc/<pid>/stat`; zero if unreadable.
pub fn cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // After the command name (which may hold spaces), utime and stime are fields 12 and 13.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux platform Rust targets.
    Duration::from_millis(ticks * 10)
}

/// The local RabbitMQ's Erlang VM, to count its CPU time too.
pub fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "beam.smp").then_some(pid)
        })
}
