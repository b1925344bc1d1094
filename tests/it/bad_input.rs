//! Bad input is dead-lettered with its reason and acked; the worker keeps consuming, and its
//! connection stays up whatever size the producer's text is.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use run_notifier::protocol::{
    HEADER_DEAD_KIND, HEADER_ERROR, HEADER_HEADERS_DROPPED, HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_ROUTING_KEY,
};
use serde_json::json;

use crate::support::{Receiver, TestApp, event_for, unique, webhook};

/// The longest log line a bounded reason may make (its JSON line with the span's fields).
const SHORT_LINE: usize = 2_048;

#[tokio::test]
async fn each_bad_input_is_dead_lettered_with_its_reason_and_a_good_event_still_gets_through() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
        config.broker.max_message_bytes = 4096;
    })
    .await;

    let mut other_type = event_for("r1");
    other_type["type"] = json!("run.paused");
    let mut broken_rule = event_for("r2");
    broken_rule["data"]["results"]["failures"] = json!(-2);
    let mut oversized = event_for("r3");
    oversized["data"]["commit"]["message"] = json!("x".repeat(5_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not-json",
            b"{ this is not json".to_vec(),
            "body is not JSON",
        ),
        (
            "not-a-cloudevent",
            br#"{"hello":"world"}"#.to_vec(),
            "not a CloudEvent: `specversion` is missing",
        ),
        (
            "other-type",
            other_type.to_string().into_bytes(),
            "CloudEvent type is `run.paused`",
        ),
        (
            "broken-rule",
            broken_rule.to_string().into_bytes(),
            "field `data.results.failures`",
        ),
        (
            "oversized",
            oversized.to_string().into_bytes(),
            "over the limit of 4096 bytes",
        ),
    ];
    for (id, body, _) in &cases {
        let properties = BasicProperties::default().with_message_id((*id).into());
        app.publish_raw(body, properties).await;
    }
    let good_run = unique("run");
    app.publish(&event_for(&good_run)).await;

    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(request.json()["runId"], good_run);
    let letters = app.wait_for_dead_letters(cases.len()).await;
    for (id, body, reason) in &cases {
        let letter = letters
            .iter()
            .find(|l| &l.body == body)
            .unwrap_or_else(|| panic!("{id} was not dead-lettered"));
        let error = letter.header(HEADER_ERROR).unwrap();
        assert!(error.contains(reason), "{id}: {error}");
        assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("invalid"));
        assert_eq!(
            letter.header(HEADER_ORIGINAL_EXCHANGE),
            Some(app.names.exchange.clone())
        );
        assert_eq!(
            letter.header(HEADER_ORIGINAL_ROUTING_KEY).as_deref(),
            Some("run.canceled")
        );
    }

    app.stop_worker().await;
    // Acked, not requeued: nothing is left to loop on, and nothing else was sent.
    assert!(app.take_dead_letters().await.is_empty());
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn a_600_kb_type_or_specversion_is_dead_lettered_at_once_and_the_connection_stays_up() {
    let app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &receiver.url("/hook")));
        })
        .await;

    let huge = "x".repeat(600_000);
    let mut huge_type = event_for(&unique("run"));
    huge_type["type"] = json!(huge);
    let mut huge_version = event_for(&unique("run"));
    huge_version["specversion"] = json!(huge);
    app.publish(&huge_type).await;
    app.publish(&huge_version).await;

    // Before, the reason (the whole value) went into a header over the broker's frame limit:
    // the broker closed the connection, and the message came back forever.
    let letters = app.wait_for_dead_letters(2).await;
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|letter| {
            letter
                .header(HEADER_ERROR)
                .expect("dead-lettered by the worker, with its reason")
        })
        .collect();
    reasons.sort();
    let quoted = format!("`{}… (600000 bytes)`", "x".repeat(256));
    assert_eq!(
        reasons,
        [
            format!(
                "CloudEvent type is {quoted}, but this worker only handles `run.started`, `run.finished`, `run.timed_out`, `run.canceled`"
            ),
            format!("not a CloudEvent: `specversion` is {quoted}, expected `1.0`"),
        ]
    );
    for letter in &letters {
        // First attempt: the broker counts a redelivery in this header, carried onto the letter.
        assert_eq!(letter.number("x-delivery-count").unwrap_or(0), 0);
        // The producer's bytes are kept whole for inspection and replay.
        assert!(
            [&huge_type, &huge_version]
                .iter()
                .any(|sent| sent.to_string().into_bytes() == letter.body)
        );
    }

    // A good event after them is delivered on the same connection.
    let good_run = unique("run");
    app.publish(&event_for(&good_run)).await;
    assert_eq!(receiver.wait_for(1).await[0].json()["runId"], good_run);
    worker.stop().await;

    let logs = worker.logs();
    let lines: Vec<&str> = logs.lines().collect();
    let invalid: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains("invalid event: dead-lettered"))
        .collect();
    assert_eq!(invalid.len(), 2, "each is read once: {invalid:#?}");
    for line in &lines {
        assert!(
            line.len() < SHORT_LINE,
            "a log line of {} bytes",
            line.len()
        );
    }
    for sign_of_a_lost_connection in [
        "reconnecting",
        "channel was replaced",
        "cannot publish the dead letter",
    ] {
        assert!(
            !logs.contains(sign_of_a_lost_connection),
            "{sign_of_a_lost_connection}: {}",
            &logs[..logs.len().min(10_000)]
        );
    }
}

#[tokio::test]
async fn a_message_with_headers_too_large_to_carry_on_is_dead_lettered_without_them() {
    let app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &receiver.url("/hook")));
        })
        .await;

    // Under the broker's frame limit, so the producer can publish it; over what the worker can
    // copy onto a dead letter beside its own headers. Before, the worker said it dead-lettered
    // the message, but the broker never took the letter.
    let event = event_for(&unique("run"));
    let mut headers = FieldTable::default();
    headers.insert(
        "x-producer-trace".into(),
        AMQPValue::LongString("t".repeat(100_000).into()),
    );
    let properties = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_headers(headers);
    app.publish_raw(event.to_string().as_bytes(), properties)
        .await;

    let letters = app.wait_for_dead_letters(1).await;
    let letter = &letters[0];
    assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("invalid"));
    let reason = letter.header(HEADER_ERROR).unwrap();
    assert!(
        reason.starts_with("the message's headers are 100") && reason.contains("65536 bytes"),
        "{reason}"
    );
    assert!(letter.header("x-producer-trace").is_none());
    assert!(letter.number(HEADER_HEADERS_DROPPED).unwrap() > 100_000);
    // The body is kept whole for inspection and replay.
    assert_eq!(letter.body, event.to_string().into_bytes());

    // A good event after it is delivered on the same connection.
    let good_run = unique("run");
    app.publish(&event_for(&good_run)).await;
    assert_eq!(receiver.wait_for(1).await[0].json()["runId"], good_run);
    worker.stop().await;
    assert!(!worker.logs().contains("reconnecting"));
}
