//! The lines equal tracing-subscriber's own JSON lines, field for field.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::field;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{self, FmtSpan};
use tracing_subscriber::layer::SubscriberExt as _;

use super::{JsonFields, JsonLine};

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Each line written, parsed, without its timestamp (the one field that differs).
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
                let stamp = value.as_object_mut().unwrap().remove("timestamp");
                assert!(stamp.is_some_and(|t| t.as_str().is_some_and(|t| t.ends_with('Z'))));
                value
            })
            .collect()
    }
}

/// What the worker logs, in its shapes: spans with fields recorded later (once, and again),
/// nested spans, strings to escape, Display, Debug, numbers, booleans, an error, no span.
fn log_everything() {
    tracing::info!(plain = "no span", count = 3_u64, "outside any span");
    let event = tracing::info_span!(
        "event",
        otel.kind = "consumer",
        message_id = %"m-1",
        run_id = field::Empty,
        outcome = field::Empty,
    );
    let _event = event.enter();
    event.record("run_id", "run \"quoted\" \\ back\nslash\ttab\u{1}");
    let delivery = tracing::info_span!("delivery", integration = "hook", attempt = 2_u32);
    let _delivery = delivery.enter();
    let error = std::io::Error::other("connection reset: ü €");
    tracing::warn!(
        error = &error as &dyn std::error::Error,
        delay_ms = 1500_u64,
        negative = -4_i64,
        ratio = 0.25_f64,
        ok = false,
        shown = ?Some("debug"),
        r#type = "raw",
        "failed, will retry"
    );
    event.record("outcome", "retry");
    event.record("outcome", "delivered");
    tracing::info!(receipt = "HTTP 200", "delivered");
}

#[test]
fn lines_equal_tracing_subscribers_json_lines() {
    let theirs = Captured::default();
    let json = format::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true);
    let layer = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .json()
        .event_format(json)
        .with_writer(theirs.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log_everything);

    let ours = Captured::default();
    let layer = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .fmt_fields(JsonFields)
        .event_format(JsonLine)
        .with_writer(ours.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log_everything);

    let (theirs, ours) = (theirs.lines(), ours.lines());
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);
    // The field recorded twice has its last value, once.
    assert_eq!(ours[2]["spans"][0]["outcome"], "delivered");
}
