//! How Slack's Web API answers (`chat.postMessage`, `chat.update`, `conversations.history`):
//! read by its kind (see [`crate::integrations::Kind::classify`]).

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::failure::{DeliveryError, FailureKind, classify_response, excerpt, requested_wait};

/// The envelope of every Web API answer.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Error codes worth another try: Slack's own trouble, and its limits.
const TRANSIENT: &[&str] = &[
    "service_unavailable",
    "request_timeout",
    "internal_error",
    "fatal_error",
    "team_added_to_org",
];
/// Error codes that mean "slow down".
const RATE_LIMITED: &[&str] = &["ratelimited", "rate_limited", "message_limit_exceeded"];

/// Slack's Web API: success is `"ok": true`. `"ok": false` comes with HTTP 200 and a code:
/// limits and Slack's own trouble are transient (`fatal_error` may have half-posted, which is
/// why a retry looks for its message before posting), every other code is permanent, since
/// the same request with the same token cannot succeed. Other statuses follow the general
/// rules (429 with `Retry-After`).
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    if !status.is_success() {
        return classify_response(status, headers, body, now).map_err(|error| match error {
            DeliveryError::Permanent { message } => {
                DeliveryError::permanent(format!("Slack: {message}"))
            }
            other => other,
        });
    }
    let envelope: Envelope = serde_json::from_str(body).map_err(|_| {
        DeliveryError::permanent(format!(
            "Slack answered HTTP {status} with something that is not a Web API answer: {} \
             (is `api_url` Slack's API root?)",
            excerpt(body)
        ))
    })?;
    if envelope.ok {
        return Ok(());
    }
    let code = envelope.error.unwrap_or_else(|| "no error code".to_owned());
    let message = format!("Slack answered `{code}`");
    if RATE_LIMITED.contains(&code.as_str()) {
        return Err(DeliveryError::Retryable {
            kind: FailureKind::RateLimited,
            message,
            retry_after: requested_wait(headers, now),
        });
    }
    if TRANSIENT.contains(&code.as_str()) {
        return Err(DeliveryError::Retryable {
            kind: FailureKind::Transient,
            message,
            retry_after: requested_wait(headers, now),
        });
    }
    Err(DeliveryError::permanent(format!(
        "{message}{}",
        hint(&code)
    )))
}

/// The code of `chat.update` for a message that was deleted (or never was): the run's message
/// is posted anew. `cant_update_message` (a message this token did not post) and
/// `edit_window_closed` (the workspace allows edits only for a while) stay permanent: that
/// message still stands in the channel, so a new one would give the run two, and only the
/// operator can lift the cause (the app's token, the workspace's edit setting).
const GONE: &str = "message_not_found";

/// Whether `body` is Slack's answer that the message to edit is gone ([`GONE`]).
pub(super) fn gone(body: &str) -> bool {
    serde_json::from_str::<Envelope>(body)
        .is_ok_and(|envelope| !envelope.ok && envelope.error.as_deref() == Some(GONE))
}

/// What an operator can do about the permanent codes.
fn hint(code: &str) -> &'static str {
    match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            " (the bot token is not valid: reinstall the app and update `token`)"
        }
        "missing_scope" => {
            " (the app lacks a scope: `chat:write`, and `channels:history` or `groups:history`)"
        }
        "channel_not_found" => " (check `channel`, and that the app can see it)",
        "not_in_channel" => " (invite the app to the channel: /invite @app)",
        "is_archived" => " (the channel is archived)",
        "msg_too_long" | "msg_blocks_too_long" | "invalid_blocks" | "metadata_too_large" => {
            " (the rendered message is too big or not valid Block Kit: check the template)"
        }
        "cant_update_message" | "message_not_found" | "edit_window_closed" => {
            " (the earlier message can no longer be edited)"
        }
        _ if code.starts_with("restricted_action") => {
            " (a workspace admin restricted posting to this channel)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;
    use crate::failure::FailureKind;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn slack(status: u16, body: &str, retry_after: Option<&str>) -> Result<(), DeliveryError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        classify(StatusCode::from_u16(status).unwrap(), &headers, body, now())
    }

    fn error(code: &str) -> String {
        format!(r#"{{"ok":false,"error":"{code}"}}"#)
    }

    #[test]
    fn ok_false_codes_are_permanent_or_transient_as_documented() {
        use FailureKind::*;
        assert_eq!(slack(200, r#"{"ok":true,"ts":"1.2"}"#, None), Ok(()));
        for code in [
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
            "missing_scope",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "msg_blocks_too_long",
            "invalid_blocks",
            "metadata_too_large",
            "restricted_action_read_only_channel",
            "cant_update_message",
            "message_not_found",
            "edit_window_closed",
            "something_new",
        ] {
            let failure = slack(200, &error(code), None).unwrap_err();
            assert_eq!(failure.kind(), Some(Permanent), "{code}");
            assert!(failure.to_string().contains(code), "{failure}");
        }
        for code in [
            "service_unavailable",
            "request_timeout",
            "internal_error",
            "fatal_error",
        ] {
            assert_eq!(
                slack(200, &error(code), None).unwrap_err().kind(),
                Some(Transient),
                "{code}"
            );
        }
        for code in ["ratelimited", "message_limit_exceeded"] {
            assert_eq!(
                slack(200, &error(code), Some("4")).unwrap_err(),
                DeliveryError::Retryable {
                    kind: RateLimited,
                    message: format!("Slack answered `{code}`"),
                    retry_after: Some(Duration::from_secs(4)),
                }
            );
        }
    }

    #[test]
    fn statuses_follow_the_general_rules_and_hints_name_the_fix() {
        let limited = slack(429, &error("ratelimited"), Some("30")).unwrap_err();
        assert_eq!(limited.kind(), Some(FailureKind::RateLimited));
        assert!(
            matches!(limited, DeliveryError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(30))
        );
        assert_eq!(
            slack(503, "", None).unwrap_err().kind(),
            Some(FailureKind::Transient)
        );
        assert_eq!(
            slack(404, "", None).unwrap_err().kind(),
            Some(FailureKind::Permanent)
        );
        let revoked = slack(200, &error("token_revoked"), None).unwrap_err();
        assert!(revoked.to_string().contains("update `token`"), "{revoked}");
        let invite = slack(200, &error("not_in_channel"), None).unwrap_err();
        assert!(invite.to_string().contains("/invite"), "{invite}");
        let html = slack(200, "<html>proxy</html>", None).unwrap_err();
        assert!(html.to_string().contains("not a Web API answer"), "{html}");
    }

    #[test]
    fn only_message_not_found_says_the_message_is_gone() {
        assert!(gone(&error("message_not_found")));
        for other in [
            error("cant_update_message"),
            error("edit_window_closed"),
            error("channel_not_found"),
            r#"{"ok":true,"ts":"1.2"}"#.to_owned(),
            "<html>404</html>".to_owned(),
        ] {
            assert!(!gone(&other), "{other}");
        }
    }
}
