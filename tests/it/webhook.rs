//! An event on the real broker reaches a signed webhook receiver.

use serde_json::json;

use crate::support::{Receiver, SECRET, TestApp, event, event_for, unique, webhook};

#[tokio::test]
async fn an_event_reaches_the_webhook_with_the_documented_body_and_a_verifiable_signature() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("ci-hook", &receiver.url("/hook")));
    })
    .await;

    let run_id = unique("run");
    app.publish(&event_for(&run_id)).await;
    let request = receiver.wait_for(1).await.remove(0);

    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("user-agent").starts_with("run-notifier/"));
    let expected = json!({
        "event": "RUN_CANCELED",
        "time": "2026-11-21T10:15:02Z",
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

    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn hub_signature_and_static_headers_are_sent_when_configured() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(
            webhook("hub", &receiver.url("/hub"))
                .with("hub_secret", "It's a Secret to Everybody")
                .with("headers", json!({"X-Team": "platform"})),
        );
    })
    .await;

    app.publish(&event()).await;
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(
        request.header("x-hub-signature-256"),
        run_notifier::signature::hub_signature("It's a Secret to Everybody", &request.body)
    );
    assert_eq!(request.header("x-team"), "platform");

    app.stop_worker().await;
}

#[tokio::test]
async fn filters_keep_an_event_from_an_integration() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("main-only", &receiver.url("/main")).with("branches", ["main"]));
        config.add(webhook("all", &receiver.url("/all")));
    })
    .await;

    app.publish(&event()).await; // branch feature-A
    let mut main = event();
    main["data"]["commit"]["branch"] = json!("main");
    app.publish(&main).await;

    let received = receiver.wait_for(3).await;
    app.stop_worker().await;
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
}
