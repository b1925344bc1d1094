//! OpenTelemetry tracing, off unless an OTLP endpoint is configured: reads the standard
//! `OTEL_*` variables, exports spans over OTLP/HTTP (protobuf), and in [`context`] builds the
//! per-event and per-delivery spans and carries `traceparent` in and out.

mod context;
mod settings;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

pub use context::{delivery_span, event_span, inject, outgoing, record_outcome};
pub use settings::{Settings, TracingError};

/// Whether spans are exported; the per-event work (reading `traceparent`) is skipped when not.
static ENABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "run-notifier";

/// Trace export while it runs; dropping it flushes the spans not yet sent and stops the export.
/// Drop it outside the async runtime: the exporter's HTTP client blocks.
#[derive(Debug)]
pub struct Export {
    provider: SdkTracerProvider,
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            // Logging is still up: the subscriber outlives this guard.
            tracing::warn!(error = %err, "cannot flush the last spans to the OTLP endpoint");
        }
        ENABLED.store(false, Ordering::Relaxed);
    }
}

/// Sets up trace export from the process environment: `Ok(None)` when tracing is off (no
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or switched off by
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`), an error naming the variable when
/// one is set to something this worker cannot do.
pub fn from_env() -> Result<Option<Export>, TracingError> {
    let Some(settings) = Settings::from_lookup(|name| std::env::var(name).ok())? else {
        return Ok(None);
    };
    // The exporter reads the endpoint, headers, timeout and compression variables itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|err| TracingError::Build(err.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(settings.service_name.as_deref()))
        .build();
    opentelemetry::global::set_text_map_propagator(settings.propagator());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Export { provider }))
}

impl Export {
    /// The layer that turns this crate's spans into OpenTelemetry spans. It has its own filter
    /// (this crate's spans and events at INFO and above), so `RUST_LOG=warn` quiets the logs
    /// without losing the traces.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let tracer = self.provider.tracer(DEFAULT_SERVICE_NAME);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target("run_notifier", Level::INFO))
    }
}

/// `service.name` from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else ours (the SDK's
/// own default would be `unknown_service`); plus `service.version` and the SDK's attributes.
fn resource(service_name: Option<&str>) -> Resource {
    let builder = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(DEFAULT_SERVICE_NAME)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_detector(Box::new(EnvResourceDetector::new()));
    match service_name {
        Some(name) => builder.with_service_name(name.to_owned()),
        None => builder,
    }
    .build()
}
