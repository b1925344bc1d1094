//! ERROR means an operator must act: conditions the worker recovers from on its own (the broker
//! closing the connection, a GitHub 502 that is retried) leave no ERROR line in the worker's
//! own log output, read from the real binary's JSON lines.

use std::time::Duration;

use crate::support::poll::wait_for_status;
use crate::support::process::{WorkerProcess, sample};
use crate::support::{Receiver, TestApp, event_for, github_status, unique, wait_until, webhook};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STATUS_PATH: &str = "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8";

/// Every JSON log line of the worker.
fn lines(worker: &WorkerProcess) -> Vec<Value> {
    worker
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The lines at ERROR, each as its JSON text.
fn errors(worker: &WorkerProcess) -> Vec<String> {
    lines(worker)
        .into_iter()
        .filter(|line| line["level"] == "ERROR")
        .map(|line| line.to_string())
        .collect()
}

/// Closes, from the broker's side, the connection of the worker process `pid`.
fn close_connection_of(pid: u32) -> usize {
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl is installed with RabbitMQ");
    let listing = String::from_utf8(output.stdout).unwrap();
    let ours = format!("run-notifier worker {pid}\"");
    let mut closed = 0;
    for line in listing.lines().filter(|line| line.contains(&ours)) {
        let connection = line.split_whitespace().next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args([
                "close_connection",
                connection,
                "test: broker-side close",
                "-q",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_logs_no_error() {
    let app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &receiver.url("/hook")));
        })
        .await;

    let pid = worker.pid();
    assert_eq!(close_connection_of(pid), 1);
    wait_until(
        "the worker notices the closed connection",
        Duration::from_secs(10),
        || async { worker.logs().contains("test: broker-side close") },
    )
    .await;
    wait_for_status(&worker.admin_url("/readyz"), 200).await;
    // Still working after the reconnect.
    let run = unique("run");
    app.publish(&event_for(&run)).await;
    assert_eq!(receiver.wait_for(1).await[0].json()["runId"], run.as_str());

    worker.stop().await;
    let logs = lines(&worker);
    // The lapin lines are kept, one level down: the detail is still there for a reader.
    assert!(
        logs.iter()
            .any(|l| l["level"] == "WARN" && l.to_string().contains("broker-side close")),
        "{logs:#?}"
    );
    assert_eq!(errors(&worker), Vec::<String>::new());
}

#[tokio::test]
async fn a_github_502_that_is_retried_logs_no_error() {
    let app = TestApp::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&server)
        .await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(github_status("gh-status", &server.uri()).with("timeout", "5s"));
        })
        .await;

    app.publish(&event_for(&unique("run"))).await;
    wait_until("GitHub got the retry", Duration::from_secs(20), || async {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == STATUS_PATH)
            .count()
            >= 2
    })
    .await;
    wait_until(
        "the delivery is logged",
        Duration::from_secs(10),
        || async { worker.logs().contains("delivered") },
    )
    .await;

    worker.stop().await;
    let logs = lines(&worker);
    assert!(
        logs.iter().any(|l| l.to_string().contains("502")),
        "the 502 is still logged: {logs:#?}"
    );
    assert_eq!(errors(&worker), Vec::<String>::new());
}

#[tokio::test]
async fn a_retry_for_an_integration_removed_after_a_cancel_is_dropped_without_an_error() {
    let app = TestApp::new().await;
    let kept = Receiver::ok().await;
    // Asks for its retry in 3 s: time for the operator to cancel and reconfigure.
    let removed = Receiver::scripted(
        vec![],
        ResponseTemplate::new(503).insert_header("retry-after", "3"),
    )
    .await;
    let mut first = app
        .spawn_process(|config| {
            config.add(webhook("kept-after-cancel", &kept.url("/kept")));
            config.add(webhook("removed-after-cancel", &removed.url("/removed")));
        })
        .await;
    let run = unique("run");
    app.publish(&event_for(&run)).await;
    wait_until(
        "the retry is scheduled",
        Duration::from_secs(30),
        || async {
            app.delivery_states(&run)
                .get("removed-after-cancel")
                .map(String::as_str)
                == Some("failed")
        },
    )
    .await;
    app.cli(&["deliveries", "cancel", "--run", &run]);
    first.stop().await;

    // The operator removes the integration; its retry comes back to a worker that lacks it.
    let second = app
        .spawn_process(|config| {
            config.add(webhook("kept-after-cancel", &kept.url("/kept")));
        })
        .await;
    wait_until(
        "the retry is dropped as canceled",
        Duration::from_secs(30),
        || async {
            sample(
                &second.metrics().await,
                "run_notifier_deliveries_total",
                // A name read from a message is no label value.
                &[("integration", "unknown"), ("outcome", "canceled")],
            ) == Some(1.0)
        },
    )
    .await;
    assert_eq!(removed.count(), 1);
    assert!(app.take_dead_letters().await.is_empty());
    assert_eq!(errors(&second), Vec::<String>::new());
    assert_eq!(errors(&first), Vec::<String>::new());
}

