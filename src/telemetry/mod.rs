//! Telemetry: logging setup (JSON lines when stdout is not a terminal, human-readable on one;
//! `RUST_LOG`) and, in [`metrics`], every Prometheus metric.

pub mod metrics;
mod relevel;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format;
use tracing_subscriber::fmt::format::FmtSpan;

pub use relevel::Relevel;

/// Installs the global subscriber. Log field names used across the crate: `run_id`,
/// `message_id`, `project`, `integration`, `attempt`, `outcome`, `reason`, `error`.
/// Third-party ERRORs the worker recovers from are written at WARN ([`Relevel`]).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stdout);
    if std::io::stdout().is_terminal() {
        builder.event_format(Relevel::new(format::format())).init();
    } else {
        let json = format::format()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true);
        builder.json().event_format(Relevel::new(json)).init();
    }
}
