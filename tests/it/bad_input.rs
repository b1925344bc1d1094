//! Bad input is dead-lettered with its reason and acked; the worker keeps consuming.

use lapin::BasicProperties;
use run_notifier::protocol::{
    HEADER_DEAD_KIND, HEADER_ERROR, HEADER_ORIGINAL_EXCHANGE, HEADER_ORIGINAL_ROUTING_KEY,
};
use serde_json::json;

use crate::support::{Receiver, TestApp, event_for, unique, webhook};

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
