//! Telemetry: logging setup (JSON lines when stdout is not a terminal, human-readable on one;
//! `RUST_LOG`), in [`metrics`] every Prometheus metric, and in [`otel`] OpenTelemetry tracing
//! (off unless an OTLP endpoint is configured).

mod json;
pub mod metrics;
pub mod otel;
mod relevel;

use std::io::IsTerminal;

use tracing_subscriber::fmt::format;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use relevel::Relevel;

/// Installs the global subscriber: logs, plus trace export when the `OTEL_*` variables ask for
/// it. Keep the returned guard until the worker has stopped and drop it outside the async
/// runtime: dropping it sends the last spans. Log field names used across the crate: `run_id`,
/// `message_id`, `project`, `integration`, `attempt`, `outcome`, `reason`, `error`.
/// Third-party ERRORs the worker recovers from are written at WARN ([`Relevel`]).
pub fn init() -> Result<Option<otel::Export>, otel::TracingError> {
    let export = otel::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stdout);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if std::io::stdout().is_terminal() {
        // For people reading along: time of day, level, message and fields on one short line.
        let short = format::format()
            .compact()
            .with_target(false)
            .with_timer(TimeOfDay);
        logs.event_format(Relevel::new(short)).boxed()
    } else {
        logs.fmt_fields(json::JsonFields)
            .event_format(Relevel::new(json::JsonLine))
            .boxed()
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(export.as_ref().map(|export| export.layer()))
        .init();
    Ok(export)
}

/// `HH:MM:SS.mmm` in UTC: the date and microseconds of the default timer make every terminal
/// line 20 characters longer for nothing a reader uses.
struct TimeOfDay;

impl FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%H:%M:%S%.3f"))
    }
}
