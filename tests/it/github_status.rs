//! `github_status` against a wiremock GitHub: the state follows the outcome rule, description
//! and context come from their templates, long descriptions are cut, failures are classified.

use std::time::Duration;

use run_notifier::failure::{DeliveryError, FailureKind};
use run_notifier::integrations::Receipt;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::providers::{
    build, build_errors, config_error, deliver, header, json_of, notification, parse, requests,
};
use crate::support::{SHA, Spec, event, github_status};

const STATUS_PATH: &str = "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8";

/// `gh-status` against `server`, with the token `ghp_test_token`.
fn spec(server: &MockServer) -> Spec {
    github_status("gh-status", &server.uri())
}

async fn github(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"id": 1, "state": "failure"}))
}

#[tokio::test]
async fn the_state_is_failure_with_failed_tests_and_success_without() {
    let server = github(created()).await;
    let status = build(spec(&server));

    let failed = event();
    let receipt = deliver(&status, &failed).await.unwrap();
    assert!(matches!(receipt, Receipt::Sent(_)), "{receipt:?}");
    let mut passed = event();
    passed["data"]["results"]["failures"] = json!(0);
    deliver(&status, &passed).await.unwrap();

    let sent = requests(&server, "POST", STATUS_PATH).await;
    assert_eq!(sent.len(), 2);
    let first = json_of(&sent[0]);
    assert_eq!(first["state"], "failure");
    assert_eq!(first["description"], "Cancelled by jane.doe");
    assert_eq!(first["context"], "run-notifier/Xm2k9");
    assert_eq!(first["target_url"], failed["data"]["runUrl"]);
    assert_eq!(json_of(&sent[1])["state"], "success");
    assert_eq!(header(&sent[0], "authorization"), "Bearer ghp_test_token");
    assert_eq!(header(&sent[0], "accept"), "application/vnd.github+json");
    assert_eq!(header(&sent[0], "x-github-api-version"), "2022-11-28");
}

#[tokio::test]
async fn description_and_context_come_from_their_templates() {
    let server = github(created()).await;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("status.hbs");
    std::fs::write(
        &template,
        "{{actor}} stopped {{projectName}} ({{reason}})\n",
    )
    .unwrap();
    let status = build(
        spec(&server)
            .with("description_template", template.display().to_string())
            .with("context", "ci/{{projectName}}"),
    );

    deliver(&status, &event()).await.unwrap();

    let sent = json_of(&requests(&server, "POST", STATUS_PATH).await[0]);
    assert_eq!(sent["description"], "jane.doe stopped web-app (user)");
    assert_eq!(sent["context"], "ci/web-app");
}

