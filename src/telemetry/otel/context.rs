//! The spans of one event and of each delivery, the producer's trace they continue, and the
//! `traceparent` written onto outgoing posts for integrations that ask for it.
//!
//! Span fields (the fixed vocabulary): `run_id`, `integration`, `attempt`, `outcome`, `reason`;
//! the event span also has `message_id` and `project`.

use std::collections::HashMap;
use std::future::Future;

use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::TextMapPropagator;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::{Span, field, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::enabled;

/// Bodies are searched for `traceparent` up to this size (the default `max_message_bytes`);
/// a larger event continues its producer's trace only through message headers.
const MAX_SCANNED_BODY: usize = 1024 * 1024;

/// Prefixes under which CloudEvents bindings carry extension attributes as headers: AMQP
/// (`cloudEvents:` and the `cloudEvents_` form for brokers that refuse `:`), HTTP (`ce-`) and
/// Kafka (`ce_`).
const CLOUDEVENTS_PREFIXES: [&str; 4] = ["cloudevents:", "cloudevents_", "ce-", "ce_"];

/// Outcomes that mark a span as failed in the trace backend.
const FAILED: [&str; 3] = ["retry", "dead_lettered", "invalid"];

tokio::task_local! {
    /// Whether the delivery running in this task sends `traceparent` (its integration's option).
    static SEND_TRACEPARENT: bool;
}

/// The span of one consumed message. When tracing is on it continues the producer's trace:
/// from the event's `traceparent`/`tracestate` extension (a member of the JSON event, or a
/// `cloudEvents:`/`cloudEvents_`/`ce-`/`ce_` header), else from plain `traceparent` headers.
pub fn event_span(message_id: &str, headers: Option<&FieldTable>, body: &[u8]) -> Span {
    let span = info_span!(
        "event",
        otel.kind = "consumer",
        otel.status_code = field::Empty,
        message_id = %crate::echo::value(message_id),
        run_id = field::Empty,
        project = field::Empty,
        outcome = field::Empty,
    );
    if enabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            producer_context(propagator, headers, body)
        });
        if let Some(parent) = parent {
            // Fails only when the span is filtered out, and then there is nothing to join.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// The span of one delivery attempt, a child of the event span.
pub fn delivery_span(run_id: &str, integration: &str, attempt: u32) -> Span {
    info_span!(
        "delivery",
        otel.status_code = field::Empty,
        run_id,
        integration,
        attempt,
        outcome = field::Empty,
        reason = field::Empty,
    )
}

/// Records what became of the current event or delivery (the same labels as its metric) on
/// its span; a failure also marks the span as failed.
pub fn record_outcome(outcome: &str, reason: Option<&str>) {
    let span = Span::current();
    span.record("outcome", outcome);
    if let Some(reason) = reason {
        span.record("reason", reason);
    }
    if FAILED.contains(&outcome) {
        span.record("otel.status_code", "ERROR");
    }
}

/// Runs one delivery; when `send_traceparent` (the integration's option) is set and tracing is
/// on, its outgoing posts carry the delivery span's `traceparent` (see [`inject`]).
pub async fn outgoing<F: Future>(send_traceparent: bool, delivery: F) -> F::Output {
    SEND_TRACEPARENT.scope(send_traceparent, delivery).await
}

/// Writes the current span's `traceparent` (and `tracestate`) into `headers` when tracing is on
/// and the running delivery's integration sends it; otherwise leaves them alone.
pub fn inject(headers: &mut HeaderMap) {
    if !enabled() || !SEND_TRACEPARENT.try_with(|send| *send).unwrap_or(false) {
        return;
    }
    let cx = Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

/// The producer's context from the first source that holds a valid one: the event body, the
/// CloudEvents-prefixed headers, then plain headers. `tracestate` is taken from the same
/// source as `traceparent`, never mixed.
fn producer_context(
    propagator: &dyn TextMapPropagator,
    headers: Option<&FieldTable>,
    body: &[u8],
) -> Option<Context> {
    let (prefixed, plain) = headers.map(header_maps).unwrap_or_default();
    [body_members(body), prefixed, plain]
        .into_iter()
        .map(|carrier| propagator.extract(&Carrier(carrier)))
        .find(|cx| cx.span().span_context().is_valid())
}

/// Lower-cased keys; the extractor looks keys up in lower case.
struct Carrier(HashMap<String, String>);

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// String members of a structured-mode event (`traceparent`, `tracestate`, `baggage`).
fn body_members(body: &[u8]) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Members {
        traceparent: Option<serde_json::Value>,
        tracestate: Option<serde_json::Value>,
        baggage: Option<serde_json::Value>,
    }
    if body.len() > MAX_SCANNED_BODY {
        return HashMap::new();
    }
    let Ok(members) = serde_json::from_slice::<Members>(body) else {
        return HashMap::new();
    };
    [
        ("traceparent", members.traceparent),
        ("tracestate", members.tracestate),
        ("baggage", members.baggage),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_owned(), value?.as_str()?.to_owned())))
    .collect()
}

