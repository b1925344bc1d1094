//! Telemetry: logging setup (JSON lines when stdout is not a terminal, human-readable on one;
//! `RUST_LOG`) and, in [`metrics`], every Prometheus metric.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::time::FormatTime;

/// Installs the global subscriber. Log field names used across the crate: `run_id`,
/// `message_id`, `project`, `integration`, `attempt`, `outcome`, `reason`, `error`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stdout);
    if std::io::stdout().is_terminal() {
        // For people reading along: time of day, level, message and fields on one short line.
        builder
            .compact()
            .with_target(false)
            .with_timer(TimeOfDay)
            .init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init();
    }
}

/// `HH:MM:SS.mmm` in UTC: the date and microseconds of the default timer make every terminal
/// line 20 characters longer for nothing a reader uses.
struct TimeOfDay;

impl FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%H:%M:%S%.3f"))
    }
}
