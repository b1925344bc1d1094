//! The headers the worker reads from and writes onto messages: retries, queued parts and dead
//! letters (whose own headers are [`DeadLetter`]'s). Those that steer a message count only
//! under the worker's [`Seal`].

use std::time::Duration;

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};

pub use super::dead_letter::{DeadKind, DeadLetter};
use super::seal::{STEERING, Seal};
use crate::protocol::{
    HEADER_ATTEMPT, HEADER_DEAD_AT, HEADER_DEAD_KIND, HEADER_ERROR, HEADER_HEADERS_DROPPED,
    HEADER_INTEGRATION, HEADER_ORIGINAL_EXCHANGE, HEADER_ORIGINAL_ROUTING_KEY, HEADER_QUEUED_AT,
    HEADER_RUN_ID,
};

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// The most header bytes a consumed message may carry. The worker copies a message's headers
/// onto its retries, queued parts and dead letters, and a header frame over the broker's frame
/// limit (128 KiB by default) closes the connection: half of it leaves room for the worker's
/// own headers and a broker configured lower.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How many bytes a message's headers take on the wire, if more than [`MAX_HEADER_BYTES`].
pub fn oversized_headers(properties: &BasicProperties) -> Option<usize> {
    let size = properties.headers().as_ref().map_or(0, table_len);
    (size > MAX_HEADER_BYTES).then_some(size)
}

/// The encoded size of a field table, to within a few bytes per value.
fn table_len(table: &FieldTable) -> usize {
    4 + table
        .inner()
        .iter()
        .map(|(name, value)| 1 + name.as_str().len() + value_len(value))
        .sum::<usize>()
}

fn value_len(value: &AMQPValue) -> usize {
    1 + match value {
        AMQPValue::ShortString(text) => 1 + text.as_str().len(),
        AMQPValue::LongString(text) => 4 + text.len(),
        AMQPValue::ByteArray(bytes) => 4 + bytes.as_slice().len(),
        AMQPValue::FieldArray(array) => 4 + array.as_slice().iter().map(value_len).sum::<usize>(),
        AMQPValue::FieldTable(table) => table_len(table),
        _ => 8,
    }
}

/// What the worker needs to know of a consumed message besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// AMQP `message-id`, for logs (`-` when the publisher set none).
    pub message_id: String,
    /// Set on retries and queued parts: the one integration the message is for.
    pub integration: Option<String>,
    /// The attempt this message makes (1 for a new event).
    pub attempt: u32,
    /// Where the event was first published, carried through retries into dead letters.
    pub original_exchange: String,
    pub original_routing_key: String,
    /// Unix ms at which the message entered an integration's queue, if it did.
    pub queued_at_ms: Option<i64>,
    /// Steering headers the message carried without this worker's seal (a producer's, or a
    /// previous version's): ignored, so the message is a new event.
    pub unsealed: Vec<&'static str>,
}

impl Inbound {
    /// Reads the steering headers only when `seal` vouches for them: a message a producer
    /// sent, whatever its headers say, is a new event at its first attempt.
    pub fn from_delivery(delivery: &Delivery, seal: &Seal) -> Self {
        let properties = &delivery.properties;
        let message_id = properties
            .message_id()
            .as_ref()
            .map_or_else(|| "-".to_owned(), |id| id.to_string());
        let headers = properties.headers().as_ref();
        let sealed = headers.filter(|h| seal.verifies(h, properties, &delivery.data));
        let unsealed = match (sealed, headers) {
            (None, Some(headers)) => STEERING
                .into_iter()
                .filter(|name| headers.contains_key(name))
                .collect(),
            _ => Vec::new(),
        };
        let header = |name| sealed.and_then(|h| text(h, name));
        Self {
            message_id,
            integration: header(HEADER_INTEGRATION),
            attempt: sealed
                .and_then(|h| number(h, HEADER_ATTEMPT))
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n >= 1)
                .unwrap_or(1),
            original_exchange: header(HEADER_ORIGINAL_EXCHANGE)
                .unwrap_or_else(|| delivery.exchange.to_string()),
            original_routing_key: header(HEADER_ORIGINAL_ROUTING_KEY)
                .unwrap_or_else(|| delivery.routing_key.to_string()),
            queued_at_ms: sealed.and_then(|h| number(h, HEADER_QUEUED_AT)),
            unsealed,
        }
    }

    /// Properties for the next attempt of `integration`: the original properties, plus where it
    /// came from and which attempt it will be; `delay` becomes its per-message TTL.
    pub fn retry(
        &self,
        original: &BasicProperties,
        integration: &str,
        next_attempt: u32,
        last_error: &str,
        delay: Option<Duration>,
    ) -> BasicProperties {
        let mut headers = self.carried_headers(original);
        headers.insert(HEADER_INTEGRATION.into(), long(integration));
        headers.insert(
            HEADER_ATTEMPT.into(),
            AMQPValue::LongLongInt(next_attempt.into()),
        );
        // Bounded like a dead letter's reason: an error may quote a receiver's or producer's text.
        headers.insert(
            HEADER_ERROR.into(),
            long(&crate::echo::message(last_error).to_string()),
        );
        let properties = carried_properties(original, headers);
        match delay {
            Some(delay) => properties.with_expiration(delay.as_millis().to_string().into()),
            None => properties,
        }
    }

    /// Properties of a dead letter: the original properties with why it died.
    pub fn dead_letter(&self, original: &BasicProperties, dead: &DeadLetter) -> BasicProperties {
        let mut headers = self.carried_headers(original);
        dead.write(&mut headers);
        carried_properties(original, headers)
    }

    /// Properties of an integration's part of a message queued in that integration's own
    /// queue, at `attempt`, stamped with when it was first queued.
    pub fn queued(
        &self,
        original: &BasicProperties,
        integration: &str,
        attempt: u32,
    ) -> BasicProperties {
        let mut headers = self.carried_headers(original);
        headers.insert(HEADER_INTEGRATION.into(), long(integration));
        headers.insert(
            HEADER_ATTEMPT.into(),
            AMQPValue::LongLongInt(attempt.into()),
        );
        // Queued again (handed back at shutdown): it keeps its place in the waiting-time metrics.
        let queued_at = self
            .queued_at_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        headers.insert(HEADER_QUEUED_AT.into(), AMQPValue::LongLongInt(queued_at));
        carried_properties(original, headers)
    }

    /// The original headers without the previous attempt's, plus where the event came from.
    fn carried_headers(&self, original: &BasicProperties) -> FieldTable {
        // Headers too large to publish again are not carried (the event is refused as invalid
        // for them, and its dead letter keeps the body): the size is said instead.
        let dropped = oversized_headers(original);
        let mut map = match dropped {
            Some(_) => Default::default(),
            None => original
                .headers()
                .clone()
                .unwrap_or_default()
                .inner()
                .clone(),
        };
        if let Some(size) = dropped {
            map.insert(
                HEADER_HEADERS_DROPPED.into(),
                AMQPValue::LongLongInt(size as i64),
            );
        }
        map.remove(HEADER_ATTEMPT);
        map.remove(HEADER_INTEGRATION);
        map.remove(HEADER_ERROR);
        map.remove(HEADER_QUEUED_AT);
        let mut headers = FieldTable::from(map);
        headers.insert(
            HEADER_ORIGINAL_EXCHANGE.into(),
            long(&self.original_exchange),
        );
        headers.insert(
            HEADER_ORIGINAL_ROUTING_KEY.into(),
            long(&self.original_routing_key),
        );
        headers
    }
}