/// The message's string headers, split into CloudEvents extension headers (prefix removed) and
/// the rest, all keys lower-cased.
fn header_maps(headers: &FieldTable) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut prefixed = HashMap::new();
    let mut plain = HashMap::new();
    for (key, value) in headers.inner() {
        let value = match value {
            AMQPValue::LongString(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            AMQPValue::ShortString(value) => value.to_string(),
            _ => continue,
        };
        let key = key.as_str().to_ascii_lowercase();
        match CLOUDEVENTS_PREFIXES
            .iter()
            .find_map(|prefix| key.strip_prefix(prefix))
        {
            Some(name) => prefixed.insert(name.to_owned(), value),
            None => plain.insert(key, value),
        };
    }
    (prefixed, plain)
}

#[cfg(test)]
mod tests {
    use lapin::types::LongString;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    const BODY_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const HEADER_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, value) in pairs {
            table.insert(
                (*key).into(),
                AMQPValue::LongString(LongString::from(*value)),
            );
        }
        table
    }

    fn parent_of(headers: Option<&FieldTable>, body: &[u8]) -> Option<(TraceId, SpanId, String)> {
        producer_context(&TraceContextPropagator::new(), headers, body).map(|cx| {
            let span = cx.span();
            let context = span.span_context();
            (
                context.trace_id(),
                context.span_id(),
                context.trace_state().header(),
            )
        })
    }

    #[test]
    fn the_event_extension_in_the_body_is_read_first() {
        let body = format!(
            r#"{{"specversion":"1.0","traceparent":"{BODY_PARENT}","tracestate":"vendor=1"}}"#
        );
        let amqp = headers(&[("traceparent", HEADER_PARENT), ("tracestate", "other=2")]);
        let (trace, span, state) = parent_of(Some(&amqp), body.as_bytes()).unwrap();
        assert_eq!(trace.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span.to_string(), "b7ad6b7169203331");
        assert_eq!(state, "vendor=1", "tracestate comes from the same source");
    }

    #[test]
    fn cloudevents_binary_headers_are_read_with_any_prefix_and_case() {
        for key in [
            "cloudEvents:traceparent",
            "cloudEvents_traceparent",
            "ce-traceparent",
            "CE_Traceparent",
        ] {
            let amqp = headers(&[(key, HEADER_PARENT), ("traceparent", BODY_PARENT)]);
            let (trace, ..) = parent_of(Some(&amqp), b"{}").unwrap_or_else(|| panic!("{key}"));
            assert_eq!(
                trace.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{key}"
            );
        }
    }

    #[test]
    fn plain_headers_are_the_last_resort_and_bad_values_are_skipped() {
        let amqp = headers(&[("TraceParent", HEADER_PARENT)]);
        let bad_body = br#"{"traceparent":"00-not-a-trace-01"}"#;
        let (trace, ..) = parent_of(Some(&amqp), bad_body).unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // No valid context anywhere: no parent, and nothing fails.
        assert_eq!(parent_of(None, b"not json"), None);
        assert_eq!(parent_of(None, br#"{"traceparent":42}"#), None);
        let zero = headers(&[(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )]);
        assert_eq!(parent_of(Some(&zero), b"{}"), None);
    }
}
