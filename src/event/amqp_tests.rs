//! Both content modes of the AMQP binding, real SDK output, and what each malformed message
//! says.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use serde_json::{Value, json};

use super::super::RunEvent;

const EXAMPLE: &str = include_str!("../../config/example-event.json");
/// What the official Python SDK writes in binary mode (see the script next to it).
const SDK: &str = include_str!("../../tests/fixtures/cloudevents-sdk-binary.json");

/// Headers of a test message, in order.
type Headers = Vec<(String, AMQPValue)>;

fn long(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn properties(content_type: Option<&str>, headers: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut table = FieldTable::default();
    for (key, value) in headers {
        table.insert(ShortString::from(*key), value.clone());
    }
    let properties = BasicProperties::default().with_headers(table);
    match content_type {
        Some(content_type) => properties.with_content_type(content_type.into()),
        None => properties,
    }
}

/// The example's `data` as a binary-mode body.
fn data() -> Vec<u8> {
    let example: Value = serde_json::from_str(EXAMPLE).unwrap();
    example["data"].to_string().into_bytes()
}

/// Attributes of the example event under `prefix`, `time` as given.
fn attributes(prefix: &str, time: AMQPValue) -> Headers {
    vec![
        (format!("{prefix}specversion"), long("1.0")),
        (format!("{prefix}id"), long("evt_binary_1")),
        (format!("{prefix}source"), long("dashboard/projects/Xm2k9")),
        (format!("{prefix}type"), long("run.canceled")),
        (format!("{prefix}time"), time),
    ]
}

fn binary(headers: &[(String, AMQPValue)], body: &[u8]) -> Result<RunEvent, String> {
    let headers: Vec<_> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    RunEvent::from_amqp(body, &properties(Some("application/json"), &headers))
        .map_err(|err| err.to_string())
}

fn structured_example() -> RunEvent {
    RunEvent::parse(EXAMPLE.as_bytes()).unwrap()
}

#[test]
fn the_python_sdk_amqp_binary_message_parses_into_the_structured_example() {
    let sdk: Value = serde_json::from_str(SDK).unwrap();
    let message = &sdk["amqp"];
    let headers: Vec<_> = message["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, typed)| {
            // As pika sends them: str as a long string, an int over 32 bits as a long long.
            let value = match typed["type"].as_str().unwrap() {
                "str" => long(typed["value"].as_str().unwrap()),
                "int" => AMQPValue::LongLongInt(typed["value"].as_i64().unwrap()),
                other => panic!("the fixture has a {other} header"),
            };
            (key.as_str(), value)
        })
        .collect();
    assert!(
        headers
            .iter()
            .any(|(k, v)| *k == "cloudEvents_time" && matches!(v, AMQPValue::LongLongInt(_)))
    );
    let props = properties(message["content_type"].as_str(), &headers);
    let event = RunEvent::from_amqp(message["body"].as_str().unwrap().as_bytes(), &props).unwrap();
    assert_eq!(event.event_id, "evt_binary_1");
    assert_eq!(event.source, "dashboard/projects/Xm2k9");
    assert_eq!(event.data, structured_example().data);
}

