//! How GitLab's REST API answers: read by its kind (see [`crate::integrations::Kind::classify`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::failure::{DeliveryError, FailureKind, classify_response, excerpt, header};

/// GitLab's answer when a pending or running status with the same name, ref and user is set
/// again (`Cannot transition status via :enqueue from :pending`): the status is already there.
const ALREADY_SET: &str = "Cannot transition status";

/// GitLab: the general rules, plus its own answers. A 400 `Cannot transition status` is
/// success; a 409 (`Another update … in progress`: a lock per project and commit) is
/// transient; a 429 without `Retry-After` waits until `RateLimit-Reset`; 403 and 404 say what
/// to check.
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    if status == StatusCode::BAD_REQUEST && body.contains(ALREADY_SET) {
        return Ok(());
    }
    if status == StatusCode::CONFLICT {
        return Err(DeliveryError::Retryable {
            kind: FailureKind::Transient,
            message: format!("HTTP {status}: {}", excerpt(body)),
            retry_after: None,
        });
    }
    match classify_response(status, headers, body, now) {
        Err(DeliveryError::Retryable {
            kind: FailureKind::RateLimited,
            message,
            retry_after: None,
        }) => Err(DeliveryError::Retryable {
            kind: FailureKind::RateLimited,
            message,
            retry_after: reset_wait(headers, now),
        }),
        Err(DeliveryError::Permanent { message }) => {
            let hint = match status.as_u16() {
                403 if body.contains("insufficient_scope") => {
                    " (the token lacks a scope: writing needs `api`, `read_api` is read-only)"
                }
                403 => " (the token's user may lack the Developer role on the project)",
                404 => " (no such project, commit or merge request, or the token cannot see it)",
                _ => "",
            };
            Err(DeliveryError::permanent(format!("GitLab: {message}{hint}")))
        }
        other => other,
    }
}

/// `RateLimit-Reset` (Unix seconds), which GitLab sends on every answer of a limited route.
fn reset_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let reset = header(headers, "ratelimit-reset")?.parse::<i64>().ok()?;
    let at = DateTime::from_timestamp(reset, 0)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;
    use crate::failure::FailureKind;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn gitlab(
        status: u16,
        body: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<(), DeliveryError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        classify(StatusCode::from_u16(status).unwrap(), &map, body, now())
    }

    /// Every status with a plain body: the general table, but 409 transient.
    #[test]
    fn every_status_code_has_one_class_on_gitlab() {
        use FailureKind::*;
        for status in 100..=599u16 {
            let expected = match status {
                200..=299 => None,
                429 => Some(RateLimited),
                408 | 409 | 425 | 500 | 502..=599 => Some(Transient),
                _ => Some(Permanent),
            };
            let got = gitlab(status, "{}", &[]).err().and_then(|e| e.kind());
            assert_eq!(got, expected, "HTTP {status}");
        }
    }

    #[test]
    fn the_same_pending_status_again_is_success() {
        for body in [
            r#"{"message":"Cannot transition status via :enqueue from :pending (Reasons: ...)"}"#,
            r#"{"message":"Cannot transition status via :run from :running"}"#,
        ] {
            assert_eq!(gitlab(400, body, &[]), Ok(()), "{body}");
        }
        let other = gitlab(400, r#"{"message":"state is invalid"}"#, &[]).unwrap_err();
        assert_eq!(other.kind(), Some(FailureKind::Permanent));
        assert!(other.to_string().contains("state is invalid"), "{other}");
    }

    #[test]
    fn rate_limits_wait_for_retry_after_or_the_reset() {
        let wait = |headers: &[(&'static str, &str)]| match gitlab(429, "Retry later", headers) {
            Err(DeliveryError::Retryable {
                kind: FailureKind::RateLimited,
                retry_after,
                ..
            }) => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        let reset = (now().timestamp() + 30).to_string();
        assert_eq!(
            wait(&[("ratelimit-reset", &reset)]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(wait(&[]), None, "an application limit says nothing");
    }

    #[test]
    fn rejections_say_what_to_check() {
        let scope = gitlab(
            403,
            r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges"}"#,
            &[],
        )
        .unwrap_err();
        assert!(scope.to_string().contains("writing needs `api`"), "{scope}");
        let missing = gitlab(404, r#"{"message":"404 Project Not Found"}"#, &[]).unwrap_err();
        assert!(missing.to_string().contains("cannot see it"), "{missing}");
        let rejected = gitlab(401, r#"{"message":"401 Unauthorized"}"#, &[]).unwrap_err();
        assert!(
            rejected.to_string().contains("credential was rejected"),
            "{rejected}"
        );
        let conflict = gitlab(409, "Another update is in progress", &[]).unwrap_err();
        assert_eq!(conflict.kind(), Some(FailureKind::Transient));
    }
}
