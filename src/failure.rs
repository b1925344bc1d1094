//! Why a delivery failed, and the HTTP rules that tell a failure worth retrying from one that is
//! not (kinds whose API answers in its own way build on them in `Kind::classify`).

use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};

/// The kind of a failure, as a bounded metrics label and log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A 5xx, a dropped connection: worth another try.
    Transient,
    /// The receiver asked us to slow down (429, or GitHub's rate-limit 403).
    RateLimited,
    /// No answer within the integration's timeout.
    Timeout,
    /// Retrying cannot help (4xx, a bad request, a rejected credential).
    Permanent,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Timeout => "timeout",
            FailureKind::Permanent => "permanent",
        }
    }
}

/// A delivery that did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying; `retry_after` is the receiver's own wish, if it said one.
    #[error("{message}")]
    Retryable {
        kind: FailureKind,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help.
    #[error("{message}")]
    Permanent { message: String },
    /// The delivery was aborted (shutdown, or an operator canceled the run's deliveries).
    #[error("canceled before it finished")]
    Canceled,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Retryable {
            kind: FailureKind::Transient,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// The failure's kind; `None` for a cancellation, which is no failure of the receiver.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            DeliveryError::Retryable { kind, .. } => Some(*kind),
            DeliveryError::Permanent { .. } => Some(FailureKind::Permanent),
            DeliveryError::Canceled => None,
        }
    }

    /// The same failure, classified the same, with `what` was being done in front of its
    /// message (`cannot tell which comments are ours: HTTP 401 …`).
    pub fn context(self, what: &str) -> Self {
        match self {
            DeliveryError::Retryable {
                kind,
                message,
                retry_after,
            } => DeliveryError::Retryable {
                kind,
                message: format!("{what}: {message}"),
                retry_after,
            },
            DeliveryError::Permanent { message } => DeliveryError::Permanent {
                message: format!("{what}: {message}"),
            },
            DeliveryError::Canceled => DeliveryError::Canceled,
        }
    }
}

/// How much of a response body goes into an error message.
const BODY_EXCERPT: usize = 300;

/// Classifies an HTTP answer: `Ok` for 2xx, otherwise a transient or permanent failure.
///
/// Transient: 408, 425, 429, 5xx but 501, and a 403 that carries rate-limit headers
/// (GitHub's secondary limits). Everything else that is not 2xx is permanent, 3xx included,
/// since redirects are never followed.
pub fn classify_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let mut message = format!("HTTP {status}");
    let excerpt = excerpt(body);
    if !excerpt.is_empty() {
        message = format!("{message}: {excerpt}");
    }
    let wait = requested_wait(headers, now);
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (wait.is_some() || header(headers, "x-ratelimit-remaining") == Some("0")));
    let kind = if rate_limited {
        FailureKind::RateLimited
    } else if matches!(status.as_u16(), 408 | 425)
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
    {
        FailureKind::Transient
    } else if status.is_redirection() {
        let target = header(headers, LOCATION.as_str()).unwrap_or("nowhere");
        return Err(DeliveryError::permanent(format!(
            "{message} (redirect to {target} not followed: configure the final URL)"
        )));
    } else if status == StatusCode::UNAUTHORIZED {
        return Err(DeliveryError::permanent(format!(
            "{message} (the credential was rejected: check the token)"
        )));
    } else {
        return Err(DeliveryError::permanent(message));
    };
    Err(DeliveryError::Retryable {
        kind,
        message,
        retry_after: wait,
    })
}

/// Classifies a request that got no usable answer: all are transient but malformed requests.
pub fn classify_transport(err: &reqwest::Error) -> DeliveryError {
    let message = error_chain(err);
    if err.is_builder() {
        DeliveryError::permanent(message)
    } else if err.is_timeout() {
        DeliveryError::Retryable {
            kind: FailureKind::Timeout,
            message,
            retry_after: None,
        }
    } else {
        DeliveryError::transient(message)
    }
}

/// An error and its causes, as one line. Callers strip URLs first (they may hold tokens).
pub fn error_chain(err: &dyn StdError) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// `Retry-After` (seconds or an HTTP date), else GitHub's `x-ratelimit-reset` (Unix seconds).
pub fn requested_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let until = |at: DateTime<Utc>| (at - now).to_std().unwrap_or(Duration::ZERO);
    if let Some(value) = header(headers, RETRY_AFTER.as_str()) {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(value) {
            return Some(until(at.with_timezone(&Utc)));
        }
    }
    let reset = header(headers, "x-ratelimit-reset")?.parse::<i64>().ok()?;
    DateTime::from_timestamp(reset, 0).map(until)
}

/// A header's value, trimmed, when it is text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The start of a body, cut at [`BODY_EXCERPT`] characters, for an error message.
pub fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn classify(status: u16, headers: &[(&'static str, &str)]) -> Result<(), DeliveryError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        classify_response(StatusCode::from_u16(status).unwrap(), &map, "", now())
    }

    fn kind(status: u16) -> Option<FailureKind> {
        classify(status, &[]).err().and_then(|e| e.kind())
    }

    #[test]
    fn every_status_code_has_one_class() {
        use FailureKind::*;
        for status in 100..=599u16 {
            let expected = match status {
                200..=299 => None,
                429 => Some(RateLimited),
                408 | 425 | 500 | 502..=599 => Some(Transient),
                _ => Some(Permanent),
            };
            assert_eq!(kind(status), expected, "HTTP {status}");
        }
    }

    #[test]
    fn teams_answers_200_and_202_are_success() {
        for status in [200, 202] {
            let answer = classify_response(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                "",
                now(),
            );
            assert_eq!(answer, Ok(()), "HTTP {status}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_is_read() {
        fn wait(headers: &[(&'static str, &str)]) -> Option<Duration> {
            match classify(429, headers) {
                Err(DeliveryError::Retryable { retry_after, .. }) => retry_after,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(wait(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        let date = (now() + chrono::Duration::seconds(90)).to_rfc2822();
        assert_eq!(
            wait(&[("retry-after", &date)]),
            Some(Duration::from_secs(90))
        );
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn github_rate_limit_403_waits_until_the_reset() {
        let reset = (now().timestamp() + 120).to_string();
        let error = classify(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
        );
        assert_eq!(
            error.unwrap_err(),
            DeliveryError::Retryable {
                kind: FailureKind::RateLimited,
                message: "HTTP 403 Forbidden".into(),
                retry_after: Some(Duration::from_secs(120)),
            }
        );
        assert_eq!(kind(403), Some(FailureKind::Permanent));
        assert_eq!(
            classify(403, &[("retry-after", "60")]).unwrap_err().kind(),
            Some(FailureKind::RateLimited)
        );
    }

    #[test]
    fn messages_explain_redirects_and_rejected_credentials() {
        let redirect = classify(302, &[("location", "https://elsewhere.example/")]).unwrap_err();
        assert!(
            redirect
                .to_string()
                .contains("redirect to https://elsewhere.example/ not followed")
        );
        assert!(
            classify(401, &[])
                .unwrap_err()
                .to_string()
                .contains("credential was rejected")
        );
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "é".repeat(1_000);
        let error = classify_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body, now());
        let message = error.unwrap_err().to_string();
        assert!(message.starts_with("HTTP 400 Bad Request: éé"));
        assert_eq!(
            message.chars().count(),
            "HTTP 400 Bad Request: ".len() + BODY_EXCERPT + 1
        );
    }
}
