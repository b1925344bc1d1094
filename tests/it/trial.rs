//! The README's quick start, as a new user runs it: `run-notifier trial`, the worker on the
//! example config as shipped (only its broker names, admin port, ledger and the trial's port
//! made unique), then both example events published to the real broker: every integration
//! succeeds against the trial receiver, which verified the webhook signature.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::poll::wait_for_status;
use crate::support::process::admin_address;
use crate::support::{Names, TestApp, wait_until};

const EXAMPLE: &str = include_str!("../../config/run-notifier.yaml");

/// The integrations of the example config.
const EXAMPLE_INTEGRATIONS: [&str; 9] = [
    "audit-webhook",
    "team-slack",
    "team-slack-app",
    "team-teams",
    "github-status",
    "github-pr-comment",
    "gitlab-status",
    "gitlab-mr-note",
    "bitbucket-status",
];

/// The example events and their runs: one commit on each provider.
const EVENTS: [(&str, &str); 3] = [
    (
        "config/example-event.json",
        "950a13c3edf4f28b6e8ce301a404b4aa",
    ),
    (
        "config/example-event-gitlab.json",
        "c3a9e5f1b2d84c6e9f0a1b2c3d4e5f60",
    ),
    (
        "config/example-event-bitbucket.json",
        "b7e1d2c4a9f04e5c8d3b6a1f0e2c4d6b",
    ),
];

/// The variables the example config reads (all of them, so the defaults apply).
fn example_variables() -> Vec<String> {
    EXAMPLE
        .split("${")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(rest[..end].to_owned())
        })
        .collect()
}

/// Starts `run-notifier trial` on any free port (logging to `trial.log` in `dir`), waits until
/// it listens, and returns it with the port its banner names. `example_env`: without the
/// environment the example config reads, as a newcomer's shell would be.
async fn start_trial(dir: &std::path::Path, example_env: bool) -> (tokio::process::Child, u16) {
    let log = dir.join("trial.log");
    let mut trial = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"));
    if example_env {
        trial.env_remove("WEBHOOK_SECRET");
    }
    let trial = trial
        .args(["trial", "--listen", "127.0.0.1:0"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let port = || {
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        let base = printed.strip_prefix("trial receiver on http://127.0.0.1:")?;
        base.split(' ').next()?.parse::<u16>().ok()
    };
    wait_until(
        "the trial receiver listens",
        Duration::from_secs(10),
        || async { port().is_some() },
    )
    .await;
    (trial, port().unwrap())
}

/// The example config with this test's names; nothing else changed.
fn example_config(names: &Names, ledger: &str, trial_port: u16) -> String {
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
        // Any free port: the worker logs the one it takes.
        .replace("127.0.0.1:9464", "127.0.0.1:0")
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
    let (mut trial, port) = start_trial(dir.path(), true).await;
    let trial_log = dir.path().join("trial.log");
    let printed = || std::fs::read_to_string(&trial_log).unwrap_or_default();
    assert!(printed().contains(&format!("http://127.0.0.1:{port}/hooks/slack")));

    let app = TestApp::new().await;
    let ledger = dir.path().join("ledger.db");
    let yaml = example_config(&app.names, &ledger.display().to_string(), port);
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
    for variable in example_variables() {
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
    let admin = admin_address(&worker_log);
    wait_for_status(&format!("http://{admin}/readyz"), 200).await;
    for (event, _) in EVENTS {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(["publish", "--event", event, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    wait_until(
        "every delivery is recorded",
        Duration::from_secs(60),
        || {
            let settled = EVENTS.iter().all(|(_, run)| {
                let history = history(&config, run);
                EXAMPLE_INTEGRATIONS
                    .iter()
                    .all(|name| state_of(&history, name) != "none")
            });
            async move { settled }
        },
    )
    .await;
    let histories: Vec<Vec<Value>> = EVENTS
        .iter()
        .map(|(_, run)| history(&config, run))
        .collect();
    for name in EXAMPLE_INTEGRATIONS {
        assert!(
            histories.iter().any(|h| state_of(h, name) == "delivered"),
            "{name} never succeeded: {histories:#?}\n{}",
            printed()
        );
    }
    // Each provider only takes commits on its own host.
    let [github, gitlab, bitbucket] = &histories[..] else {
        unreachable!()
    };
    assert_eq!(state_of(github, "bitbucket-status"), "skipped");
    assert_eq!(state_of(github, "gitlab-status"), "skipped");
    assert_eq!(state_of(gitlab, "github-status"), "skipped");
    assert_eq!(state_of(bitbucket, "gitlab-mr-note"), "skipped");

    let printed = printed();
    for line in [
        "webhook            POST /hooks/run-canceled → 204",
        "signature valid, msg_",
        "slack              POST /hooks/slack → 200 ok",
        "\"Run cancelled by jane.doe: 100 passed, 2 failed in web-app on feature-A\"",
        "teams              POST /hooks/teams → 202",
        "Adaptive Card 1.4: \"Run cancelled by jane.doe\"",
        "github status      POST /repos/acme/web-app/statuses/5a7edc9 → 201",
        "failure `run-notifier/Xm2k9`: Cancelled by jane.doe",
        "github comments    GET /repos/acme/web-app/issues/42/comments → 200",
        "github pr comment  POST /repos/acme/web-app/issues/42/comments → 201",
        "bitbucket status   POST /2.0/repositories/acme/web-app/commit/5a7edc9/statuses/build → 201",
        "gitlab status      POST /projects/acme/web-app/statuses/5a7edc9 → 201",
        "gitlab mr note     POST /projects/acme/web-app/merge_requests/42/notes → 201",
        "slack app          POST chat.postMessage → 200 ok",
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

#[tokio::test]
async fn the_trial_receiver_keeps_check_runs_so_a_later_event_updates_the_same_one() {
    use crate::support::fake_checks::github_check_run;
    use crate::support::providers::{build, deliver};

    let dir = tempfile::tempdir().unwrap();
    let (_trial, port) = start_trial(dir.path(), false).await;
    let trial_log = dir.path().join("trial.log");
    let printed = || std::fs::read_to_string(&trial_log).unwrap_or_default();
    let api = format!("http://127.0.0.1:{port}/github");
    let run = crate::support::event();

    // Two lives of the worker: the second finds the check run the first created.
    deliver(&build(github_check_run("gh-checks", &api)), &run)
        .await
        .unwrap();
    deliver(&build(github_check_run("gh-checks", &api)), &run)
        .await
        .unwrap();

    let expected = [
        "github app token   POST /app/installations/4242/access_tokens → 201",
        "github check runs  GET /repos/acme/web-app/commits/5a7edc9/check-runs → 200",
        "          0 check run(s)",
        "github check run   POST /repos/acme/web-app/check-runs (5a7edc9) → 201",
        "          check run 1 completed: cancelled `run-notifier / web-app`: Cancelled by jane.doe: 100 passed, 2 failed",
        "          1 check run(s)",
        "github check run   PATCH /repos/acme/web-app/check-runs/1 → 200",
    ];
    wait_until(
        "the trial printed both deliveries",
        Duration::from_secs(10),
        || {
            let printed = printed();
            async move { expected.iter().all(|line| printed.contains(line)) }
        },
    )
    .await;
}
