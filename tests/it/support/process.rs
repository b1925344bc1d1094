//! [`WorkerProcess`]: `run-notifier run` as its own process, for signals, crashes and metrics
//! that belong to one worker alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::app::TestApp;
use super::events::unique;
use super::poll::wait_for_status;

/// A worker process of a [`TestApp`] (it cannot outlive the app, so its queues outlive it).
/// Killed when dropped.
pub struct WorkerProcess<'app> {
    child: tokio::process::Child,
    log: PathBuf,
    config: PathBuf,
    /// Where its admin listener is: bound by the process itself (port 0), read from its log.
    admin: OnceLock<SocketAddr>,
    _app: &'app TestApp,
}

impl<'app> WorkerProcess<'app> {
    /// Starts `run-notifier run --config config`, logs in a file, and waits until it is ready.
    pub(super) async fn start(app: &'app TestApp, config: &Path, env: &[(&str, &str)]) -> Self {
        let worker = Self::launch(app, config, env);
        wait_for_status(&worker.admin_url("/readyz"), 200).await;
        worker
    }

    /// Starts `run-notifier run --config config` with its logs in a file, without waiting.
    pub(super) fn launch(app: &'app TestApp, config: &Path, env: &[(&str, &str)]) -> Self {
        let log = app.dir().join(format!("{}.log", unique("worker")));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            config: config.to_owned(),
            admin: OnceLock::new(),
            _app: app,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends `signal` (`-TERM`, `-KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its status.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the worker process exits")
            .unwrap()
    }

    /// SIGTERM, then asserts a clean exit (status 0).
    pub async fn stop(&mut self) {
        self.signal("-TERM");
        let status = self.wait_exit().await;
        assert!(status.success(), "exit status {status:?}\n{}", self.logs());
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The config file the process runs on.
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// `http://<its admin listener><path>`; waits (briefly: it is the first thing the process
    /// does) until the process has said where it listens.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.get_or_init(|| admin_address(&self.log));
        format!("http://{admin}{path}")
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for WorkerProcess<'_> {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The address in the `admin listening` line a worker logs once it has bound its admin
/// listener (`admin.listen` with port 0 lets it take any free port, with no race).
pub fn admin_address(log: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = std::fs::read_to_string(log).unwrap_or_default();
        let listening = logs.lines().find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            (line["message"] == "admin listening").then(|| line["listen"].as_str()?.parse().ok())?
        });
        if let Some(address) = listening {
            return address;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never said where its admin listener is:\n{logs}"
        );
        // A blocking wait, but only for the few milliseconds the process takes to bind.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of one sample of a Prometheus text page (`name{labels} value`) whose labels
/// include `labels`.
pub fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| line.starts_with(name))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let all = labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
            let rest = &series[name.len()..];
            (all && (rest.is_empty() || rest.starts_with('{'))).then(|| value.parse().ok())?
        })
}
