//! [`WorkerProcess`]: `run-notifier run` as its own process, for signals, crashes and metrics
//! that belong to one worker alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::app::TestApp;
use super::events::unique;
use super::poll::wait_for_status;

/// A worker process of a [`TestApp`] (it cannot outlive the app, so its queues outlive it).
/// Killed when dropped.
pub struct WorkerProcess<'app> {
    child: tokio::process::Child,
    log: PathBuf,
    config: PathBuf,
    admin: SocketAddr,
    _app: &'app TestApp,
}

impl<'app> WorkerProcess<'app> {
    /// Starts `run-notifier run --config config`, logs in a file, and waits until it is ready.
    pub(super) async fn start(
        app: &'app TestApp,
        config: &Path,
        admin: SocketAddr,
        env: &[(&str, &str)],
    ) -> Self {
        let worker = Self::launch(app, config, admin, env);
        wait_for_status(&worker.admin_url("/readyz"), 200).await;
        worker
    }

    /// Starts `run-notifier run --config config` with its logs in a file, without waiting.
    pub(super) fn launch(
        app: &'app TestApp,
        config: &Path,
        admin: SocketAddr,
        env: &[(&str, &str)],
    ) -> Self {
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
            admin,
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

    /// `http://<its admin listener><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
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
