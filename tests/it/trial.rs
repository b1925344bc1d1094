//! The README's quick start, as a new user runs it: `run-notifier trial`, the worker on the
//! example config as shipped (only its broker names, admin port, ledger and the trial's port
//! made unique), then both example events published to the real broker: every integration
//! succeeds against the trial receiver, which verified the webhook signature.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::app::free_port;
use crate::support::poll::wait_for_status;
use crate::support::{Names, TestApp, wait_until};

const EXAMPLE: &str = include_str!("../../config/run-notifier.yaml");

/// The variables the example config reads.
const EXAMPLE_VARIABLES: [&str; 11] = [
    "AMQP_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "SLACK_WEBHOOK_URL",
    "TEAMS_WEBHOOK_URL",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "BITBUCKET_API_URL",
    "BITBUCKET_USERNAME",
    "BITBUCKET_APP_PASSWORD",
    "LEDGER_URL",
];

/// The integrations of the example config.
const EXAMPLE_INTEGRATIONS: [&str; 6] = [
    "audit-webhook",
    "team-slack",
    "team-teams",
    "github-status",
    "github-pr-comment",
    "bitbucket-status",
];

/// The example config with this test's names; nothing else changed.
fn example_config(names: &Names, admin_port: u16, ledger: &str, trial_port: u16) -> String {
    EXAMPLE
        .replace("exchange: runs", &format!("exchange: {}", names.exchange))
        .replace(
            "queue: run-notifier.events",
            &format!("queue: {}", names.queue),
        )
        .replace(
            "prefix: run-notifier.retry",
            &format!("prefix: {}", names.retry_prefix),
        )
        .replace(
            "queue: run-notifier.dead",
            &format!("queue: {}", names.dead),
        )
        .replace(
            "exchange: run-notifier.control",
            &format!("exchange: {}", names.control),
        )
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{admin_port}"))
        .replace("path: run-notifier.db", &format!("path: {ledger}"))
        .replace(
            "templates_dir: ../templates",
            concat!("templates_dir: ", env!("CARGO_MANIFEST_DIR"), "/templates"),
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{trial_port}"))
}

fn history(config: &std::path::Path, run: &str) -> Vec<Value> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["deliveries", "--json", "--run", run, "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn state_of<'a>(history: &'a [Value], integration: &str) -> &'a str {
    history
        .iter()
        .find(|e| e["integration"] == integration)
        .and_then(|e| e["state"].as_str())
        .unwrap_or("none")
}

#[tokio::test]
async fn the_quick_start_shows_every_integration_succeed_against_the_trial_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let trial_log = dir.path().join("trial.log");
    let mut trial = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["trial", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("WEBHOOK_SECRET")
        .stdout(std::fs::File::create(&trial_log).unwrap())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let printed = || std::fs::read_to_string(&trial_log).unwrap_or_default();
    wait_until(
        "the trial receiver listens",
        Duration::from_secs(10),
        || async { printed().contains("trial receiver on") },
    )
    .await;
    assert!(printed().contains(&format!("http://127.0.0.1:{port}/hooks/slack")));

    let app = TestApp::new().await;
    let admin_port = free_port();
    let ledger = dir.path().join("ledger.db");
    let yaml = example_config(&app.names, admin_port, &ledger.display().to_string(), port);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    // Each integration's own queue is the app's to delete.
    app.names
        .integrations
        .lock()
        .unwrap()
        .extend(EXAMPLE_INTEGRATIONS.iter().map(|name| name.to_string()));
    let worker_log = dir.path().join("worker.log");
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"));
    // The example's defaults, whatever this machine's environment says.
    for variable in EXAMPLE_VARIABLES {
        worker.env_remove(variable);
    }
    let mut worker = worker
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&worker_log).unwrap())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_status(&format!("http://127.0.0.1:{admin_port}/readyz"), 200).await;
    for event in [
        "config/example-event.json",
        "config/example-event-bitbucket.json",
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(["publish", "--event", event, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let (github_run, bitbucket_run) = (
        "950a13c3edf4f28b6e8ce301a404b4aa",
        "b7e1d2c4a9f04e5c8d3b6a1f0e2c4d6b",
    );
    let all = EXAMPLE_INTEGRATIONS;
    wait_until(
        "every delivery is recorded",
        Duration::from_secs(30),
        || {
            let settled = all.iter().all(|name| {
                state_of(&history(&config, github_run), name) != "none"
                    && state_of(&history(&config, bitbucket_run), name) != "none"
            });
            async move { settled }
        },
    )
    .await;
    let (github, bitbucket) = (
        history(&config, github_run),
        history(&config, bitbucket_run),
    );
    for name in all {
        assert!(
            state_of(&github, name) == "delivered" || state_of(&bitbucket, name) == "delivered",
            "{name} never succeeded: {github:#?} {bitbucket:#?}\n{}",
            printed()
        );
    }
    // Each provider only takes commits on its own host.
    assert_eq!(state_of(&github, "bitbucket-status"), "skipped");
    assert_eq!(state_of(&bitbucket, "github-status"), "skipped");

    let printed = printed();
    for line in [
        "webhook            POST /hooks/run-canceled → 204",
        "signature valid, msg_",
        "slack              POST /hooks/slack → 200 ok",
        "\"Run cancelled by jane.doe: 100 passed, 2 failed in web-app on feature-A\"",
        "teams              POST /hooks/teams → 202",
        "github status      POST /repos/acme/web-app/statuses/5a7edc9 → 201",
        "failure `run-notifier/Xm2k9`: Cancelled by jane.doe",
        "github comments    GET /repos/acme/web-app/issues/42/comments → 200",
        "github pr comment  POST /repos/acme/web-app/issues/42/comments → 201",
        "bitbucket status   POST /2.0/repositories/acme/web-app/commit/5a7edc9/statuses/build → 201",
    ] {
        assert!(printed.contains(line), "missing `{line}` in:\n{printed}");
    }
    assert!(!printed.contains("REJECTED"), "{printed}");
    assert!(!printed.contains("→ 404"), "{printed}");

    let pid = worker.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(worker.wait().await.unwrap().success());
    trial.kill().await.unwrap();
}
