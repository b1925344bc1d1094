//! The CloudEvents AMQP binding: a consumed message in structured or binary content mode,
//! turned into the same typed [`RunEvent`].
//!
//! Structured mode carries the whole event as JSON in the body. Binary mode carries `data` as
//! the body, `datacontenttype` as the AMQP content type and every other attribute as a header
//! named `cloudEvents_<name>` (the binding's preferred form, written by the Python SDK 2),
//! `cloudEvents:<name>` (binding 1.0.2) or `ce-<name>` (the RabbitMQ binding).
//!
//! `specversion`, `id`, `source`, `type`, `time` and the content type are read. The binding lets
//! `time` arrive as a timestamp (seconds), an integer of milliseconds or an RFC 3339 string.
//! The others (`traceparent`, extensions) are accepted whatever their AMQP type.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::value::RawValue;

use super::{Attributes, EventError, RunEvent};
use crate::echo;

/// Header name prefixes of binary-mode attributes, matched without regard to case.
const PREFIXES: [&str; 3] = ["cloudevents_", "cloudevents:", "ce-"];

/// What a message must look like, for errors about a message in neither mode.
const EXPECTED: &str = "expected a CloudEvent in structured mode (the whole event as a JSON \
    body, content type application/cloudevents+json or application/json) or in binary mode \
    (`data` as a JSON body, attributes including `specversion` as `cloudEvents_*`, \
    `cloudEvents:*` or `ce-*` headers)";

impl RunEvent {
    /// Parses a consumed message in either CloudEvents content mode. A content type of
    /// `application/cloudevents+json` means structured mode; a `specversion` header means
    /// binary mode; anything else is read as structured mode (producers that send plain
    /// `application/json`, or no content type) and its errors say what was expected.
    pub fn from_amqp(body: &[u8], properties: &BasicProperties) -> Result<Self, EventError> {
        let media = properties
            .content_type()
            .as_ref()
            .map(|value| media_type(value.as_str()));
        if let Some(media) = media
            .as_deref()
            .filter(|m| m.starts_with("application/cloudevents"))
        {
            return match media {
                "application/cloudevents+json" | "application/cloudevents" => Self::parse(body),
                "application/cloudevents-batch+json" => Err(EventError::Unsupported(
                    "batched CloudEvents (application/cloudevents-batch+json); publish one event per message".into(),
                )),
                other => Err(EventError::Unsupported(format!(
                    "structured mode in the format `{}`; only application/cloudevents+json is read",
                    echo::value(other)
                ))),
            };
        }
        let attributes = header_attributes(properties.headers().as_ref())?;
        if attributes.contains_key("specversion") {
            return binary(body, media.as_deref(), &attributes);
        }
        Self::parse(body).map_err(|err| match err {
            EventError::NotJson(_) | EventError::NotCloudEvent(_) => {
                let headers: Vec<_> = attributes.values().map(|(key, _)| format!("`{key}`")).collect();
                let problem = if headers.is_empty() {
                    err.to_string()
                } else {
                    format!(
                        "{err} (headers {} look like binary mode, but there is no `specversion` header)",
                        echo::value(&headers.join(", "))
                    )
                };
                EventError::NeitherMode {
                    problem,
                    expected: EXPECTED,
                }
            }
            other => other,
        })
    }
}

/// Binary mode: attributes from headers, the body as `data`.
fn binary(
    body: &[u8],
    media: Option<&str>,
    attributes: &BTreeMap<String, (String, &AMQPValue)>,
) -> Result<RunEvent, EventError> {
    let text = |name: &str| -> Result<Option<String>, EventError> {
        match attributes.get(name) {
            None => Ok(None),
            Some((key, value)) => string(value).map(Some).ok_or_else(|| {
                EventError::Binary(format!(
                    "header `{}` is {}, but the attribute `{}` is a string",
                    echo::value(key),
                    type_name(value),
                    echo::value(name)
                ))
            }),
        }
    };
    // The content type property is `datacontenttype`; a header of that name is a fallback for
    // producers that put it among the others.
    let content_type = match media {
        Some(media) => Some(media.to_owned()),
        None => text("datacontenttype")?.map(|value| media_type(&value)),
    };
    if let Some(content_type) = content_type.filter(|c| !is_json(c)) {
        return Err(EventError::Binary(format!(
            "the data content type is `{}`, but the `data` of a run event is JSON (application/json)",
            echo::value(&content_type)
        )));
    }
    let time = match attributes.get("time") {
        None => None,
        Some((key, value)) => Some(time(value).ok_or_else(|| {
            EventError::Binary(format!(
                "header `{}` is {}, but the attribute `time` is a timestamp, an integer of \
                 milliseconds since 1970 or an RFC 3339 string",
                echo::value(key),
                type_name(value)
            ))
        })?),
    };
    let parsed = Attributes {
        specversion: text("specversion")?,
        id: text("id")?,
        source: text("source")?,
        kind: text("type")?,
        time,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EventError::Binary(
            "the body (the event's `data`) is empty".into(),
        ));
    }
    let data: &RawValue = serde_json::from_slice(body).map_err(|err| {
        EventError::Binary(format!(
            "the body (the event's `data`) is not JSON: {}",
            echo::message(&err.to_string())
        ))
    })?;
    RunEvent::from_parts(parsed, Some(data), |name| {
        let key = attributes.get(name).map_or_else(
            || format!("{}{name}", prefix_in_use(attributes)),
            |(key, _)| key.clone(),
        );
        format!(
            "binary-mode attribute `{name}` (header `{}`)",
            echo::value(&key)
        )
    })
}

