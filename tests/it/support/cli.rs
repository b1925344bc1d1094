//! The `run-notifier` binary run as a command, the way an operator runs it.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use super::app::TestApp;

/// Runs `run-notifier args…` and returns its output, whatever the exit status.
pub fn run_notifier(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .output()
        .expect("the run-notifier binary runs")
}

/// Runs `run-notifier args… --config config`, asserts it succeeded and returns its stdout.
pub fn succeed(config: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("the run-notifier binary runs");
    assert!(
        output.status.success(),
        "run-notifier {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

impl TestApp {
    /// The ledger's state of each integration's delivery of `run` (`delivered`, `in_flight`…),
    /// read with `run-notifier deliveries --run <run> --json` as an operator would.
    pub fn delivery_states(&self, run: &str) -> HashMap<String, String> {
        self.deliveries(run)
            .iter()
            .map(|entry| {
                (
                    entry["integration"].as_str().unwrap().to_owned(),
                    entry["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// `run-notifier deliveries --run <run> --json`, as an operator would read it.
    fn deliveries(&self, run: &str) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cli(&["deliveries", "--run", run, "--json"])).unwrap()
    }

    /// The ledger's rows of `run` that are settled, as `(event type, state, receipt or last
    /// error)`, read with `run-notifier deliveries --run <run> --json`.
    pub fn delivery_history(&self, run: &str) -> Vec<(String, String, String)> {
        self.deliveries(run)
            .iter()
            .filter(|entry| entry["state"] != "in_flight")
            .map(|entry| {
                let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
                (
                    text("eventType"),
                    text("state"),
                    format!("{}{}", text("receipt"), text("lastError")),
                )
            })
            .collect()
    }
}