/// Properties of a dead letter put back for a fresh set of attempts: what the worker added when
/// it gave up is dropped; a failed delivery goes back to its one integration at attempt 1, and
/// anything else as a new event.
pub fn replayed(dead: &BasicProperties) -> BasicProperties {
    let mut map = dead.headers().clone().unwrap_or_default().inner().clone();
    for name in [
        HEADER_ERROR,
        HEADER_DEAD_KIND,
        HEADER_DEAD_AT,
        HEADER_RUN_ID,
        HEADER_ATTEMPT,
        HEADER_QUEUED_AT,
    ] {
        map.remove(name);
    }
    if map.contains_key(HEADER_INTEGRATION) {
        map.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(1));
    }
    carried_properties(dead, FieldTable::from(map))
}

/// A fresh, persistent set of properties keeping what identifies the message. Not copied: the
/// expiration (a retry's TTL must not expire a dead letter) and `user-id` (the broker checks it
/// against the publishing user).
fn carried_properties(original: &BasicProperties, headers: FieldTable) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(PERSISTENT);
    if let Some(value) = original.content_type() {
        properties = properties.with_content_type(value.clone());
    }
    if let Some(value) = original.content_encoding() {
        properties = properties.with_content_encoding(value.clone());
    }
    if let Some(value) = original.message_id() {
        properties = properties.with_message_id(value.clone());
    }
    if let Some(value) = original.correlation_id() {
        properties = properties.with_correlation_id(value.clone());
    }
    if let Some(value) = original.timestamp() {
        properties = properties.with_timestamp(*value);
    }
    if let Some(value) = original.kind() {
        properties = properties.with_type(value.clone());
    }
    if let Some(value) = original.app_id() {
        properties = properties.with_app_id(value.clone());
    }
    properties
}

/// A header as text, whichever string type the publisher used.
pub fn text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

/// A header as a number, whichever integer type the publisher used.
pub fn number(headers: &FieldTable, name: &str) -> Option<i64> {
    match *headers.inner().get(name)? {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

pub(super) fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retrys_last_error_is_bounded_and_escaped_like_a_dead_letters_reason() {
        let inbound = Inbound {
            message_id: "m-1".into(),
            integration: None,
            attempt: 1,
            original_exchange: "runs".into(),
            original_routing_key: "run.canceled".into(),
            queued_at_ms: None,
            unsealed: Vec::new(),
        };
        let error = format!("HTTP 500: \u{1b}[2J{}", "x".repeat(600_000));
        let properties = inbound.retry(&BasicProperties::default(), "hook", 2, &error, None);
        let written = text(properties.headers().as_ref().unwrap(), HEADER_ERROR).unwrap();
        assert!(written.len() < 2_048, "{} bytes", written.len());
        assert!(written.starts_with("HTTP 500: \\u{1b}[2J"), "{written}");
        assert!(!written.contains('\u{1b}'));
    }
}