/// The attributes among `headers`, by lower-case name, each with the header it came from. The
/// same attribute under two prefixes must have one value.
fn header_attributes(
    headers: Option<&FieldTable>,
) -> Result<BTreeMap<String, (String, &AMQPValue)>, EventError> {
    let mut attributes: BTreeMap<String, (String, &AMQPValue)> = BTreeMap::new();
    for (key, value) in headers.map(|h| h.inner().iter()).into_iter().flatten() {
        let key = key.as_str();
        let lower = key.to_ascii_lowercase();
        let Some(name) = PREFIXES.iter().find_map(|p| lower.strip_prefix(p)) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let Some((earlier, seen)) = attributes.get(name)
            && *seen != value
        {
            return Err(EventError::Binary(format!(
                "the attribute `{}` is given twice with different values (headers `{}` and `{}`)",
                echo::value(name),
                echo::value(earlier),
                echo::value(key)
            )));
        }
        attributes.insert(name.to_owned(), (key.to_owned(), value));
    }
    Ok(attributes)
}

/// The prefix the message's other attributes use, to name a missing one as the producer would.
fn prefix_in_use(attributes: &BTreeMap<String, (String, &AMQPValue)>) -> String {
    attributes
        .values()
        .next()
        .and_then(|(key, _)| {
            let lower = key.to_ascii_lowercase();
            PREFIXES
                .iter()
                .find(|p| lower.starts_with(*p))
                .map(|p| key[..p.len()].to_owned())
        })
        .unwrap_or_else(|| "cloudEvents_".to_owned())
}

/// A header value as a string, when it is one.
fn string(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.as_str().to_owned()),
        _ => None,
    }
}

/// The `time` attribute as RFC 3339 text, whichever form the binding allowed it to take: a
/// string is left for the event's rules to check.
fn time(value: &AMQPValue) -> Option<String> {
    let millis = match value {
        AMQPValue::Timestamp(seconds) => i64::try_from(*seconds).ok()?.checked_mul(1000)?,
        AMQPValue::LongLongInt(millis) => *millis,
        AMQPValue::LongInt(millis) => i64::from(*millis),
        AMQPValue::LongUInt(millis) => i64::from(*millis),
        other => return string(other),
    };
    let time = DateTime::from_timestamp_millis(millis)?;
    Some(time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// How an error names a header's AMQP type.
fn type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "a boolean",
        AMQPValue::ShortShortInt(_)
        | AMQPValue::ShortShortUInt(_)
        | AMQPValue::ShortInt(_)
        | AMQPValue::ShortUInt(_)
        | AMQPValue::LongInt(_)
        | AMQPValue::LongUInt(_)
        | AMQPValue::LongLongInt(_) => "an integer",
        AMQPValue::Float(_) | AMQPValue::Double(_) | AMQPValue::DecimalValue(_) => "a number",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "a string",
        AMQPValue::FieldArray(_) => "an array",
        AMQPValue::Timestamp(_) => "a timestamp",
        AMQPValue::FieldTable(_) => "a table",
        AMQPValue::ByteArray(_) => "bytes",
        AMQPValue::Void => "empty (void)",
    }
}

/// The media type of a content type: lower case, without parameters (`; charset=utf-8`).
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// JSON media types: `application/json`, `text/json` and `…+json`.
fn is_json(media: &str) -> bool {
    matches!(media, "application/json" | "text/json") || media.ends_with("+json")
}

#[cfg(test)]
#[path = "amqp_tests.rs"]
mod tests;
