//! The process under test (the worker, or the bare forwarder) runs in a child process (this same
//! bench binary, re-executed), so that its RSS and CPU are its own and not the receiver's or the
//! publisher's. The worker child does what `run-notifier run` does, through the library API:
//! JSON logs to stdout (sent to /dev/null), a multi-threaded runtime, `app::run` until SIGTERM.
//! `WORKER_RUNTIME=current_thread` runs it on a single-threaded runtime instead, to compare.
//!
//! A child binds its admin listener on port 0 and writes the address it got to a file the
//! benchmark names: no port is picked, released and hoped to be free still.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use run_notifier::config::Config;
use tokio_util::sync::CancellationToken;

/// Set in the child's environment to the config file it runs.
pub const CHILD_CONFIG: &str = "THROUGHPUT_CHILD_CONFIG";

/// Set in the child's environment to the file it writes its admin address to.
const ADMIN_FILE: &str = "THROUGHPUT_CHILD_ADMIN_FILE";

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
        let admin = bind_admin().await;
        run_notifier::app::run_with_admin(config, admin, shutdown)
            .await
            .unwrap();
    });
}

/// In the child: binds the admin listener on a port of the system's choosing and tells the
/// benchmark which (written whole, then renamed, so the benchmark never reads half of it).
pub async fn bind_admin() -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let file = std::path::PathBuf::from(std::env::var(ADMIN_FILE).expect("the admin file"));
    let part = file.with_extension("part");
    std::fs::write(&part, address).unwrap();
    std::fs::rename(&part, &file).unwrap();
    listener
}

/// A worker process started by the benchmark.
pub struct WorkerProcess {
    child: Child,
    /// The admin listener's address, once known.
    admin: Option<String>,
    /// Where a child of this bench binary writes its admin address (in a directory of its own,
    /// removed with the process).
    admin_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// Starts a child of this bench binary, learns its admin address from it, then waits for
    /// its `/readyz`; returns the process and how long it took to become ready.
    pub async fn start(command: Command) -> anyhow::Result<(Self, Duration)> {
        Self::start_at(command, None).await
    }

    /// As [`start`](Self::start), for a process whose admin listener is at `admin` (given in
    /// its config) or, with `None`, a child that says where it is.
    pub async fn start_at(
        command: Command,
        admin: Option<&str>,
    ) -> anyhow::Result<(Self, Duration)> {
        let started = Instant::now();
        let mut process = Self::spawn(command)?;
        process.admin = admin.map(str::to_owned);
        process.wait_ready(started).await?;
        Ok((process, started.elapsed()))
    }

    /// Starts `command` without waiting for it to be ready.
    pub fn spawn(mut command: Command) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the child's admin address")?;
        let admin_file = dir.path().join("admin");
        let child = command
            .env(ADMIN_FILE, &admin_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the child process")?;
        Ok(Self {
            child,
            admin: None,
            admin_file,
            _dir: dir,
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
        loop {
            if self.admin.is_none() {
                self.admin = std::fs::read_to_string(&self.admin_file).ok();
            }
            if let Some(admin) = &self.admin
                && let Ok(response) = client.get(format!("http://{admin}/readyz")).send().await
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
        let admin = self
            .admin
            .as_ref()
            .context("the child's admin address is not known")?;
        let url = format!("http://{admin}/metrics");
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
