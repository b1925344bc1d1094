//! `bitbucket_status` against a wiremock Bitbucket: state by the outcome rule, a key that is
//! short and stable per project, both token kinds (API token: basic auth with the account e-mail;
//! access token: bearer), and failures classified.

use run_notifier::failure::DeliveryError;
use run_notifier::integrations::Receipt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::providers::{
    build, config_error, deliver, header, json_of, notification, parse, requests,
};
use crate::support::{Spec, bitbucket_status, event};

const STATUS_PATH: &str =
    "/2.0/repositories/acme/web-app/commit/5a7edc9a156e417068060d67109021351fc7d9b8/statuses/build";

/// A `bitbucket_status` with an Atlassian API token: `ci-bot@example.com`:`api-token-1`.
fn spec(name: &str, server: &MockServer) -> Spec {
    bitbucket_status(name, &server.uri())
}

async fn bitbucket(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn on_bitbucket(mut event: Value) -> Value {
    event["data"]["commit"]["remoteOrigin"] = json!("git@bitbucket.org:Acme/Web-App.git");
    event
}

#[tokio::test]
async fn the_state_follows_the_outcome_rule_and_the_body_names_the_run() {
    let server = bitbucket(ResponseTemplate::new(201)).await;
    let status = build(spec("bitbucket", &server));
    let failed = on_bitbucket(event());
    let mut passed = on_bitbucket(event());
    passed["data"]["results"]["failures"] = json!(0);

    let receipt = deliver(&status, &failed).await.unwrap();
    assert_eq!(
        receipt,
        Receipt::Sent(format!("HTTP 201 from {STATUS_PATH}"))
    );
    deliver(&status, &passed).await.unwrap();

    let sent = requests(&server, "POST", STATUS_PATH).await;
    assert_eq!(sent.len(), 2);
    let first = json_of(&sent[0]);
    assert_eq!(first["state"], "FAILED");
    assert_eq!(first["description"], "Cancelled by jane.doe");
    assert_eq!(first["name"], "web-app");
    assert_eq!(first["url"], failed["data"]["runUrl"]);
    assert_eq!(first["key"], "bitbucket-Xm2k9");
    assert_eq!(json_of(&sent[1])["state"], "SUCCESSFUL");
    assert_eq!(
        json_of(&sent[1])["key"],
        first["key"],
        "one key per project"
    );
}

#[tokio::test]
async fn long_keys_are_hashed_to_40_characters_and_stay_stable_per_project() {
    let server = bitbucket(ResponseTemplate::new(201)).await;
    let name = "bitbucket-build-status-for-the-platform-team";
    let status = build(spec(name, &server));
    let mut other_project = on_bitbucket(event());
    other_project["data"]["projectId"] = json!("Other1");

    deliver(&status, &on_bitbucket(event())).await.unwrap();
    deliver(&status, &on_bitbucket(event())).await.unwrap();
    deliver(&status, &other_project).await.unwrap();

    let keys: Vec<String> = requests(&server, "POST", STATUS_PATH)
        .await
        .iter()
        .map(|r| json_of(r)["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(keys.iter().all(|k| k.len() <= 40), "{keys:?}");
    assert_eq!(keys[0], keys[1], "two runs of one project share the key");
    assert_ne!(keys[0], keys[2], "another project gets its own key");
}

#[tokio::test]
async fn api_tokens_send_basic_auth_with_the_email_and_access_tokens_a_bearer() {
    let server = bitbucket(ResponseTemplate::new(201)).await;
    let api_token = build(spec("api-token", &server));
    let access_token =
        build(spec("access-token", &server).with("auth", json!({"token": "repo-access-token"})));
    let old_keys = build(spec("old-keys", &server).with(
        "auth",
        json!({"username": "ci-bot@example.com", "password": "api-token-1"}),
    ));

    deliver(&api_token, &on_bitbucket(event())).await.unwrap();
    deliver(&access_token, &on_bitbucket(event()))
        .await
        .unwrap();
    deliver(&old_keys, &on_bitbucket(event())).await.unwrap();

    let sent = requests(&server, "POST", STATUS_PATH).await;
    assert_eq!(sent.len(), 3);
    // base64("ci-bot@example.com:api-token-1")
    let basic = "Basic Y2ktYm90QGV4YW1wbGUuY29tOmFwaS10b2tlbi0x";
    assert_eq!(header(&sent[0], "authorization"), basic);
    assert_eq!(
        header(&sent[1], "authorization"),
        "Bearer repo-access-token"
    );
    assert_eq!(header(&sent[2], "authorization"), basic);
}

#[tokio::test]
async fn a_rejected_access_token_is_permanent_and_never_printed() {
    let server = bitbucket(
        ResponseTemplate::new(403)
            .set_body_string(r#"{"type": "error", "error": {"message": "Token is invalid"}}"#),
    )
    .await;
    let status = build(spec("bearer", &server).with("auth", json!({"token": "repo-access-token"})));

    let error = deliver(&status, &on_bitbucket(event())).await.unwrap_err();

    assert!(matches!(error, DeliveryError::Permanent { .. }), "{error}");
    assert!(error.to_string().contains("Token is invalid"), "{error}");
    assert!(!error.to_string().contains("repo-access-token"));
    let sent = requests(&server, "POST", STATUS_PATH).await;
    assert_eq!(
        header(&sent[0], "authorization"),
        "Bearer repo-access-token"
    );
}

#[tokio::test]
async fn preview_shows_the_request_with_the_credential_marked_sensitive() {
    let server = bitbucket(ResponseTemplate::new(201)).await;
    let status = build(spec("bitbucket", &server));
    let event = parse(&on_bitbucket(event()));

    let requests = status
        .preview(&notification(&status, &event))
        .await
        .unwrap()
        .requests();

    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), STATUS_PATH);
    assert!(requests[0].headers["authorization"].is_sensitive());
    assert!(!format!("{:?}", requests[0].headers).contains("Y2ktYm90QGV4"));
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing sent"
    );
}

#[tokio::test]
async fn runs_on_github_are_skipped_and_rejections_are_permanent() {
    let server = bitbucket(ResponseTemplate::new(401).set_body_string("Unauthorized")).await;
    let status = build(spec("bitbucket", &server));

    match deliver(&status, &event()).await.unwrap() {
        Receipt::Skipped(reason) => assert!(reason.contains("not on bitbucket.org"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let error = deliver(&status, &on_bitbucket(event())).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Permanent { .. }));
    assert!(
        error.to_string().contains("credential was rejected"),
        "{error}"
    );
    assert!(!error.to_string().contains("api-token-1"));
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.url.path() == STATUS_PATH)
    );
}

#[test]
fn bad_bitbucket_auth_is_explained_without_the_secret() {
    for (auth, expected) in [
        (json!({}), "needs `email` and `api_token`"),
        (json!({"email": "u@example.com"}), "go together"),
        (
            json!({"email": "u@example.com", "api_token": "hunter2", "token": "t"}),
            "not both",
        ),
        (json!({"user": "u"}), "unknown field `user`"),
        // An App Password setup: a Bitbucket username, which API tokens do not take.
        (
            json!({"username": "ci-bot", "password": "hunter2"}),
            "stopped working on 2026-06-09",
        ),
    ] {
        let error = config_error(Spec::from(
            json!({"name": "b", "type": "bitbucket_status", "auth": auth}),
        ));
        assert!(error.contains(expected), "{auth}: {error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
