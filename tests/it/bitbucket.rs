//! `bitbucket_status` against a wiremock Bitbucket: state by the outcome rule, a key that is
//! short and stable per project, basic and bearer auth, and failures classified.

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

/// A `bitbucket_status` with username and app password `ci-bot`:`app-password-1`.
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
async fn basic_and_bearer_credentials_are_sent_as_authorization() {
    let server = bitbucket(ResponseTemplate::new(201)).await;
    let basic = build(spec("basic", &server));
    let bearer = build(spec("bearer", &server).with("auth", json!({"token": "repo-access-token"})));

    deliver(&basic, &on_bitbucket(event())).await.unwrap();
    deliver(&bearer, &on_bitbucket(event())).await.unwrap();

    let sent = requests(&server, "POST", STATUS_PATH).await;
    assert_eq!(
        header(&sent[0], "authorization"),
        "Basic Y2ktYm90OmFwcC1wYXNzd29yZC0x"
    );
    assert_eq!(
        header(&sent[1], "authorization"),
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
    assert!(!format!("{:?}", requests[0].headers).contains("Y2ktYm90"));
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
    assert!(!error.to_string().contains("app-password-1"));
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
        (json!({}), "needs `username` and `password`"),
        (json!({"username": "u"}), "go together"),
        (
            json!({"username": "u", "password": "hunter2", "token": "t"}),
            "not both",
        ),
        (json!({"user": "u"}), "unknown field `user`"),
    ] {
        let error = config_error(Spec::from(
            json!({"name": "b", "type": "bitbucket_status", "auth": auth}),
        ));
        assert!(error.contains(expected), "{auth}: {error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
