//! The comment and note searches edit only what the worker wrote: a person's comment that holds
//! the run's marker (quoted, or pasted) is left alone and a comment of our own is posted; our
//! own marked comment is edited. Who "we" are is the token's user (`GET /user`), asked once;
//! a failed lookup is classified as any answer is. (A GitHub App's bot: `github_app.rs`.)

use run_notifier::failure::FailureKind;
use run_notifier::integrations::Receipt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_gitlab::{BOT_ID, Notes, Paging, REVIEWER_ID, gitlab_event};
use crate::support::providers::{build, deliver, json_of, requests};
use crate::support::{event, github_pr_comment, gitlab_mr_note};

const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";

fn marker_of(run: &Value) -> String {
    format!(
        "<!-- run-notifier:run={} -->",
        run["data"]["runId"].as_str().unwrap()
    )
}

/// A GitHub whose token's user is `ci-bot` and whose PR #42 has `comments`; posting answers
/// comment 900.
async fn github_with(comments: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "ci-bot"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(comments))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 900})))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 0})))
        .mount(&server)
        .await;
    server
}

async fn patches(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.method.as_str() == "PATCH")
        .map(|request| request.url.path().to_owned())
        .collect()
}

#[tokio::test]
async fn a_persons_comment_holding_the_runs_marker_is_left_alone_and_a_new_comment_is_posted() {
    let run = event();
    let quoted = format!("> Cancelled by jane.doe\n> {}\nwhy?", marker_of(&run));
    let server = github_with(json!([
        {"id": 11, "body": quoted, "user": {"login": "octocat"}},
        {"id": 12, "body": "deleted account", "user": null},
    ]))
    .await;
    let integration = build(github_pr_comment("gh-comment", &server.uri()));

    let receipt = deliver(&integration, &run).await.unwrap();

    assert_eq!(receipt, Receipt::Sent("posted comment 900 on #42".into()));
    assert!(
        patches(&server).await.is_empty(),
        "octocat's comment was not edited"
    );
    let posted = requests(&server, "POST", COMMENTS_42).await;
    assert!(
        json_of(&posted[0])["body"]
            .as_str()
            .unwrap()
            .ends_with(&marker_of(&run))
    );
}

#[tokio::test]
async fn our_own_marked_comment_is_edited_and_who_we_are_is_asked_once() {
    let run = event();
    let marker = marker_of(&run);
    let server = github_with(json!([
        {"id": 11, "body": format!("copied: {marker}"), "user": {"login": "octocat"}},
        {"id": 12, "body": format!("Cancelled by jane.doe\n\n{marker}"), "user": {"login": "CI-Bot"}},
    ]))
    .await;
    let integration = build(github_pr_comment("gh-comment", &server.uri()));

    for _ in 0..2 {
        let receipt = deliver(&integration, &run).await.unwrap();
        assert_eq!(receipt, Receipt::Sent("updated comment 12 on #42".into()));
    }

    assert_eq!(
        patches(&server).await,
        ["/repos/acme/web-app/issues/comments/12"; 2]
    );
    assert!(requests(&server, "POST", COMMENTS_42).await.is_empty());
    assert_eq!(requests(&server, "GET", "/user").await.len(), 1, "kept");
}

#[tokio::test]
async fn a_failed_lookup_of_who_we_are_fails_the_delivery_as_classified_and_is_asked_again() {
    let run = event();
    let marker = marker_of(&run);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let comments = json!([{"id": 12, "body": marker, "user": {"login": "ci-bot"}}]);
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(comments))
        .mount(&server)
        .await;
    let integration = build(github_pr_comment("gh-comment", &server.uri()));

    let unavailable = deliver(&integration, &run).await.unwrap_err();
    assert_eq!(
        unavailable.kind(),
        Some(FailureKind::Transient),
        "{unavailable}"
    );
    assert!(
        unavailable
            .to_string()
            .starts_with("cannot tell which comments are ours (GET /user): HTTP 503"),
        "{unavailable}"
    );
    let rejected = deliver(&integration, &run).await.unwrap_err();
    assert_eq!(rejected.kind(), Some(FailureKind::Permanent), "{rejected}");
    assert!(
        rejected.to_string().contains("Bad credentials"),
        "{rejected}"
    );
    assert!(!rejected.to_string().contains("ghp_test_token"));
    assert_eq!(
        requests(&server, "GET", "/user").await.len(),
        2,
        "a failure is not kept"
    );
    let writes = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.method.as_str() != "GET")
        .count();
    assert_eq!(
        writes, 0,
        "nothing is written without knowing whose comment it is"
    );
}

#[tokio::test]
async fn a_persons_gitlab_note_holding_the_runs_marker_is_left_alone_and_ours_is_edited() {
    let server = MockServer::start().await;
    let notes = Notes::new(4, 2, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let run = gitlab_event(event());
    let marker = marker_of(&run);
    let persons = notes.add(REVIEWER_ID, &format!("quoting the bot: {marker}"));
    let integration = build(gitlab_mr_note(
        "gl-note",
        &format!("{}/api/v4", server.uri()),
    ));

    let first = deliver(&integration, &run).await.unwrap();
    let second = deliver(&integration, &run).await.unwrap();

    let marked = notes.with_marker(&marker);
    assert_eq!(marked.len(), 2, "{marked:?}");
    let (person, ours) = (&marked[0], &marked[1]);
    assert_eq!((person.id, person.edits), (persons, 0), "never edited");
    assert_eq!((ours.author, ours.edits), (BOT_ID, 1));
    assert_eq!(
        first,
        Receipt::Sent(format!("posted note {} on !42", ours.id))
    );
    assert_eq!(
        second,
        Receipt::Sent(format!("updated note {} on !42", ours.id))
    );
    assert_eq!(
        requests(&server, "GET", "/api/v4/user").await.len(),
        1,
        "kept"
    );
}
