//! Transient failures are retried through the broker per integration; permanent ones are
//! dead-lettered at once; `Retry-After` is honoured.

use crate::support as common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{InProcessWorker, Names, TestBroker, event_for, unique, webhook};
use run_notifier::protocol::{
    HEADER_ATTEMPT, HEADER_DEAD_KIND, HEADER_ERROR, HEADER_INTEGRATION, HEADER_RUN_ID,
};
use wiremock::ResponseTemplate;

#[tokio::test]
async fn a_failing_receiver_is_retried_alone_with_the_same_webhook_id_until_it_succeeds() {
    let names = Names::new();
    let flaky = Receiver::scripted(
        vec![ResponseTemplate::new(500), ResponseTemplate::new(500)],
        ResponseTemplate::new(200),
    )
    .await;
    let healthy = Receiver::ok().await;
    let integrations = format!(
        "{}{}",
        webhook("flaky", &flaky.url("/flaky")),
        webhook("healthy", &healthy.url("/healthy"))
    );
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&integrations)).await;

    broker.publish(&event_for(&unique("run"))).await;
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

    worker.stop().await;
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
    assert!(broker.take_dead_letters().await.is_empty());
    broker.cleanup().await;
}

#[tokio::test]
async fn a_permanent_4xx_is_dead_lettered_after_one_attempt_naming_the_integration() {
    let names = Names::new();
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(400).set_body_string("unknown field `runId`"),
    )
    .await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(
        &names,
        &names.config(&webhook("strict", &receiver.url("/strict"))),
    )
    .await;

    let run_id = unique("run");
    broker.publish(&event_for(&run_id)).await;
    let letter = broker.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(letter.header(HEADER_INTEGRATION).as_deref(), Some("strict"));
    assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("delivery"));
    assert_eq!(letter.number(HEADER_ATTEMPT), Some(1));
    assert_eq!(letter.header(HEADER_RUN_ID), Some(run_id));
    let error = letter.header(HEADER_ERROR).unwrap();
    assert_eq!(error, "HTTP 400 Bad Request: unknown field `runId`");
    worker.stop().await;
    assert_eq!(receiver.count(), 1);
    broker.cleanup().await;
}

#[tokio::test]
async fn exhausted_retries_are_dead_lettered_with_the_attempt_count_and_last_error() {
    let names = Names::new();
    let receiver = Receiver::scripted(vec![], ResponseTemplate::new(503)).await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(
        &names,
        &names.config(&webhook("down", &receiver.url("/down"))),
    )
    .await;

    broker.publish(&event_for(&unique("run"))).await;
    let letter = broker.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(letter.number(HEADER_ATTEMPT), Some(4), "max_attempts is 4");
    assert_eq!(
        letter.header(HEADER_ERROR).as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    worker.stop().await;
    assert_eq!(receiver.count(), 4);
    broker.cleanup().await;
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_next_attempt() {
    let names = Names::new();
    let receiver = Receiver::scripted(
        vec![ResponseTemplate::new(429).insert_header("retry-after", "2")],
        ResponseTemplate::new(200),
    )
    .await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(
        &names,
        &names.config(&webhook("limited", &receiver.url("/limited"))),
    )
    .await;

    broker.publish(&event_for(&unique("run"))).await;
    let attempts = receiver.wait_for(2).await;
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(5), "retried after {waited:?}");

    worker.stop().await;
    assert_eq!(receiver.count(), 2);
    broker.cleanup().await;
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another_integrations_retry() {
    let names = Names::new();
    let slow = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(4)),
    )
    .await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    let integrations = format!(
        "{}{}",
        webhook("slow", &slow.url("/slow")),
        webhook("flaky", &flaky.url("/flaky"))
    );
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&integrations)).await;

    broker.publish(&event_for(&unique("run"))).await;
    let attempts = flaky.wait_for(2).await;
    let first_slow = slow.received()[0].at;
    assert!(
        attempts[1].at - first_slow < Duration::from_secs(3),
        "flaky's retry waited for the slow receiver"
    );

    worker.stop().await;
    assert_eq!((slow.count(), flaky.count()), (1, 2));
    broker.cleanup().await;
}
