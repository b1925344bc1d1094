//! An event on the real broker reaches a signed webhook receiver.

use crate::support as common;

use common::receiver::Receiver;
use common::{InProcessWorker, Names, SECRET, TestBroker, event_for, unique, webhook};
use serde_json::json;

#[tokio::test]
async fn an_event_reaches_the_webhook_with_the_documented_body_and_a_verifiable_signature() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let yaml = names.config(&webhook("ci-hook", &receiver.url("/hook")));
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &yaml).await;

    let run_id = unique("run");
    broker.publish(&event_for(&run_id)).await;
    let request = receiver.wait_for(1).await.remove(0);

    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("user-agent").starts_with("run-notifier/"));
    let expected = json!({
        "event": "RUN_CANCELED",
        "runId": run_id,
        "runUrl": format!("https://app.example.dev/run/{run_id}"),
        "projectId": "Xm2k9", "projectName": "web-app",
        "buildId": "gh-7714-1", "groupId": "chrome", "tags": ["nightly"],
        "commit": {
            "sha": "5a7edc9a156e417068060d67109021351fc7d9b8",
            "branch": "feature-A", "defaultBranch": "main",
            "message": "feat: change button color",
            "authorName": "John Doe", "authorEmail": "john@doe.com",
            "remoteOrigin": "https://github.com/acme/web-app.git"
        },
        "overall": 120, "passes": 100, "failures": 2, "pending": 3,
        "skipped": 15, "retries": 4, "flaky": 1,
        "status": "failed",
        "cancellation": { "canceledAt": "2026-11-21T10:15:01Z", "reason": "user", "actor": "jane.doe", "note": null }
    });
    assert_eq!(request.json(), expected);

    // Verified by the Standard Webhooks reference library, not by the code under test.
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, request.headers[name].clone());
    }
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(&request.body, &headers)
        .expect("the signature verifies with the reference implementation");
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert!(request.header("webhook-id").starts_with("msg_"));

    worker.stop().await;
    assert!(broker.take_dead_letters().await.is_empty());
    broker.cleanup().await;
}

#[tokio::test]
async fn hub_signature_and_static_headers_are_sent_when_configured() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let integration = format!(
        "{}    hub_secret: It's a Secret to Everybody\n    headers:\n      X-Team: platform\n",
        webhook("hub", &receiver.url("/hub"))
    );
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&integration)).await;

    broker.publish(&event_for(&unique("run"))).await;
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(
        request.header("x-hub-signature-256"),
        run_notifier::signature::hub_signature("It's a Secret to Everybody", &request.body)
    );
    assert_eq!(request.header("x-team"), "platform");

    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn filters_keep_an_event_from_an_integration() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let integrations = format!(
        "{}    branches: [\"main\"]\n{}",
        webhook("main-only", &receiver.url("/main")),
        webhook("all", &receiver.url("/all"))
    );
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&integrations)).await;

    broker.publish(&event_for(&unique("run"))).await; // branch feature-A
    let mut main = event_for(&unique("run"));
    main["data"]["commit"]["branch"] = json!("main");
    broker.publish(&main).await;

    let received = receiver.wait_for(3).await;
    worker.stop().await;
    let paths: Vec<_> = receiver.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/all").count(),
        2,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| *p == "/main").count(),
        1,
        "{paths:?}"
    );
    assert_eq!(received.len(), 3);
    broker.cleanup().await;
}
