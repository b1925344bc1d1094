//! Transient failures are retried through the broker per integration; permanent ones are
//! dead-lettered at once; `Retry-After` is honoured.

use std::time::Duration;

use run_notifier::config::HumanDuration;
use run_notifier::protocol::{
    HEADER_ATTEMPT, HEADER_DEAD_KIND, HEADER_ERROR, HEADER_INTEGRATION, HEADER_RUN_ID,
};
use wiremock::ResponseTemplate;

use crate::support::{
    Receiver, ScheduledRetry, TestApp, event, event_for, unique, wait_until, webhook,
};

#[tokio::test]
async fn a_failing_receiver_is_retried_alone_with_the_same_webhook_id_until_it_succeeds() {
    let mut app = TestApp::new().await;
    let flaky = Receiver::scripted(
        vec![ResponseTemplate::new(500), ResponseTemplate::new(500)],
        ResponseTemplate::new(200),
    )
    .await;
    let healthy = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("flaky", &flaky.url("/flaky")));
        config.add(webhook("healthy", &healthy.url("/healthy")));
    })
    .await;

    app.publish(&event()).await;
    let attempts = flaky.wait_for(3).await;

    let ids: Vec<_> = attempts.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "webhook-id changed between retries: {ids:?}"
    );
    let timestamps: Vec<_> = attempts
        .iter()
        .map(|r| r.header("webhook-timestamp"))
        .collect();
    assert!(timestamps.iter().all(|t| t.parse::<i64>().is_ok()));
    // Backoff: 300 ms, then 600 ms.
    assert!(attempts[1].at - attempts[0].at >= Duration::from_millis(300));
    assert!(attempts[2].at - attempts[1].at >= Duration::from_millis(600));

    app.stop_worker().await;
    assert_eq!(flaky.count(), 3, "exactly one success after two failures");
    assert_eq!(
        healthy.count(),
        1,
        "the healthy integration was not sent again"
    );
    assert_ne!(
        healthy.received()[0].header("webhook-id"),
        ids[0],
        "ids are per integration"
    );
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_permanent_4xx_is_dead_lettered_after_one_attempt_naming_the_integration() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(400).set_body_string("unknown field `runId`"),
    )
    .await;
    app.spawn_worker(|config| {
        config.add(webhook("strict", &receiver.url("/strict")));
    })
    .await;

    let run_id = unique("run");
    app.publish(&event_for(&run_id)).await;
    let letter = app.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(letter.header(HEADER_INTEGRATION).as_deref(), Some("strict"));
    assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("delivery"));
    assert_eq!(letter.number(HEADER_ATTEMPT), Some(1));
    assert_eq!(letter.header(HEADER_RUN_ID), Some(run_id));
    let error = letter.header(HEADER_ERROR).unwrap();
    assert_eq!(error, "HTTP 400 Bad Request: unknown field `runId`");
    app.stop_worker().await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn exhausted_retries_are_dead_lettered_with_the_attempt_count_and_last_error() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::scripted(vec![], ResponseTemplate::new(503)).await;
    app.spawn_worker(|config| {
        config.add(webhook("down", &receiver.url("/down")));
    })
    .await;

    app.publish(&event()).await;
    let letter = app.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(letter.number(HEADER_ATTEMPT), Some(4), "max_attempts is 4");
    assert_eq!(
        letter.header(HEADER_ERROR).as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    app.stop_worker().await;
    assert_eq!(receiver.count(), 4);
}

#[tokio::test]
async fn retry_after_schedules_the_next_attempt_that_far_out_and_it_waits_that_long() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::scripted(
        vec![ResponseTemplate::new(429).insert_header("retry-after", "2")],
        ResponseTemplate::new(200),
    )
    .await;
    app.spawn_worker(|config| {
        config.add(webhook("limited", &receiver.url("/limited")));
    })
    .await;

    app.publish(&event()).await;
    // The backoff alone would be 300 ms: the receiver's 2 s wins, exactly.
    let retry = app.wait_for_scheduled_retry(2).await;
    assert_eq!(
        retry,
        ScheduledRetry {
            integration: "limited".into(),
            attempt: 2,
            delay: Duration::from_secs(2),
            sealed: true,
        }
    );
    let attempts = receiver.wait_for(2).await;
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");

    app.stop_worker().await;
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another_integrations_retry() {
    let mut app = TestApp::new().await;
    // Slow answers long after the test is over: anything that waits for it never finishes.
    let slow = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(600)),
    )
    .await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    app.spawn_worker(|config| {
        config.add(webhook("slow", &slow.url("/slow")).with("timeout", "600s"));
        config.add(webhook("flaky", &flaky.url("/flaky")));
        config.worker.shutdown_grace = HumanDuration::millis(200);
    })
    .await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    flaky.wait_for(2).await;
    // Flaky's retry is recorded as delivered while slow's first attempt is still in flight.
    wait_until(
        "flaky's retry is recorded as delivered",
        Duration::from_secs(30),
        || async {
            app.delivery_states(&run).get("flaky").map(String::as_str) == Some("delivered")
        },
    )
    .await;
    assert_eq!(app.delivery_states(&run)["slow"], "in_flight");

    app.stop_worker().await;
    assert_eq!((slow.count(), flaky.count()), (1, 2));
}
