//! OpenTelemetry tracing end to end: the worker process exports to a local OTLP/HTTP receiver,
//! its event span continues the producer's trace (from the event or from message headers), each
//! delivery has its own span, and an integration that asks for it sends `traceparent`.

use std::collections::HashMap;

use crate::support::{Received, Receiver, TestApp, event_for, github_status, unique, webhook};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;
use serde_json::json;
use wiremock::ResponseTemplate;

/// A span as the collector decoded it; ids in lower-case hex.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i32,
    status: i32,
    attributes: HashMap<String, String>,
}

impl Exported {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn text(value: &Option<Any>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// Every span in the export requests, and every resource's `service.name`.
fn decode(requests: &[Received]) -> (Vec<Exported>, Vec<String>) {
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for request in requests {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.header("content-type"), "application/x-protobuf");
        let export = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("an OTLP protobuf export request");
        for resource_spans in export.resource_spans {
            let resource = attributes(&resource_spans.resource.unwrap_or_default().attributes);
            services.push(resource.get("service.name").cloned().unwrap_or_default());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Exported {
                    name: span.name.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    kind: span.kind,
                    status: span.status.map_or(0, |s| s.code),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    (spans, services)
}

fn one<'a>(spans: &'a [Exported], what: &str, test: impl Fn(&Exported) -> bool) -> &'a Exported {
    let found: Vec<&Exported> = spans.iter().filter(|s| test(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} in {spans:#?}");
    found[0]
}

fn for_run<'a>(requests: &'a [Received], run_id: &str) -> &'a Received {
    requests
        .iter()
        .find(|r| r.json()["runId"] == run_id)
        .unwrap_or_else(|| panic!("a request for {run_id}"))
}

const TRACE_A: &str = "0af7651916cd43dd8448eb211c80319c";
const PRODUCER_A: &str = "b7ad6b7169203331";
const TRACE_B: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_B: &str = "00f067aa0ba902b7";
/// Sent as a plain header next to the CloudEvents one: the event's own extension must win.
const TRANSPORT_TRACE: &str = "11111111111111111111111111111111";

#[tokio::test]
async fn event_and_delivery_spans_continue_the_producers_trace_and_receivers_can_join() {
    let app = TestApp::new().await;
    let collector = Receiver::ok().await;
    let traced = Receiver::ok().await;
    let plain = Receiver::ok().await;
    let broken = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    let mut worker = app
        .spawn_process_with_env(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.server.uri()),
                ("OTEL_SERVICE_NAME", "notifier-under-test"),
            ],
            |config| {
                config.add(webhook("traced", &traced.url("/hook")).with("send_traceparent", true));
                config.add(webhook("plain", &plain.url("/hook")));
                config.add(webhook("broken", &broken.url("/hook")));
            },
        )
        .await;

