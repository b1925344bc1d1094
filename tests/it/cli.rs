//! The `publish` and `verify` commands as a person runs them.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use lapin::options::{BasicAckOptions, BasicGetOptions};

use crate::support::{TestApp, event_for, unique, webhook};

const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn verify(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &str,
    tolerance: &str,
) -> (bool, String) {
    let output = run(
        &[
            "verify",
            "--secret",
            secret,
            "--id",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "--timestamp",
            timestamp,
            "--signature",
            signature,
            "--tolerance",
            tolerance,
        ],
        body,
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn verify_accepts_the_specification_vector_and_explains_each_failure() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    let forever = "4000000000";

    let (ok, text) = verify(secret, "1649367553", signature, BODY, forever);
    assert!(ok, "{text}");
    assert!(text.contains("valid: the signature matches"), "{text}");

    let (ok, text) = verify(secret, "1649367553", signature, BODY, "300");
    assert!(!ok);
    assert!(
        text.contains("s old, outside the tolerance of 300 s"),
        "{text}"
    );

    let (ok, text) = verify(
        "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "1649367553",
        signature,
        BODY,
        forever,
    );
    assert!(!ok);
    assert!(
        text.contains("bad secret: a signing secret must start with `whsec_`"),
        "{text}"
    );

    let (ok, text) = verify(
        secret,
        "1649367553",
        signature,
        r#"{"email":"evil@example.com"}"#,
        forever,
    );
    assert!(!ok);
    assert!(text.contains("no signature matches"), "{text}");

    let (ok, text) = verify(secret, "1649367553", "v1a,abc", BODY, forever);
    assert!(!ok);
    assert!(text.contains("has no `v1,` signature"), "{text}");
}

#[tokio::test]
async fn publish_declares_the_topology_and_puts_the_event_on_the_worker_queue() {
    let app = TestApp::new().await;
    let (config, _) = app.config(|config| {
        config.add(webhook("hook", "http://127.0.0.1:9/unused"));
    });
    let event = app.dir().join("event.json");
    let run_id = unique("run");
    std::fs::write(&event, event_for(&run_id).to_string()).unwrap();

    let output = run(
        &[
            "publish",
            "--event",
            event.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("to exchange `{}`", app.names.exchange))
    );

    let message = app
        .channel
        .basic_get(app.names.queue.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .expect("the event is on the worker's queue");
    message
        .delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body["data"]["runId"], run_id.as_str());
    assert_eq!(
        message
            .delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("application/cloudevents+json")
    );
}

#[test]
fn publish_refuses_an_event_the_worker_would_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"specversion":"1.0","id":"x","source":"s","type":"run.canceled","data":{}}"#,
    )
    .unwrap();
    let output = run(
        &[
            "publish",
            "--event",
            event.to_str().unwrap(),
            "--config",
            "config/run-notifier.yaml",
        ],
        "",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "the worker would dead-letter this event: field `data`: missing field `runId`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--unchecked"), "{stderr}");
}

/// The receivers guide's `verify` example, run as printed (with this build's binary as
/// `run-notifier`).
#[test]
fn the_receivers_guides_verify_example_passes_as_printed() {
    let guide = std::fs::read_to_string("docs/receivers/README.md").unwrap();
    let block = guide
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains("run-notifier verify"))
        .expect("a verify example in docs/receivers/README.md");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_run-notifier"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-c", block])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{block}\n{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "valid: the signature matches and the timestamp is within 300 s\n"
    );

    // Without `--now` the 2022 vector is too old, and says so.
    let output = Command::new("sh")
        .args(["-c", &block.replace(" --now 1649367553", "")])
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", bin.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("s old, outside the tolerance of 300 s"),
        "{stderr}"
    );
}

#[test]
fn commands_that_read_no_config_do_not_offer_config() {
    for command in ["verify", "trial"] {
        let output = run(&[command, "--help"], "");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{help}");
        assert!(!help.contains("--config"), "{command} --help:\n{help}");
    }
    let output = run(&["check-config", "--help"], "");
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("--config <CONFIG>"), "{help}");
}

/// The README's run and test commands are the scripts, and CI runs the same test command (then
/// the benchmark's smoke run); with the services already running, the set-up script only
/// checks them.
#[test]
fn the_readme_commands_set_up_the_services_and_ci_runs_the_same_one() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for command in ["scripts/dev run", "scripts/dev test", "scripts/dev trial"] {
        assert!(readme.contains(&format!("\n{command}")), "{command}");
    }
    let ci = std::fs::read_to_string(".ci/run").unwrap();
    // The same test command, then the benchmark's smoke run, which needs the services it set up.
    let tests = ci
        .find("\nscripts/dev test\n")
        .expect("CI runs scripts/dev test");
    let smoke = ci
        .find("cargo bench --locked --profile dev --bench throughput -- --smoke")
        .expect("CI makes the benchmark's smoke run");
    assert!(tests < smoke, "the smoke run comes after the tests:\n{ci}");
    let dev = std::fs::read_to_string("scripts/dev").unwrap();
    assert!(dev.contains("scripts/services.sh all\n    exec cargo test --locked"));
    assert!(dev.contains("scripts/services.sh rabbitmq\n    exec cargo run -- run"));

    let output = Command::new("scripts/services.sh").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "== RabbitMQ is running\n== PostgreSQL is running\n"
    );
}