#[test]
fn the_python_sdk_rabbitmq_binary_message_with_ce_headers_parses() {
    let sdk: Value = serde_json::from_str(SDK).unwrap();
    let message = &sdk["rabbitmq"];
    let headers: Vec<_> = message["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.as_str(), long(value.as_str().unwrap())))
        .collect();
    let props = properties(message["content_type"].as_str(), &headers);
    let event = RunEvent::from_amqp(message["body"].as_str().unwrap().as_bytes(), &props).unwrap();
    assert_eq!(event.event_id, "evt_binary_1");
    assert_eq!(event.data, structured_example().data);
}

#[test]
fn every_prefix_and_every_form_of_time_is_accepted() {
    for prefix in ["cloudEvents:", "cloudEvents_", "ce-", "CE-"] {
        for time in [
            AMQPValue::Timestamp(1_795_256_102),
            AMQPValue::LongLongInt(1_795_256_102_000),
            long("2026-11-21T10:15:02Z"),
            AMQPValue::ShortString("2026-11-21T10:15:02Z".into()),
        ] {
            let event = binary(&attributes(prefix, time.clone()), &data())
                .unwrap_or_else(|err| panic!("{prefix} with {time:?}: {err}"));
            assert_eq!(event.data, structured_example().data);
        }
    }
}

#[test]
fn the_data_content_type_may_be_missing_carry_parameters_or_come_as_a_header() {
    let headers = attributes("cloudEvents:", AMQPValue::Timestamp(1));
    let borrowed: Vec<_> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    for content_type in [
        None,
        Some("application/json; charset=utf-8"),
        Some("text/json"),
    ] {
        RunEvent::from_amqp(&data(), &properties(content_type, &borrowed)).unwrap();
    }
    let mut with_header = borrowed.clone();
    with_header.push(("cloudEvents:datacontenttype", long("text/plain")));
    let err = RunEvent::from_amqp(&data(), &properties(None, &with_header)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "binary-mode CloudEvent: the data content type is `text/plain`, but the `data` of a run event is JSON (application/json)"
    );
}

#[test]
fn a_cloudevents_content_type_is_structured_mode_whatever_the_headers_say() {
    let headers = [("cloudEvents_specversion", long("0.3"))];
    let props = properties(
        Some("application/cloudevents+json; charset=UTF-8"),
        &headers,
    );
    let event = RunEvent::from_amqp(EXAMPLE.as_bytes(), &props).unwrap();
    assert_eq!(event, structured_example());
}

#[test]
fn plain_json_without_headers_is_structured_mode_as_before() {
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let event =
            RunEvent::from_amqp(EXAMPLE.as_bytes(), &properties(content_type, &[])).unwrap();
        assert_eq!(event, structured_example());
    }
}

/// Each malformed binary-mode message, and the sentence that goes into the dead letter.
#[test]
fn each_malformed_binary_message_says_what_is_wrong() {
    let good = || attributes("cloudEvents_", AMQPValue::LongLongInt(1_795_256_102_000));
    let without = |name: &str| {
        let mut headers = good();
        headers.retain(|(k, _)| k != &format!("cloudEvents_{name}"));
        headers
    };
    let with = |name: &str, value: AMQPValue| {
        let mut headers = without(name);
        headers.push((format!("cloudEvents_{name}"), value));
        headers
    };
    let mut conflicting = good();
    conflicting.push(("ce-id".into(), long("evt_other")));
    let mut bad_run_id = serde_json::from_slice::<Value>(&data()).unwrap();
    bad_run_id["runId"] = json!("");
    let cases: Vec<(Headers, Vec<u8>, &str)> = vec![
        (
            without("id"),
            data(),
            "not a CloudEvent: binary-mode attribute `id` (header `cloudEvents_id`) is missing or empty",
        ),
        (
            with("source", long(" ")),
            data(),
            "not a CloudEvent: binary-mode attribute `source` (header `cloudEvents_source`) is missing or empty",
        ),
        (
            with("specversion", long("0.3")),
            data(),
            "not a CloudEvent: binary-mode attribute `specversion` (header `cloudEvents_specversion`) is `0.3`, expected `1.0`",
        ),
        (
            with("type", long("run.paused")),
            data(),
            "CloudEvent type is `run.paused`, but this worker only handles `run.started`, `run.finished`, `run.timed_out`, `run.canceled`",
        ),
        (
            with("type", long("run.finished")),
            data(),
            "field `data.cancellation`: only a `run.canceled` event has it, and this one is `run.finished`",
        ),
        (
            with("time", AMQPValue::Boolean(true)),
            data(),
            "binary-mode CloudEvent: header `cloudEvents_time` is a boolean, but the attribute `time` is a timestamp, an integer of milliseconds since 1970 or an RFC 3339 string",
        ),
        (
            with("time", long("2026-11-21")),
            data(),
            "not a CloudEvent: binary-mode attribute `time` (header `cloudEvents_time`) is `2026-11-21`, not an RFC 3339 time (premature end of input)",
        ),
        (
            with("id", AMQPValue::LongLongInt(7)),
            data(),
            "binary-mode CloudEvent: header `cloudEvents_id` is an integer, but the attribute `id` is a string",
        ),
        (
            conflicting,
            data(),
            "binary-mode CloudEvent: the attribute `id` is given twice with different values (headers `ce-id` and `cloudEvents_id`)",
        ),
        (
            good(),
            Vec::new(),
            "binary-mode CloudEvent: the body (the event's `data`) is empty",
        ),
        (
            good(),
            b"runId=1".to_vec(),
            "binary-mode CloudEvent: the body (the event's `data`) is not JSON: expected value at line 1 column 1",
        ),
        (
            good(),
            bad_run_id.to_string().into_bytes(),
            "field `data.runId`: must not be empty",
        ),
        // A header name or value quoted back has its control characters escaped.
        (
            vec![
                ("ce-specversion".into(), long("1.0")),
                ("ce-\u{1b}[2Jid".into(), AMQPValue::Boolean(true)),
                ("cloudEvents_\u{1b}[2Jid".into(), AMQPValue::Boolean(false)),
            ],
            data(),
            "binary-mode CloudEvent: the attribute `\\u{1b}[2jid` is given twice with different values (headers `ce-\\u{1b}[2Jid` and `cloudEvents_\\u{1b}[2Jid`)",
        ),
        (
            with("type", long("\u{1b}]0;owned\u{7}")),
            data(),
            "CloudEvent type is `\\u{1b}]0;owned\\u{7}`, but this worker only handles `run.started`, `run.finished`, `run.timed_out`, `run.canceled`",
        ),
    ];
    for (headers, body, expected) in cases {
        assert_eq!(binary(&headers, &body).unwrap_err(), expected);
    }
}

