//! Standard Webhooks signatures: signing posts, and verifying them as a receiver should.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, de};
use sha2::Sha256;

use crate::protocol::{SECRET_PREFIX, SIGNATURE_VERSION};

type HmacSha256 = Hmac<Sha256>;

/// Secrets are written with or without base64 padding; both decode.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A `whsec_<base64>` signing secret, decoded to its key. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// Parses `whsec_<base64>`, saying precisely what is wrong otherwise.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("a signing secret must start with `{SECRET_PREFIX}` followed by base64")
        })?;
        let key = LENIENT
            .decode(encoded)
            .map_err(|_| format!("the part after `{SECRET_PREFIX}` is not valid base64"))?;
        if key.len() < 16 {
            return Err(format!(
                "the secret's key is {} bytes; use at least 16 (24 to 64 are recommended)",
                key.len()
            ));
        }
        Ok(Self { key })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_***")
    }
}

impl<'de> Deserialize<'de> for SigningSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SigningSecret::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` header: one `v1,<base64>` per secret, space-separated.
pub fn sign(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let content = signed_content(id, timestamp, body);
    secrets
        .iter()
        .map(|secret| {
            let mut mac = secret.mac();
            mac.update(&content);
            let digest = STANDARD.encode(mac.finalize().into_bytes());
            format!("{SIGNATURE_VERSION},{digest}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sha256=<hex>` of the body, GitHub's `X-Hub-Signature-256` scheme.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a captured webhook does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp `{0}` is not Unix seconds")]
    BadTimestamp(String),
    #[error(
        "the timestamp is {0} s old, outside the tolerance of {1} s (a replay, or a clock that is off)"
    )]
    TooOld(i64, i64),
    #[error(
        "the timestamp is {0} s in the future, outside the tolerance of {1} s (a clock that is off)"
    )]
    InFuture(i64, i64),
    #[error("the signature header has no `{SIGNATURE_VERSION},` signature")]
    NoSignature,
    #[error(
        "no signature matches: the secret, the id, the timestamp or the body differ from what was signed"
    )]
    NoMatch,
}

/// A webhook as its receiver got it: the Standard Webhooks headers, as sent, and the body.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`: Unix seconds, as text.
    pub timestamp: &'a str,
    /// `webhook-signature`: space-separated `v1,<base64>` signatures.
    pub header: &'a str,
    pub body: &'a [u8],
}

/// Checks a received webhook the way a receiver should: its timestamp within `tolerance_secs`
/// of `now` (Unix seconds), then any `v1` signature in its header matching (compared in
/// constant time).
pub fn verify(
    secret: &SigningSecret,
    received: &Received<'_>,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let Received {
        id,
        timestamp,
        header,
        body,
    } = *received;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    if now - sent > tolerance_secs {
        return Err(VerifyError::TooOld(now - sent, tolerance_secs));
    }
    if sent - now > tolerance_secs {
        return Err(VerifyError::InFuture(sent - now, tolerance_secs));
    }
    let content = signed_content(id, sent, body);
    let mut candidates = header
        .split_whitespace()
        .filter_map(|part| part.strip_prefix(SIGNATURE_VERSION)?.strip_prefix(','))
        .peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::NoSignature);
    }
    let matches = candidates.any(|candidate| {
        let Ok(expected) = general_purpose::STANDARD.decode(candidate) else {
            return false;
        };
        let mut mac = secret.mac();
        mac.update(&content);
        mac.verify_slice(&expected).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> SigningSecret {
        SigningSecret::parse(SECRET).unwrap()
    }

    /// The test vector's id and timestamp, with `header` and `body`.
    fn received<'a>(header: &'a str, body: &'a [u8]) -> Received<'a> {
        Received {
            id: ID,
            timestamp: "1649367553",
            header,
            body,
        }
    }

    #[test]
    fn signs_the_specification_test_vector() {
        assert_eq!(sign(&[secret()], ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn one_signature_per_secret_for_rotation() {
        let other = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let header = sign(&[secret(), other.clone()], ID, TIMESTAMP, BODY);
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], SIGNATURE);
        assert_eq!(
            verify(&other, &received(&header, BODY), TIMESTAMP, 300),
            Ok(())
        );
    }

    #[test]
    fn verify_accepts_the_vector_and_names_each_failure() {
        let ok = |header: &str, body: &[u8], now: i64| {
            verify(&secret(), &received(header, body), now, 300)
        };
        assert_eq!(ok(SIGNATURE, BODY, TIMESTAMP), Ok(()));
        assert_eq!(
            ok(&format!("v2,abc {SIGNATURE}"), BODY, TIMESTAMP + 300),
            Ok(())
        );
        assert_eq!(ok(SIGNATURE, b"{}", TIMESTAMP), Err(VerifyError::NoMatch));
        assert_eq!(
            ok("v1,not-base64!", BODY, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(ok("v2,abc", BODY, TIMESTAMP), Err(VerifyError::NoSignature));
        assert_eq!(
            ok(SIGNATURE, BODY, TIMESTAMP + 301),
            Err(VerifyError::TooOld(301, 300))
        );
        assert_eq!(
            ok(SIGNATURE, BODY, TIMESTAMP - 400),
            Err(VerifyError::InFuture(400, 300))
        );
        let yesterday = Received {
            timestamp: "yesterday",
            ..received(SIGNATURE, BODY)
        };
        assert_eq!(
            verify(&secret(), &yesterday, TIMESTAMP, 300),
            Err(VerifyError::BadTimestamp("yesterday".into()))
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(
            SigningSecret::parse("C2FVsBQIhrscChlQIMV")
                .unwrap_err()
                .contains("must start with `whsec_`")
        );
        assert!(
            SigningSecret::parse("whsec_***")
                .unwrap_err()
                .contains("not valid base64")
        );
        assert!(
            SigningSecret::parse("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
        assert_eq!(format!("{:?}", secret()), "whsec_***");
    }

    #[test]
    fn hub_signature_is_hex_hmac_of_the_body() {
        // HMAC-SHA256("It's a Secret to Everybody", "Hello, World!") from GitHub's documentation.
        assert_eq!(
            hub_signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
