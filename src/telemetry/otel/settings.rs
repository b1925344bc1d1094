//! Which `OTEL_*` variables switch tracing on, and the ones this worker checks itself because the
//! SDK would ignore a value it cannot honour (a gRPC protocol, another exporter, a typo in the
//! sampler) and leave the operator without traces and without a word.

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::text_map_propagator::TextMapPropagator;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

/// A tracing variable set to something this worker cannot do; the sentence names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TracingError {
    #[error(
        "{variable}=`{value}` is not supported: traces are exported over OTLP/HTTP with protobuf (`http/protobuf`, a collector's port 4318)"
    )]
    Protocol {
        variable: &'static str,
        value: String,
    },
    #[error(
        "OTEL_TRACES_EXPORTER=`{0}` is not supported: use `otlp` (the default) or `none` to switch tracing off"
    )]
    Exporter(String),
    #[error(
        "OTEL_PROPAGATORS: `{0}` is not supported: use `tracecontext`, `baggage` or `none`, separated by commas"
    )]
    Propagator(String),
    #[error(
        "OTEL_TRACES_SAMPLER=`{0}` is not known: use always_on, always_off, traceidratio, parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio"
    )]
    Sampler(String),
    #[error("OTEL_TRACES_SAMPLER_ARG=`{0}` must be a ratio between 0 and 1 (such as 0.25)")]
    SamplerArg(String),
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Build(String),
}

/// What the worker decides from the environment; the rest is read by the SDK and the exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `OTEL_SERVICE_NAME`, when set.
    pub service_name: Option<String>,
    /// From `OTEL_PROPAGATORS`; `tracecontext` when unset.
    pub propagators: Vec<Propagator>,
}

/// A context format read from incoming events and written onto outgoing posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` and `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

impl Settings {
    /// `Ok(None)` when tracing is off. `lookup` reads a variable (the process environment, or a
    /// map in tests); empty values count as unset, as the OpenTelemetry spec asks.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, TracingError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let endpoint =
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or(get("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if endpoint.is_none()
            || get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        match get("OTEL_TRACES_EXPORTER")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(_) => {
                return Err(TracingError::Exporter(
                    get("OTEL_TRACES_EXPORTER").unwrap_or_default(),
                ));
            }
        }
        // The signal-specific variable wins, as it does for the exporter.
        for variable in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = get(variable) {
                if !value.eq_ignore_ascii_case("http/protobuf") {
                    return Err(TracingError::Protocol { variable, value });
                }
                break;
            }
        }
        check_sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;
        let propagators = match get("OTEL_PROPAGATORS") {
            None => vec![Propagator::TraceContext],
            Some(list) => parse_propagators(&list)?,
        };
        Ok(Some(Settings {
            service_name: get("OTEL_SERVICE_NAME"),
            propagators,
        }))
    }

    /// The propagator for [`opentelemetry::global::set_text_map_propagator`].
    pub fn propagator(&self) -> TextMapCompositePropagator {
        let parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = self
            .propagators
            .iter()
            .map(|p| -> Box<dyn TextMapPropagator + Send + Sync> {
                match p {
                    Propagator::TraceContext => Box::new(TraceContextPropagator::new()),
                    Propagator::Baggage => Box::new(BaggagePropagator::new()),
                }
            })
            .collect();
        TextMapCompositePropagator::new(parts)
    }
}

fn parse_propagators(list: &str) -> Result<Vec<Propagator>, TracingError> {
    let mut propagators = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let propagator = match name.to_ascii_lowercase().as_str() {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            "none" => continue,
            _ => return Err(TracingError::Propagator(name.to_owned())),
        };
        if !propagators.contains(&propagator) {
            propagators.push(propagator);
        }
    }
    Ok(propagators)
}

/// The SDK reads the sampler itself but falls back to its default on a value it does not know.
fn check_sampler(sampler: Option<String>, arg: Option<String>) -> Result<(), TracingError> {
    let Some(sampler) = sampler else {
        return Ok(());
    };
    match sampler.as_str() {
        "always_on" | "always_off" | "parentbased_always_on" | "parentbased_always_off" => Ok(()),
        "traceidratio" | "parentbased_traceidratio" => match arg {
            // The SDK samples everything when the ratio is missing.
            None => Ok(()),
            Some(arg) => match arg.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
                _ => Err(TracingError::SamplerArg(arg)),
            },
        },
        _ => Err(TracingError::Sampler(sampler)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>, TracingError> {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    const ENDPOINT: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");

    #[test]
    fn tracing_is_off_without_an_endpoint_or_when_switched_off() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), Ok(None));
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "svc")]), Ok(None));
        assert_eq!(
            settings(&[ENDPOINT, ("OTEL_SDK_DISABLED", "TRUE")]),
            Ok(None)
        );
        assert_eq!(
            settings(&[ENDPOINT, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
    }

    #[test]
    fn either_endpoint_variable_switches_tracing_on() {
        let on = settings(&[ENDPOINT, ("OTEL_SERVICE_NAME", "notifier-eu")])
            .unwrap()
            .unwrap();
        assert_eq!(on.service_name.as_deref(), Some("notifier-eu"));
        assert_eq!(on.propagators, [Propagator::TraceContext]);
        let traces_only = settings(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )]);
        assert!(matches!(traces_only, Ok(Some(_))));
        assert!(matches!(
            settings(&[ENDPOINT, ("OTEL_SDK_DISABLED", "false")]),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_protocol_other_than_http_protobuf_is_refused_with_its_variable() {
        let err = settings(&[ENDPOINT, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "OTEL_EXPORTER_OTLP_PROTOCOL=`grpc` is not supported: traces are exported over OTLP/HTTP with protobuf (`http/protobuf`, a collector's port 4318)"
        );
        // The traces variable wins over the generic one, either way.
        assert!(matches!(
            settings(&[
                ENDPOINT,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            ]),
            Ok(Some(_))
        ));
        assert_eq!(
            settings(&[
                ENDPOINT,
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            ]),
            Err(TracingError::Protocol {
                variable: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                value: "http/json".into()
            })
        );
    }

    #[test]
    fn unknown_exporters_propagators_and_samplers_are_refused_by_name() {
        assert_eq!(
            settings(&[ENDPOINT, ("OTEL_TRACES_EXPORTER", "jaeger")]),
            Err(TracingError::Exporter("jaeger".into()))
        );
        assert_eq!(
            settings(&[ENDPOINT, ("OTEL_PROPAGATORS", "tracecontext,b3")]),
            Err(TracingError::Propagator("b3".into()))
        );
        assert_eq!(
            settings(&[ENDPOINT, ("OTEL_TRACES_SAMPLER", "always-on")]),
            Err(TracingError::Sampler("always-on".into()))
        );
        assert_eq!(
            settings(&[
                ENDPOINT,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2")
            ]),
            Err(TracingError::SamplerArg("2".into()))
        );
    }

    #[test]
    fn propagators_are_read_as_a_list() {
        let on = settings(&[
            ENDPOINT,
            ("OTEL_PROPAGATORS", "baggage, tracecontext,baggage"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            on.propagators,
            [Propagator::Baggage, Propagator::TraceContext]
        );
        let none = settings(&[ENDPOINT, ("OTEL_PROPAGATORS", "none")])
            .unwrap()
            .unwrap();
        assert!(none.propagators.is_empty());
        let sampled = settings(&[
            ENDPOINT,
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert!(matches!(sampled, Ok(Some(_))));
    }
}
