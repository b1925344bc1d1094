//! How Slack's incoming webhooks answer: read by its kind (see [`crate::integrations::Kind::classify`]).

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::failure::{DeliveryError, classify_response, excerpt};

/// Slack: `ok` is the only success; a named error is permanent (retrying the same message to
/// the same webhook cannot help) unless the status itself is transient (429, 5xx).
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    let answer = body.trim();
    if status.is_success() {
        if answer == "ok" {
            return Ok(());
        }
        let answer = if answer.is_empty() {
            "an empty body"
        } else {
            answer
        };
        return Err(DeliveryError::permanent(format!(
            "Slack rejected the message (HTTP {status}, not `ok`): {}",
            excerpt(answer)
        )));
    }
    match classify_response(status, headers, body, now) {
        Err(DeliveryError::Permanent { .. }) if status.is_client_error() => {
            let hint = slack_hint(answer);
            Err(DeliveryError::permanent(format!(
                "Slack rejected the message (HTTP {status}): {}{hint}",
                excerpt(answer)
            )))
        }
        other => other,
    }
}

/// What an operator can do about Slack's documented incoming-webhook errors.
fn slack_hint(error: &str) -> &'static str {
    match error {
        "invalid_payload" | "no_text" => {
            " (the rendered message is not valid Block Kit: check the template)"
        }
        "channel_not_found"
        | "channel_is_archived"
        | "no_service"
        | "no_team"
        | "team_disabled"
        | "invalid_token" => {
            " (the webhook no longer works: create a new one and update `webhook_url`)"
        }
        "action_prohibited" => " (a workspace admin restricted posting to this channel)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::RETRY_AFTER;

    use super::*;
    use crate::failure::FailureKind;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Every status with every kind of Slack answer: (status, body) → class.
    #[test]
    fn slack_answers_are_classified_by_status_and_body() {
        use FailureKind::*;
        let slack = |status: u16, body: &str| {
            classify(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                body,
                now(),
            )
        };
        for status in 100..=599u16 {
            let expected = match status {
                200..=299 => None,
                429 => Some(RateLimited),
                408 | 425 | 500 | 502..=599 => Some(Transient),
                _ => Some(Permanent),
            };
            let got = slack(status, "ok").err().and_then(|e| e.kind());
            assert_eq!(got, expected, "HTTP {status} ok");
        }
        for (status, body) in [
            (400, "invalid_payload"),
            (400, "no_text"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (404, "no_service"),
            (410, "channel_is_archived"),
            (200, "invalid_payload"),
            (200, ""),
            (204, ""),
        ] {
            let error = slack(status, body).unwrap_err();
            assert_eq!(error.kind(), Some(Permanent), "HTTP {status} {body}");
            let message = error.to_string();
            assert!(
                message.starts_with("Slack rejected the message"),
                "{message}"
            );
            assert!(message.contains(body), "{message}");
        }
        assert_eq!(
            slack(404, "channel_not_found").unwrap_err().to_string(),
            "Slack rejected the message (HTTP 404 Not Found): channel_not_found (the webhook no \
             longer works: create a new one and update `webhook_url`)"
        );
        assert_eq!(
            slack(500, "rollup_error").unwrap_err().kind(),
            Some(Transient)
        );
        let limited = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &[(RETRY_AFTER, "3".parse().unwrap())].into_iter().collect(),
            "rate_limited",
            now(),
        );
        assert_eq!(
            limited.unwrap_err(),
            DeliveryError::Retryable {
                kind: RateLimited,
                message: "HTTP 429 Too Many Requests: rate_limited".into(),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
    }
}
