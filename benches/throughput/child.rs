//! The worker under test runs in a child process (this same bench binary, re-executed), so that
//! its RSS is its own and not the receiver's, the publisher's or the baseline consumer's. The
//! child does what `run-notifier run` does, through the library API: JSON logs to stdout (sent
//! to /dev/null), a multi-threaded runtime, `app::run` until SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use run_notifier::config::Config;
use tokio_util::sync::CancellationToken;

/// Set in the child's environment to the config file it runs.
pub const CHILD_CONFIG: &str = "THROUGHPUT_CHILD_CONFIG";

/// In the child: run the worker on the config file until SIGTERM.
pub fn run_worker(path: &str) {
    let _tracing = run_notifier::telemetry::init().expect("the OTEL_* variables");
    let config = Config::load(Path::new(path)).expect("the benchmark's config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
    /// Starts `program` with `args` (and the child marker when `config` is given), then waits
    /// for `/readyz`; returns the process and how long it took to become ready.
    pub async fn start(mut command: Command, admin: &str) -> (Self, Duration) {
        let started = Instant::now();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let process = Self {
            child,
            admin: admin.to_owned(),
        };
        process.wait_ready(started).await;
        (process, started.elapsed())
    }

    /// This bench binary as a worker on `config`.
    pub fn library(config: &Path) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(CHILD_CONFIG, config);
        command
    }

    async fn wait_ready(&self, started: Instant) {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the worker did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
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
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    /// A benchmark that fails half-way leaves no worker behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
