//! A GitHub App's installation token revoked before it expires: the 401 brings one fresh token
//! and one more try, as octocrab did when it sent the requests itself.

use std::sync::Mutex;

use crate::support::event;
use crate::support::github_status;
use crate::support::providers::{build, deliver, header, requests};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY_FILE: &str = "tests/fixtures/github-app-test-key.pem";
const EXCHANGE: &str = "/app/installations/4242/access_tokens";
const STATUS_PATH: &str = "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8";

/// Hands out installation tokens valid for an hour, numbered.
struct Tokens(Mutex<u32>);

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut issued = self.0.lock().unwrap();
        *issued += 1;
        let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
        ResponseTemplate::new(201).set_body_json(json!({
            "token": format!("ghs_installation_{issued}"),
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"statuses": "write"},
            "repository_selection": "selected",
        }))
    }
}

/// Refuses the first token as revoked, takes any other.
struct RevokedFirst;

impl Respond for RevokedFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if header(request, "authorization") == "Bearer ghs_installation_1" {
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"}))
        } else {
            ResponseTemplate::new(201).set_body_json(json!({"id": 1}))
        }
    }
}

#[tokio::test]
async fn a_revoked_installation_token_is_replaced_once_and_the_request_repeated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE))
        .respond_with(Tokens(Mutex::new(0)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(RevokedFirst)
        .mount(&server)
        .await;
    let status = build(github_status("gh-app", &server.uri()).with(
        "auth",
        json!({"app_id": 123456, "installation_id": 4242, "private_key_file": KEY_FILE}),
    ));

    deliver(&status, &event()).await.unwrap();

    assert_eq!(requests(&server, "POST", EXCHANGE).await.len(), 2);
    let used: Vec<String> = requests(&server, "POST", STATUS_PATH)
        .await
        .iter()
        .map(|r| header(r, "authorization"))
        .collect();
    assert_eq!(
        used,
        ["Bearer ghs_installation_1", "Bearer ghs_installation_2"]
    );
}
