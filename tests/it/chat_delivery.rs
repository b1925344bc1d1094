//! Slack and Teams deliveries end to end through RabbitMQ: Slack's answers (`ok`, 429 with
//! `Retry-After`, body errors) and Teams' 202 decide between done, retry and dead letter.

use std::time::Duration;

use run_notifier::protocol::{HEADER_ATTEMPT, HEADER_ERROR, HEADER_INTEGRATION};
use wiremock::ResponseTemplate;

use crate::support::{Receiver, ScheduledRetry, TestApp, event, slack, teams};

fn slack_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string("ok")
}

#[tokio::test]
async fn slack_429_then_ok_waits_for_retry_after_and_sends_the_same_message() {
    let receiver = Receiver::scripted(
        vec![
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_string("rate_limited"),
        ],
        slack_ok(),
    )
    .await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack("slack", &receiver.url("/services/T0/B0/secret")));
    })
    .await;

    app.publish(&event()).await;
    let retry = app.wait_for_scheduled_retry(2).await;
    assert_eq!(
        retry,
        ScheduledRetry {
            integration: "slack".into(),
            attempt: 2,
            delay: Duration::from_secs(2),
            sealed: true,
        },
        "Slack's Retry-After, not the 300 ms backoff"
    );
    let attempts = receiver.wait_for(2).await;
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert_eq!(attempts[0].body, attempts[1].body);
    let message = attempts[1].json();
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("Run cancelled by jane.doe")
    );
    assert_eq!(attempts[1].header("content-type"), "application/json");
    assert_eq!(attempts[1].path, "/services/T0/B0/secret");

    app.stop_worker().await;
    assert_eq!(receiver.count(), 2, "the `ok` ended it");
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn slack_invalid_payload_is_dead_lettered_at_once_with_slacks_error() {
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(400).set_body_string("invalid_payload"),
    )
    .await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack("slack", &receiver.url("/services/T0/B0/secret")));
    })
    .await;

    app.publish(&event()).await;
    let letter = app.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(letter.header(HEADER_INTEGRATION).as_deref(), Some("slack"));
    assert_eq!(letter.number(HEADER_ATTEMPT), Some(1));
    let error = letter.header(HEADER_ERROR).unwrap();
    assert!(
        error.starts_with("Slack rejected the message (HTTP 400 Bad Request): invalid_payload"),
        "{error}"
    );
    assert!(!error.contains("secret"), "the webhook URL leaked: {error}");
    app.stop_worker().await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn slack_errors_in_a_200_body_are_dead_lettered_too() {
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_body_string("channel_is_archived"),
    )
    .await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack("slack", &receiver.url("/services/T0/B0/x")));
    })
    .await;

    app.publish(&event()).await;
    let letter = app.wait_for_dead_letters(1).await.remove(0);
    let error = letter.header(HEADER_ERROR).unwrap();
    assert!(error.contains("not `ok`"), "{error}");
    assert!(error.contains("channel_is_archived"), "{error}");
    app.stop_worker().await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn teams_202_is_delivered_once_with_an_adaptive_card() {
    let receiver = Receiver::scripted(vec![], ResponseTemplate::new(202)).await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(teams(
            "teams",
            &receiver.url("/workflows/x/triggers/manual/paths/invoke?sig=secret"),
        ));
    })
    .await;

    app.publish(&event()).await;
    let received = receiver.wait_for(1).await.remove(0);
    let message = received.json();
    assert_eq!(message["type"], "message");
    assert_eq!(
        message["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );

    app.stop_worker().await;
    assert_eq!(receiver.count(), 1, "202 is success: no retry");
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn messages_to_one_slack_webhook_are_paced_one_a_second() {
    let receiver = Receiver::scripted(vec![], slack_ok()).await;
    let url = receiver.url("/services/T0/B0/paced");
    // Two integrations on one webhook share its pace, as Slack counts per webhook.
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack("first", &url));
        config.add(slack("second", &url));
    })
    .await;

    for _ in 0..2 {
        app.publish(&event()).await;
    }
    let mut times: Vec<_> = receiver.wait_for(4).await.iter().map(|r| r.at).collect();
    times.sort();
    // Paced when sent; arrivals jitter by the scheduling of two processes on a busy machine
    // (948 ms was seen), while unpaced sends arrive within milliseconds of each other.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(800),
            "{:?} apart",
            pair[1] - pair[0]
        );
    }
    assert!(
        times[3] - times[0] >= Duration::from_millis(2_900),
        "4 messages in {:?}",
        times[3] - times[0]
    );
    app.stop_worker().await;
    assert_eq!(receiver.count(), 4);
}
