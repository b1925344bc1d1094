//! A GitHub App's installation token revoked before it expires: the 401 brings one fresh token
//! and one more try, as octocrab did when it sent the requests itself.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::support::event;
use crate::support::fake_github::{self, EXCHANGE, STATUS_PATH, Tokens};
use crate::support::github_status;
use crate::support::providers::{build, deliver, header, requests};

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
    let server = fake_github::start(Tokens::lasting_an_hour()).await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(RevokedFirst)
        .mount(&server)
        .await;
    let status =
        build(github_status("gh-app", &server.uri()).with("auth", fake_github::app_auth()));

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