#[tokio::test]
async fn long_descriptions_are_cut_to_140_characters_with_an_ellipsis() {
    let server = github(created()).await;
    let status = build(spec(&server));
    let mut long = event();
    long["data"]["cancellation"]["actor"] = json!("é".repeat(300));

    deliver(&status, &long).await.unwrap();

    let sent = json_of(&requests(&server, "POST", STATUS_PATH).await[0]);
    let description = sent["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 140);
    assert!(description.starts_with("Cancelled by éé"));
    assert!(description.ends_with('…'));
}

#[tokio::test]
async fn runs_without_a_commit_or_on_another_host_are_skipped_without_a_request() {
    let server = github(created()).await;
    let status = build(spec(&server));
    let mut no_commit = event();
    no_commit["data"].as_object_mut().unwrap().remove("commit");
    let mut elsewhere = event();
    elsewhere["data"]["commit"]["remoteOrigin"] = json!("git@bitbucket.org:acme/web-app.git");
    let mut enterprise = event();
    enterprise["data"]["commit"]["remoteOrigin"] = json!("https://github.acme.corp/acme/web-app");

    for (event, reason) in [
        (no_commit, "no commit sha"),
        (elsewhere, "on bitbucket.org, not on github.com"),
        (enterprise, "on github.acme.corp"),
    ] {
        match deliver(&status, &event).await.unwrap() {
            Receipt::Skipped(text) => assert!(text.contains(reason), "{text}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(requests(&server, "POST", STATUS_PATH).await.is_empty());
}

#[tokio::test]
async fn an_enterprise_host_gets_statuses_through_its_own_api_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v3/repos/platform/api/statuses/{SHA}")))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    let status = build(
        github_status("ghe", &format!("{}/api/v3", server.uri())).with("host", "github.acme.corp"),
    );
    let mut on_enterprise = event();
    on_enterprise["data"]["commit"]["remoteOrigin"] =
        json!("git@github.acme.corp:platform/api.git");

    deliver(&status, &on_enterprise).await.unwrap();
}

#[tokio::test]
async fn failures_are_classified_by_status_and_rate_limit_headers() {
    let reset = chrono::Utc::now().timestamp() + 120;
    let cases = [
        (
            ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Status", "code": "custom", "field": "context"}]
            })),
            "HTTP 422 Unprocessable Entity: Validation Failed",
            None,
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
            "the credential was rejected",
            None,
        ),
        (
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
            "HTTP 403 Forbidden: API rate limit exceeded",
            Some(FailureKind::RateLimited),
        ),
        (
            ResponseTemplate::new(502).set_body_string("bad gateway"),
            "HTTP 502 Bad Gateway: bad gateway",
            Some(FailureKind::Transient),
        ),
    ];
    for (response, message, retryable) in cases {
        let server = github(response).await;
        let status = build(spec(&server));
        let error = deliver(&status, &event()).await.unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
        assert!(!error.to_string().contains("ghp_test_token"));
        match (retryable, &error) {
            (None, DeliveryError::Permanent { .. }) => {}
            (
                Some(kind),
                DeliveryError::Retryable {
                    kind: got,
                    retry_after,
                    ..
                },
            ) => {
                assert_eq!(*got, kind);
                if kind == FailureKind::RateLimited {
                    let wait = retry_after.expect("waits for the reset");
                    assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
                }
            }
            _ => panic!("{error:?}"),
        }
        assert_eq!(
            requests(&server, "POST", STATUS_PATH).await.len(),
            1,
            "octocrab must not retry"
        );
    }
}

#[tokio::test]
async fn a_github_that_does_not_answer_in_time_is_a_timeout() {
    let server = github(created().set_delay(Duration::from_secs(5))).await;
    let status = build(spec(&server).with("timeout", "200ms"));
    let error = deliver(&status, &event()).await.unwrap_err();
    assert_eq!(error.kind(), Some(FailureKind::Timeout), "{error}");
}

#[test]
fn bad_github_status_configs_are_explained() {
    let token = json!({"token": "t"});
    for (extra, expected) in [
        (json!({"auth": {}}), "needs a `token`"),
        (
            json!({"auth": token, "api_url": "ftp://x"}),
            "`api_url` must be an http or https URL",
        ),
        (
            json!({"auth": token, "host": "git hub"}),
            "`host` must be a host name",
        ),
        (
            json!({"auth": token, "rate_limit": {"per_minute": 0}}),
            "`rate_limit.per_minute` must be at least 1",
        ),
        (
            json!({"auth": token, "contexts": "x"}),
            "unknown field `contexts`",
        ),
        (
            json!({"auth": {"token": "t", "app": 1}}),
            "unknown field `app`",
        ),
        (json!({"token": "t"}), "missing field `auth`"),
    ] {
        let mut entry = json!({"name": "s", "type": "github_status"});
        entry
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let error = config_error(Spec::from(entry));
        assert!(error.contains(expected), "{extra}: {error}");
    }
}

#[test]
fn a_broken_description_template_stops_the_start_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("status.hbs");
    std::fs::write(&template, "Cancelled by {{actor}}\n{{nope}}\n").unwrap();
    let errors = build_errors(
        github_status("s", "https://api.github.com")
            .with("description_template", template.display().to_string()),
    );
    let text = errors[0].to_string();
    assert!(
        text.contains(&format!("{}:2", template.display())),
        "{text}"
    );
    assert!(text.contains("nope"), "{text}");
}

#[tokio::test]
async fn preview_shows_the_status_request_with_the_token_marked_sensitive() {
    let server = github(created()).await;
    let status = build(spec(&server));
    let event = parse(&event());

    let requests = status
        .preview(&notification(&status, &event))
        .await
        .unwrap()
        .requests();

    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].url.path(), STATUS_PATH);
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["state"], "failure");
    assert!(requests[0].headers["authorization"].is_sensitive());
    assert!(!format!("{:?}", requests[0].headers).contains("ghp_test_token"));
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing sent"
    );
}
