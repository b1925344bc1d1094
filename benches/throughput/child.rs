//! The process under test (the worker, or the bare forwarder) runs in a child process (this same
//! bench binary, re-executed), so that its RSS and CPU are its own and not the receiver's or the
//! publisher's. The worker child does what `run-notifier run` does, through the library API:
//! JSON logs to stdout (sent to /dev/null), a multi-threaded runtime, `app::run` until SIGTERM.
//! `WORKER_RUNTIME=current_thread` runs it on a single-threaded runtime instead, to compare.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use run_notifier::config::Config;
use tokio_util::sync::CancellationToken;

/// Set in the child's environment to the config file it runs.
pub const CHILD_CONFIG: &str = "THROUGHPUT_CHILD_CONFIG";

/// `current_thread` in the environment: the worker child runs on a single-threaded runtime.
pub const WORKER_RUNTIME: &str = "WORKER_RUNTIME";

/// The worker child's runtime: multi-threaded as `run-notifier run`'s, or single-threaded when
/// `WORKER_RUNTIME=current_thread` asks.
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = match std::env::var(WORKER_RUNTIME).as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().unwrap()
}

/// In the child: run the worker on the config file until SIGTERM.
pub fn run_worker(path: &str) {
    let _tracing = run_notifier::telemetry::init().expect("the OTEL_* variables");
    let config = Config::load(Path::new(path)).expect("the benchmark's config");
    let runtime = runtime();
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            term.recv().await;
            cancel.cancel();
        });
        run_notifier::app::run(config, shutdown).await.unwrap();
    });
}

/// A worker process started by the benchmark.
pub struct WorkerProcess {
    child: Child,
    admin: String,
}

impl WorkerProcess {
    /// Starts `command`, then waits for its `/readyz` on `admin`; returns the process and how
    /// long it took to become ready.
    pub async fn start(command: Command, admin: &str) -> anyhow::Result<(Self, Duration)> {
        let started = Instant::now();
        let mut process = Self::spawn(command, admin)?;
        process.wait_ready(started).await?;
        Ok((process, started.elapsed()))
    }

    /// Starts `command` (its admin listener on `admin`) without waiting for it to be ready.
    pub fn spawn(mut command: Command, admin: &str) -> anyhow::Result<Self> {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the child process")?;
        Ok(Self {
            child,
            admin: admin.to_owned(),
        })
    }

    /// This bench binary as a worker on `config`.
    pub fn library(config: &Path) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(CHILD_CONFIG, config);
        command
    }

    /// This bench binary as the bare forwarder (see `forwarder.rs`).
    pub fn forwarder(spec: &str) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(crate::forwarder::CHILD_SPEC, spec);
        command
    }

    async fn wait_ready(&mut self, started: Instant) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            self.check_alive()?;
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the child did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// An error when the child has exited (it should run until stopped).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("the child process exited: {status}"),
            None => Ok(()),
        }
    }

    /// The child's `/metrics` page (the worker's Prometheus exposition).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.admin);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` and `VmHWM` (peak) of the process, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time (user + system) the process has used so far, from `/proc/<pid>/stat`.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // Linux reports these in USER_HZ, 100 on every platform Rust targets here.
        Duration::from_millis(ticks * 10)
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(self) {
        let _ = self.stop_with_status();
    }

    /// SIGTERM, then waits for the exit and returns how the process ended.
    pub fn stop_with_status(mut self) -> std::io::Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait()
    }
}

impl Drop for WorkerProcess {
    /// A benchmark that fails half-way leaves no worker behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
