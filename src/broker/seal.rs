//! The seal on the headers that steer a message (its integration, attempt, queue time and
//! origin): an HMAC-SHA256 under a key that only the workers sharing a ledger hold, so that a
//! producer's message can never pose as a retry or as an integration's queued part.

use std::fmt;

use hmac::{Hmac, Mac};
use lapin::BasicProperties;
use lapin::types::FieldTable;
use sha2::Sha256;

use super::message::{long, number, replayed, text};
use crate::protocol::{
    HEADER_ATTEMPT, HEADER_INTEGRATION, HEADER_ORIGINAL_EXCHANGE, HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_QUEUED_AT, HEADER_SEAL,
};

type HmacSha256 = Hmac<Sha256>;

/// Separates this use of the key from any other, and versions the layout below.
const DOMAIN: &[u8] = b"run-notifier header seal v1";

/// How a sealed header is read: as the worker reads it, so that what is verified is exactly
/// what steers the message (a value of another AMQP type reads as absent, both here and there).
#[derive(Clone, Copy)]
enum Read {
    Text,
    Number,
}

/// The headers a seal covers, in the order they are sealed.
const SEALED: [(&str, Read); 5] = [
    (HEADER_INTEGRATION, Read::Text),
    (HEADER_ATTEMPT, Read::Number),
    (HEADER_QUEUED_AT, Read::Number),
    (HEADER_ORIGINAL_EXCHANGE, Read::Text),
    (HEADER_ORIGINAL_ROUTING_KEY, Read::Text),
];

/// The headers that steer a message, by name: those a seal must vouch for.
pub const STEERING: [&str; 5] = [
    SEALED[0].0,
    SEALED[1].0,
    SEALED[2].0,
    SEALED[3].0,
    SEALED[4].0,
];

/// Seals and checks the steering headers of messages. `Debug` never shows the key.
#[derive(Clone)]
pub struct Seal {
    key: Vec<u8>,
}

impl Seal {
    /// A seal under `key` (the ledger keeps 32 random bytes).
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// `properties` with a seal over their steering headers, message id and `body`.
    pub fn apply(&self, properties: BasicProperties, body: &[u8]) -> BasicProperties {
        let mut headers = properties.headers().clone().unwrap_or_default();
        let tag = self.tag(&headers, &properties, body);
        headers.insert(HEADER_SEAL.into(), long(&tag));
        properties.with_headers(headers)
    }

    /// A dead letter's `properties` with the seal its replay will need: `dead-letters replay`
    /// puts it back (see [`replayed`]) for its one integration without holding the key.
    pub fn apply_for_replay(&self, properties: BasicProperties, body: &[u8]) -> BasicProperties {
        let replay = replayed(&properties);
        let tag = self.tag(&replay.headers().clone().unwrap_or_default(), &replay, body);
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(HEADER_SEAL.into(), long(&tag));
        properties.with_headers(headers)
    }

    /// Whether `headers` (of a message with `properties` and `body`) carry this seal.
    pub fn verifies(
        &self,
        headers: &FieldTable,
        properties: &BasicProperties,
        body: &[u8],
    ) -> bool {
        let Some(given) = text(headers, HEADER_SEAL).and_then(|tag| hex::decode(tag).ok()) else {
            return false;
        };
        // Constant time: the comparison tells nothing of how close a guess was.
        self.mac(headers, properties, body)
            .verify_slice(&given)
            .is_ok()
    }

    fn tag(&self, headers: &FieldTable, properties: &BasicProperties, body: &[u8]) -> String {
        hex::encode(self.mac(headers, properties, body).finalize().into_bytes())
    }

    /// Each field length-prefixed (absent and empty differ), so no two messages share an input.
    fn mac(&self, headers: &FieldTable, properties: &BasicProperties, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        let message_id = properties.message_id().as_ref().map(|id| id.to_string());
        field(&mut mac, message_id.as_deref().map(str::as_bytes));
        for (name, read) in SEALED {
            let value = match read {
                Read::Text => text(headers, name),
                Read::Number => number(headers, name).map(|n| n.to_string()),
            };
            field(&mut mac, value.as_deref().map(str::as_bytes));
        }
        field(&mut mac, Some(body));
        mac
    }
}

fn field(mac: &mut HmacSha256, value: Option<&[u8]>) {
    match value {
        None => mac.update(&[0]),
        Some(bytes) => {
            mac.update(&[1]);
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        }
    }
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seal(***)")
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::AMQPValue;

    use super::*;

    const BODY: &[u8] = br#"{"data":{"runId":"r1"}}"#;

    fn seal() -> Seal {
        Seal::new(&[7; 32])
    }

    fn retry(integration: &str, attempt: i64) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(HEADER_INTEGRATION.into(), long(integration));
        headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(attempt));
        BasicProperties::default()
            .with_message_id("m1".into())
            .with_headers(headers)
    }

    fn verifies(seal: &Seal, properties: &BasicProperties, body: &[u8]) -> bool {
        let headers = properties.headers().clone().unwrap_or_default();
        seal.verifies(&headers, properties, body)
    }

    fn with(properties: BasicProperties, name: &str, value: AMQPValue) -> BasicProperties {
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(name.into(), value);
        properties.with_headers(headers)
    }

    #[test]
    fn a_sealed_message_verifies_and_an_unsealed_one_does_not() {
        let sealed = seal().apply(retry("hook", 2), BODY);
        assert!(verifies(&seal(), &sealed, BODY));
        assert!(!verifies(&seal(), &retry("hook", 2), BODY));
    }

    #[test]
    fn another_key_does_not_verify() {
        let sealed = seal().apply(retry("hook", 2), BODY);
        assert!(!verifies(&Seal::new(&[8; 32]), &sealed, BODY));
    }

    #[test]
    fn changing_any_sealed_part_breaks_the_seal() {
        let sealed = seal().apply(retry("hook", 2), BODY);
        let changed = [
            with(sealed.clone(), HEADER_INTEGRATION, long("other")),
            with(sealed.clone(), HEADER_ATTEMPT, AMQPValue::LongLongInt(4)),
            with(sealed.clone(), HEADER_QUEUED_AT, AMQPValue::LongLongInt(1)),
            with(sealed.clone(), HEADER_ORIGINAL_EXCHANGE, long("control")),
            with(sealed.clone(), HEADER_ORIGINAL_ROUTING_KEY, long("x")),
            sealed.clone().with_message_id("m2".into()),
        ];
        for properties in changed {
            assert!(!verifies(&seal(), &properties, BODY), "{properties:?}");
        }
        assert!(!verifies(&seal(), &sealed, br#"{"data":{"runId":"r2"}}"#));
    }

    #[test]
    fn the_same_number_in_another_integer_type_still_verifies() {
        let sealed = seal().apply(retry("hook", 2), BODY);
        let retyped = with(sealed, HEADER_ATTEMPT, AMQPValue::ShortShortUInt(2));
        assert!(verifies(&seal(), &retyped, BODY));
    }

    #[test]
    fn headers_outside_the_seal_may_change() {
        let sealed = seal().apply(retry("hook", 2), BODY);
        let traced = with(sealed, "traceparent", long("00-abc-def-01"));
        assert!(verifies(&seal(), &traced, BODY));
    }

    #[test]
    fn a_dead_letter_sealed_for_replay_verifies_once_replayed() {
        let dead = seal().apply_for_replay(retry("hook", 4), BODY);
        assert!(
            !verifies(&seal(), &dead, BODY),
            "the dead letter itself is attempt 4"
        );
        assert!(verifies(&seal(), &replayed(&dead), BODY));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", seal()), "Seal(***)");
    }
}