#[tokio::test]
async fn producer_text_in_log_fields_and_skip_reasons_is_bounded() {
    let app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    let github = MockServer::start().await;
    let mut worker = app
        .spawn_process_with_env(&[("RUST_LOG", "debug")], |config| {
            config.add(webhook("hook", &receiver.url("/hook")));
            config.add(github_status("gh-status", &github.uri()));
        })
        .await;

    let mut event = event_for(&unique("run"));
    event["data"]["projectId"] = serde_json::json!("p".repeat(300_000));
    let host = format!("{}.example", "h".repeat(300_000));
    event["data"]["commit"]["remoteOrigin"] =
        serde_json::json!(format!("https://{host}/acme/web-app.git"));
    app.publish(&event).await;
    // The whole project id is the event's fact: the receiver gets it as it is.
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(
        request.json()["projectId"].as_str().map(str::len),
        Some(300_000)
    );
    wait_until("the skip is logged", Duration::from_secs(10), || async {
        worker.logs().contains("not on github.com")
    })
    .await;
    worker.stop().await;

    let logs = lines(&worker);
    let project = format!("{}… (300000 bytes)", "p".repeat(256));
    assert!(
        logs.iter().any(|l| l.to_string().contains(&project)),
        "{logs:#?}"
    );
    for line in worker.logs().lines() {
        assert!(line.len() < 2_048, "a log line of {} bytes", line.len());
    }
}

/// At INFO a message is one line, naming each part's outcome; the deliveries' own lines are at
/// DEBUG, except a failure that will be retried, at WARN with the receiver's answer.
#[tokio::test]
async fn an_event_fanned_out_to_three_receivers_is_one_info_line_and_a_warn_per_failure() {
    let app = TestApp::new().await;
    let ok = Receiver::ok().await;
    let failing = Receiver::scripted(vec![], ResponseTemplate::new(503)).await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("first-hook", &ok.url("/first")));
            config.add(webhook("second-hook", &ok.url("/second")));
            config.add(webhook("failing-hook", &failing.url("/failing")));
        })
        .await;
    let run = unique("run");
    app.publish(&event_for(&run)).await;
    ok.wait_for(2).await;
    let handled = |worker: &WorkerProcess| {
        lines(worker)
            .into_iter()
            .filter(|line| line["message"] == "event handled")
            .filter(|line| line.to_string().contains(&run))
            .collect::<Vec<_>>()
    };
    wait_until(
        "the message is handled",
        Duration::from_secs(20),
        || async { !handled(&worker).is_empty() },
    )
    .await;
    worker.stop().await;

    let handled = handled(&worker);
    let first = &handled[0];
    assert_eq!(first["level"], "INFO", "{first}");
    let deliveries = first["deliveries"].as_str().unwrap();
    let mut parts: Vec<_> = deliveries.split(' ').collect();
    parts.sort_unstable();
    assert_eq!(
        parts,
        [
            "failing-hook=retry",
            "first-hook=delivered",
            "second-hook=delivered"
        ],
        "{first}"
    );
    let logs = lines(&worker);
    let info_about_run = logs
        .iter()
        .filter(|l| l["level"] == "INFO" && l.to_string().contains(&run))
        .count();
    // The first attempt's message, then each retry of the failing part.
    assert_eq!(info_about_run, handled.len(), "{logs:#?}");
    let retries = logs
        .iter()
        .filter(|l| l["level"] == "WARN" && l["message"] == "failed, will retry");
    assert!(
        retries.clone().count() >= 1 && retries.clone().all(|l| l.to_string().contains("503")),
        "{logs:#?}"
    );
}
