//! `github_pr_comment` finding its pull request: by `data.pullRequest`, or by the open PRs
//! whose head is the run's commit (`preview` of either: `tests/preview_is_request.rs`).

use run_notifier::failure::FailureKind;
use run_notifier::integrations::Receipt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::providers::{build, deliver};
use crate::support::{SHA, Spec, event, github_pr_comment};

const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";

/// `gh-comment` against `server`, with the token `ghp_test_token`.
fn spec(server: &MockServer) -> Spec {
    github_pr_comment("gh-comment", &server.uri())
}

fn comment(id: u64, body: &str) -> Value {
    json!({"id": id, "body": body})
}

#[tokio::test]
async fn without_a_pull_request_number_only_the_open_pr_whose_head_is_the_commit_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web-app/commits/{SHA}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"number": 7, "state": "closed", "head": {"sha": SHA}},
            {"number": 8, "state": "open", "head": {"sha": "0000000000000000000000000000000000000000"}},
            {"number": 9, "state": "open", "head": {"sha": SHA}, "title": "feat"},
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web-app/issues/9/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web-app/issues/9/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(comment(5, "x")))
        .expect(1)
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    let mut run = event();
    run["data"].as_object_mut().unwrap().remove("pullRequest");

    let receipt = deliver(&integration, &run).await.unwrap();
    assert_eq!(receipt, Receipt::Sent("posted comment 5 on #9".into()));
    let all = server.received_requests().await.unwrap();
    assert!(
        all.iter()
            .all(|r| !r.url.path().contains("/issues/7/") && !r.url.path().contains("/issues/8/")),
        "closed or moved-on PRs are left alone"
    );
}

#[tokio::test]
async fn a_commit_without_an_open_pull_request_is_skipped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web-app/commits/{SHA}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"number": 7, "state": "closed", "head": {"sha": SHA}},
        ])))
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    let mut run = event();
    run["data"].as_object_mut().unwrap().remove("pullRequest");

    let receipt = deliver(&integration, &run).await.unwrap();
    assert_eq!(
        receipt,
        Receipt::Skipped(format!("no open pull request has head {SHA}"))
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_lookup_answer_that_is_not_the_expected_json_is_a_transient_failure_saying_so() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web-app/commits/{SHA}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    let mut run = event();
    run["data"].as_object_mut().unwrap().remove("pullRequest");

    let error = deliver(&integration, &run).await.unwrap_err();
    assert_eq!(error.kind(), Some(FailureKind::Transient), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("GitHub answered with unexpected JSON"),
        "{error}"
    );
}

#[tokio::test]
async fn a_known_pull_request_needs_no_sha_but_a_lookup_does() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(201).set_body_json(comment(3, "x")))
        .expect(1)
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    let mut known = event();
    known["data"]["commit"]
        .as_object_mut()
        .unwrap()
        .remove("sha");
    let mut unknown = known.clone();
    unknown["data"]
        .as_object_mut()
        .unwrap()
        .remove("pullRequest");

    assert_eq!(
        deliver(&integration, &known).await.unwrap(),
        Receipt::Sent("posted comment 3 on #42".into())
    );
    assert_eq!(
        deliver(&integration, &unknown).await.unwrap(),
        Receipt::Skipped(
            "the run has neither a pullRequest nor a commit sha to find one by".into()
        )
    );
}