#[test]
fn unsupported_cloudevents_content_types_are_named() {
    for (content_type, expected) in [
        (
            "application/cloudevents-batch+json",
            "unsupported CloudEvents content: batched CloudEvents (application/cloudevents-batch+json); publish one event per message",
        ),
        (
            "application/cloudevents+avro",
            "unsupported CloudEvents content: structured mode in the format `application/cloudevents+avro`; only application/cloudevents+json is read",
        ),
    ] {
        let err = RunEvent::from_amqp(EXAMPLE.as_bytes(), &properties(Some(content_type), &[]))
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn a_message_in_neither_mode_says_what_was_expected() {
    let expected = "expected a CloudEvent in structured mode (the whole event as a JSON body, \
        content type application/cloudevents+json or application/json) or in binary mode \
        (`data` as a JSON body, attributes including `specversion` as `cloudEvents_*`, \
        `cloudEvents:*` or `ce-*` headers)";
    let neither = |body: &[u8], headers: &[(&str, AMQPValue)]| {
        RunEvent::from_amqp(body, &properties(Some("application/json"), headers))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        neither(&data(), &[]),
        format!("not a CloudEvent: `specversion` is missing or empty; {expected}")
    );
    assert_eq!(
        neither(b"hello", &[]),
        format!("body is not JSON: expected value at line 1 column 1; {expected}")
    );
    assert_eq!(
        neither(
            &data(),
            &[
                ("cloudEvents_id", long("e1")),
                ("cloudEvents_type", long("run.canceled"))
            ]
        ),
        format!(
            "not a CloudEvent: `specversion` is missing or empty (headers `cloudEvents_id`, `cloudEvents_type` look like binary mode, but there is no `specversion` header); {expected}"
        )
    );
}

#[test]
fn a_binary_started_event_takes_its_time_from_the_header() {
    let mut headers = attributes("cloudEvents_", AMQPValue::Timestamp(1_795_256_000));
    headers.retain(|(k, _)| k != "cloudEvents_type");
    headers.push(("cloudEvents_type".into(), long("run.started")));
    let mut body: Value = serde_json::from_slice(&data()).unwrap();
    let members = body.as_object_mut().unwrap();
    members.remove("cancellation");
    members.remove("results");
    let event = binary(&headers, body.to_string().as_bytes()).unwrap();
    assert_eq!(event.event_type(), crate::event::EventType::Started);
    assert_eq!(event.time.to_rfc3339(), "2026-11-21T10:13:20+00:00");

    headers.retain(|(k, _)| k != "cloudEvents_time");
    assert_eq!(
        binary(&headers, body.to_string().as_bytes()).unwrap_err(),
        "not a CloudEvent: binary-mode attribute `time` (header `cloudEvents_time`) is missing or empty; a `run.started` event must say when it happened, to be ordered among the run's other events"
    );
}
