//! GitHub failures end to end through RabbitMQ: a rate-limited 403 is retried when the limit
//! resets (clamped to `max_retry_after`), a 422 is dead-lettered at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use run_notifier::config::HumanDuration;
use run_notifier::protocol::{HEADER_ATTEMPT, HEADER_ERROR, HEADER_INTEGRATION};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{ScheduledRetry, TestApp, event, github_status, wait_until};

const STATUS_PATH: &str = "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8";

/// GitHub's primary rate limit on the first request (reset `reset_in` seconds after it
/// arrives), then success; records when each request arrived.
struct RateLimitedOnce {
    reset_in: i64,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for RateLimitedOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        arrivals.push(Instant::now());
        if arrivals.len() > 1 {
            return ResponseTemplate::new(201).set_body_json(json!({"id": 1}));
        }
        let reset = chrono::Utc::now().timestamp() + self.reset_in;
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset.to_string().as_str())
            .set_body_json(json!({"message": "API rate limit exceeded for installation ID 1."}))
    }
}

/// Publishes one event to a worker whose GitHub is rate limited once; returns the retry as
/// the worker scheduled it and the wait between the two attempts GitHub saw.
async fn wait_after_rate_limit(
    reset_in: i64,
    max_retry_after: HumanDuration,
) -> (ScheduledRetry, Duration) {
    let mut app = TestApp::new().await;
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(RateLimitedOnce {
            reset_in,
            arrivals: Arc::clone(&arrivals),
        })
        .mount(&server)
        .await;
    app.spawn_worker(|config| {
        config.add(github_status("gh-status", &server.uri()).with("timeout", "5s"));
        config.retry.max_retry_after = max_retry_after;
    })
    .await;

    app.publish(&event()).await;
    let retry = app.wait_for_scheduled_retry(2).await;
    wait_until("GitHub got the retry", Duration::from_secs(20), || async {
        arrivals.lock().unwrap().len() >= 2
    })
    .await;

    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 2, "one retry, then success");
    (retry, arrivals[1] - arrivals[0])
}

#[tokio::test]
async fn a_rate_limited_403_is_retried_when_the_limit_resets() {
    let (retry, waited) = wait_after_rate_limit(4, HumanDuration::secs(10)).await;
    // The reset is in whole seconds: 4 s after the first attempt, less its fraction.
    assert_eq!(
        (retry.integration.as_str(), retry.attempt),
        ("gh-status", 2)
    );
    assert!(
        retry.delay > Duration::from_secs(2) && retry.delay <= Duration::from_secs(4),
        "scheduled {:?} out",
        retry.delay
    );
    assert!(waited >= Duration::from_secs(3), "retried after {waited:?}");
}

#[tokio::test]
async fn a_rate_limit_reset_far_away_is_clamped_to_max_retry_after() {
    let (retry, waited) = wait_after_rate_limit(3_600, HumanDuration::secs(2)).await;
    assert_eq!(retry.delay, Duration::from_secs(2), "clamped, not an hour");
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
}

#[tokio::test]
async fn a_422_from_github_is_dead_lettered_after_one_attempt() {
    let mut app = TestApp::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Status", "code": "custom", "message": "context is too long"}],
        })))
        .mount(&server)
        .await;
    app.spawn_worker(|config| {
        config.add(github_status("gh-strict", &server.uri()));
    })
    .await;

    app.publish(&event()).await;
    let letter = app.wait_for_dead_letters(1).await.remove(0);

    assert_eq!(
        letter.header(HEADER_INTEGRATION).as_deref(),
        Some("gh-strict")
    );
    assert_eq!(letter.number(HEADER_ATTEMPT), Some(1));
    let error = letter.header(HEADER_ERROR).unwrap();
    assert!(
        error.starts_with("HTTP 422 Unprocessable Entity: Validation Failed: "),
        "{error}"
    );
    assert!(error.contains("context is too long"), "{error}");
    app.stop_worker().await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
