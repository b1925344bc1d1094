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
