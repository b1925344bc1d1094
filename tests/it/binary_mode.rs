//! CloudEvents binary content mode on the real broker: events with their attributes in headers,
//! as the official SDKs write them, are delivered (retries included); a malformed one is
//! dead-lettered with a reason that names the header.

use crate::support::{Receiver, TestApp, unique, webhook};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use run_notifier::protocol::{HEADER_DEAD_KIND, HEADER_ERROR};
use serde_json::Value;
use wiremock::ResponseTemplate;

/// The example event as the Python SDK 2 writes it in binary mode (`cloudEvents_` keys, `time`
/// as integer milliseconds, `ce-` string headers for its RabbitMQ binding).
const SDK: &str = include_str!("../fixtures/cloudevents-sdk-binary.json");

fn long(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// A binary-mode message of the SDK fixture for `run_id`, with the SDK's headers as pika sends
/// them (str as a long string, int as a long long), under `prefix` instead of `cloudEvents_`;
/// `edit` changes headers before they are sent.
fn sdk_message(
    run_id: &str,
    prefix: &str,
    edit: impl FnOnce(&mut Vec<(String, AMQPValue)>),
) -> (Vec<u8>, BasicProperties) {
    let sdk: Value = serde_json::from_str(SDK).unwrap();
    let message = &sdk["amqp"];
    let mut headers: Vec<(String, AMQPValue)> = message["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, typed)| {
            let key = key.replacen("cloudEvents_", prefix, 1);
            let value = match typed["type"].as_str().unwrap() {
                "str" => long(typed["value"].as_str().unwrap()),
                "int" => AMQPValue::LongLongInt(typed["value"].as_i64().unwrap()),
                other => panic!("the fixture has a {other} header"),
            };
            (key, value)
        })
        .collect();
    for (key, value) in &mut headers {
        if *key == format!("{prefix}id") {
            *value = long(&unique("evt"));
        }
    }
    edit(&mut headers);
    let mut data: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
    data["runId"] = run_id.into();
    data["runUrl"] = format!("https://app.example.dev/run/{run_id}").into();
    let mut table = FieldTable::default();
    for (key, value) in headers {
        table.insert(ShortString::from(key), value);
    }
    let properties = BasicProperties::default()
        .with_content_type(message["content_type"].as_str().unwrap().into())
        .with_message_id(run_id.into())
        .with_headers(table);
    (data.to_string().into_bytes(), properties)
}

#[tokio::test]
async fn binary_mode_events_from_the_sdk_are_delivered_under_every_prefix() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    let mut runs = Vec::new();
    for prefix in ["cloudEvents_", "cloudEvents:", "ce-"] {
        let run = unique("run");
        let (body, properties) = sdk_message(&run, prefix, |_| {});
        app.publish_raw(&body, properties).await;
        runs.push(run);
    }
    // `cloudEvents:` with `time` as an AMQP timestamp (seconds), as RabbitMQ converts an AMQP
    // 1.0 timestamp for 0-9-1 consumers.
    let run = unique("run");
    let (body, properties) = sdk_message(&run, "cloudEvents:", |headers| {
        for (key, value) in headers.iter_mut() {
            if key == "cloudEvents:time" {
                *value = AMQPValue::Timestamp(1_795_256_102);
            }
        }
    });
    app.publish_raw(&body, properties).await;
    runs.push(run);

    let requests = receiver.wait_for(runs.len()).await;
    let mut delivered: Vec<_> = requests
        .iter()
        .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    runs.sort();
    assert_eq!(delivered, runs);
    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_retried_binary_mode_event_keeps_its_headers_and_is_delivered() {
    let mut app = TestApp::new().await;
    let receiver =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    let run = unique("run");
    let (body, properties) = sdk_message(&run, "cloudEvents_", |_| {});
    app.publish_raw(&body, properties).await;

    let requests = receiver.wait_for(2).await;
    assert!(requests.iter().all(|r| r.json()["runId"] == run.as_str()));
    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn malformed_binary_mode_events_are_dead_lettered_with_the_header_named() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    let (no_id, no_id_props) = sdk_message(&unique("run"), "cloudEvents_", |headers| {
        headers.retain(|(key, _)| key != "cloudEvents_id");
    });
    let (old_version, old_version_props) = sdk_message(&unique("run"), "ce-", |headers| {
        for (key, value) in headers.iter_mut() {
            if key == "ce-specversion" {
                *value = long("0.3");
            }
        }
    });
    let (_, not_json_props) = sdk_message(&unique("run"), "cloudEvents:", |_| {});
    let (xml, xml_props) = sdk_message(&unique("run"), "cloudEvents_", |_| {});
    let xml_props = xml_props.with_content_type("application/xml".into());
    let cases: Vec<(Vec<u8>, BasicProperties, &str)> = vec![
        (
            no_id,
            no_id_props,
            "not a CloudEvent: binary-mode attribute `id` (header `cloudEvents_id`) is missing or empty",
        ),
        (
            old_version,
            old_version_props,
            "not a CloudEvent: binary-mode attribute `specversion` (header `ce-specversion`) is `0.3`, expected `1.0`",
        ),
        (
            b"<run id='1'/>".to_vec(),
            not_json_props,
            "binary-mode CloudEvent: the body (the event's `data`) is not JSON: expected value at line 1 column 1",
        ),
        (
            xml,
            xml_props,
            "binary-mode CloudEvent: the data content type is `application/xml`, but the `data` of a run event is JSON (application/json)",
        ),
        (
            b"hello".to_vec(),
            BasicProperties::default().with_content_type("text/plain".into()),
            "body is not JSON: expected value at line 1 column 1; expected a CloudEvent in structured mode",
        ),
    ];
    for (body, properties, _) in &cases {
        app.publish_raw(body, properties.clone()).await;
    }
    let good = unique("run");
    let (body, properties) = sdk_message(&good, "cloudEvents_", |_| {});
    app.publish_raw(&body, properties).await;

    assert_eq!(receiver.wait_for(1).await[0].json()["runId"], good.as_str());
    let letters = app.wait_for_dead_letters(cases.len()).await;
    for (body, _, reason) in &cases {
        let letter = letters
            .iter()
            .find(|l| &l.body == body)
            .unwrap_or_else(|| panic!("not dead-lettered: {reason}"));
        let error = letter.header(HEADER_ERROR).unwrap();
        assert!(
            error.starts_with(reason),
            "expected {reason}\n     got {error}"
        );
        assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("invalid"));
        // The producer's attributes travel with the dead letter, for a replay once fixed.
        if body.starts_with(b"{") {
            assert!(
                letter
                    .headers
                    .inner()
                    .keys()
                    .any(|k| k.as_str().to_ascii_lowercase().contains("source"))
            );
        }
    }
    app.stop_worker().await;
    assert_eq!(receiver.count(), 1);
}