    // Structured mode: the distributed-tracing extension is a member of the event.
    let run_a = unique("run");
    let mut event_a = event_for(&run_a);
    event_a["traceparent"] = json!(format!("00-{TRACE_A}-{PRODUCER_A}-01"));
    event_a["tracestate"] = json!("producer=a");
    app.publish(&event_a).await;
    // The extension as an AMQP header (binary-mode style), next to a transport-level one.
    let run_b = unique("run");
    let event_b = event_for(&run_b);
    let mut headers = FieldTable::default();
    for (key, value) in [
        (
            "cloudEvents:traceparent",
            format!("00-{TRACE_B}-{PRODUCER_B}-01"),
        ),
        (
            "traceparent",
            format!("00-{TRANSPORT_TRACE}-{PRODUCER_B}-01"),
        ),
    ] {
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
    let properties = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_headers(headers);
    app.publish_raw(event_b.to_string().as_bytes(), properties)
        .await;

    let traced_requests = traced.wait_for(2).await;
    let plain_requests = plain.wait_for(2).await;
    app.wait_for_dead_letters(2).await;
    // The batch exporter's schedule (5 s) has not come yet: shutdown must send the spans.
    worker.stop().await;

    let (spans, services) = decode(&collector.received());
    assert!(!services.is_empty());
    assert!(
        services.iter().all(|s| s == "notifier-under-test"),
        "{services:?}"
    );

    for (trace, producer, run_id) in [(TRACE_A, PRODUCER_A, &run_a), (TRACE_B, PRODUCER_B, &run_b)]
    {
        let event = one(&spans, "event span", |s| {
            s.name == "event" && s.trace_id == trace
        });
        assert_eq!(
            event.parent_span_id, producer,
            "the producer's span is the parent"
        );
        assert_eq!(event.kind, SpanKind::Consumer as i32);
        assert_eq!(event.attribute("run_id"), run_id.as_str());
        // One integration gave up, which is what the event's outcome reports.
        assert_eq!(event.attribute("outcome"), "dead_lettered");
        assert_eq!(event.status, StatusCode::Error as i32);

        let delivery = |integration: &str| {
            one(&spans, "delivery span", |s| {
                s.name == "delivery"
                    && s.trace_id == trace
                    && s.attribute("integration") == integration
            })
        };
        for integration in ["traced", "plain", "broken"] {
            let span = delivery(integration);
            assert_eq!(span.parent_span_id, event.span_id, "{integration}");
            assert_eq!(span.attribute("run_id"), run_id.as_str());
            assert_eq!(span.attribute("attempt"), "1");
        }
        assert_eq!(delivery("traced").attribute("outcome"), "delivered");
        assert_eq!(delivery("traced").status, StatusCode::Unset as i32);
        assert_eq!(delivery("broken").attribute("outcome"), "dead_lettered");
        assert_eq!(delivery("broken").attribute("reason"), "permanent");
        assert_eq!(delivery("broken").status, StatusCode::Error as i32);

        // The receiver that asked for it can join: its parent is the delivery span.
        let request = for_run(&traced_requests, run_id);
        assert_eq!(
            request.header("traceparent"),
            format!("00-{trace}-{}-01", delivery("traced").span_id)
        );
        assert!(
            for_run(&plain_requests, run_id)
                .headers
                .get("traceparent")
                .is_none()
        );
    }
    assert_eq!(
        for_run(&traced_requests, &run_a).header("tracestate"),
        "producer=a"
    );
    assert!(spans.iter().all(|s| s.trace_id != TRANSPORT_TRACE));
}

#[tokio::test]
async fn without_tracing_no_traceparent_is_sent_even_when_asked_for() {
    let mut app = TestApp::new().await;
    let traced = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("traced", &traced.url("/hook")).with("send_traceparent", true));
    })
    .await;
    let mut event = event_for(&unique("run"));
    event["traceparent"] = json!(format!("00-{TRACE_A}-{PRODUCER_A}-01"));
    app.publish(&event).await;
    let request = traced.wait_for(1).await.remove(0);
    assert!(request.headers.get("traceparent").is_none());
    assert!(request.headers.get("tracestate").is_none());
    app.stop_worker().await;
}

/// `run-notifier run` with these variables: its exit status and standard error.
fn run_with(env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["run", "--config", "config/run-notifier.yaml"])
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tracing_variables_the_worker_cannot_honour_stop_the_start_with_their_name() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    let cases = [
        (
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            "error: OTEL_EXPORTER_OTLP_PROTOCOL=`grpc` is not supported: traces are exported over OTLP/HTTP with protobuf (`http/protobuf`, a collector's port 4318)\n",
        ),
        (
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            "error: OTEL_TRACES_SAMPLER=`sometimes` is not known: use always_on, always_off, traceidratio, parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio\n",
        ),
        (
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            "error: OTEL_TRACES_EXPORTER=`zipkin` is not supported: use `otlp` (the default) or `none` to switch tracing off\n",
        ),
    ];
    for (variable, expected) in cases {
        let (success, stderr) = run_with(&[endpoint, variable]);
        assert!(!success);
        assert_eq!(stderr, expected);
    }
    let (success, stderr) = run_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bad host:4318")]);
    assert!(!success);
    assert!(
        stderr.starts_with("error: cannot set up the OTLP trace exporter: "),
        "{stderr}"
    );
}

#[test]
fn send_traceparent_on_a_github_integration_is_a_config_error() {
    let err = crate::support::config::parse_spec(
        &github_status("gh", "https://api.github.com").with("send_traceparent", true),
    )
    .unwrap_err();
    assert!(
        err.contains("`send_traceparent` is not available for GitHub integrations: GitHub's API does not join traces"),
        "{err}"
    );
}
