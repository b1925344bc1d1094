//! Third-party ERROR lines about conditions the worker recovers from, written at WARN.
//!
//! ERROR in our output means an operator must act. lapin logs two ERRORs when the broker
//! closes the connection, which the worker re-opens within a second; octocrab logs one for
//! every 5xx or transport failure, which the worker retries (and, if it gives up, logs its own
//! ERROR). Those lines keep their text and fields, one level down; every other event is
//! written as it is.

use std::fmt::{self, Write as _};

use tracing::field::{Field, FieldSet, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// ERROR events written at WARN: the emitting target and the start of the message.
const RECOVERED: [(&str, &str); 4] = [
    // The broker closed the connection (a restart, a failover, an operator's close).
    ("lapin::channel", "Connection closed"),
    ("lapin::channels", "Connection error"),
    // A 5xx or a transport failure: the worker retries it.
    ("octocrab", "failed with status"),
    ("octocrab", "failed with error"),
];

/// The callsite of the rewritten events; they are only formatted, never dispatched.
struct Demoted;

impl Callsite for Demoted {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &DEMOTED
    }
}

static CALLSITE: Demoted = Demoted;
static DEMOTED: Metadata<'static> = Metadata::new(
    "recovered",
    "run_notifier::telemetry",
    Level::WARN,
    None,
    None,
    None,
    FieldSet::new(&["message", "origin", "detail"], Identifier(&CALLSITE)),
    Kind::EVENT,
);

/// Wraps an event formatter; see the module documentation.
pub struct Relevel<F> {
    inner: F,
}

impl<F> Relevel<F> {
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for Relevel<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        if *metadata.level() != Level::ERROR
            || !RECOVERED.iter().any(|(t, _)| *t == metadata.target())
        {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let recovered = RECOVERED
            .iter()
            .any(|(t, m)| *t == metadata.target() && fields.message.starts_with(m));
        if !recovered {
            return self.inner.format_event(ctx, writer, event);
        }
        let set = DEMOTED.fields();
        let (Some(message), Some(origin), Some(detail)) = (
            set.field("message"),
            set.field("origin"),
            set.field("detail"),
        ) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let text = fields.message.as_str();
        let target = metadata.target();
        let rest = fields.rest.as_str();
        let values = [
            (&message, Some(&text as &dyn tracing::Value)),
            (&origin, Some(&target as &dyn tracing::Value)),
            (
                &detail,
                (!rest.is_empty()).then_some(&rest as &dyn tracing::Value),
            ),
        ];
        let values = set.value_set(&values);
        self.inner
            .format_event(ctx, writer, &Event::new(&DEMOTED, &values))
    }
}

/// An event's message, and its other fields as `name=value` pairs.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pair(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pair(field, format!("{value:?}"));
        }
    }
}

impl Fields {
    fn pair(&mut self, field: &Field, value: impl fmt::Display) {
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let _ = write!(self.rest, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format;

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The JSON lines `emit` logs through the worker's formatter.
    fn logged(emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .json()
            .event_format(Relevel::new(
                format().json().flatten_event(true).with_span_list(true),
            ))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn recovered_third_party_errors_are_written_at_warn_with_their_detail() {
        let lines = logged(|| {
            tracing::error!(target: "lapin::channels", error = %"CONNECTION_FORCED", "Connection error");
            tracing::error!(target: "lapin::channel", channel = 0, "Connection closed");
            tracing::error!(target: "octocrab", "failed with status {}", 502);
        });
        assert_eq!(lines.len(), 3);
        for line in &lines {
            assert_eq!(line["level"], "WARN", "{line}");
        }
        assert_eq!(lines[0]["message"], "Connection error");
        assert_eq!(lines[0]["origin"], "lapin::channels");
        assert_eq!(lines[0]["detail"], "error=CONNECTION_FORCED");
        assert_eq!(lines[1]["detail"], "channel=0");
        assert_eq!(lines[2]["message"], "failed with status 502");
        assert!(lines[2].get("detail").is_none());
    }

    #[test]
    fn other_errors_stay_errors() {
        let lines = logged(|| {
            tracing::error!(target: "lapin::channel", "Got a bad acknowledgement from server");
            tracing::error!(target: "octocrab::other", "failed with status 502");
            tracing::error!("delivery failed for good: dead-lettered");
            tracing::warn!(target: "lapin::channels", "Connection error");
        });
        let levels: Vec<_> = lines.iter().map(|l| l["level"].clone()).collect();
        assert_eq!(levels, ["ERROR", "ERROR", "ERROR", "WARN"]);
        assert_eq!(lines[0]["target"], "lapin::channel");
    }
}
