//! Every HTTP status GitHub or Bitbucket may answer is classified exactly as the one
//! classifier says, through the real octocrab and reqwest paths (a table over the statuses).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use run_notifier::failure::classify_response;
use serde_json::json;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::providers::{build, deliver};
use crate::support::{Spec, bitbucket_status, event, github_status};

const STATUSES: [u16; 18] = [
    400, 401, 402, 403, 404, 405, 408, 409, 410, 413, 422, 425, 429, 500, 501, 502, 503, 504,
];

/// Answers with the status named by the repository (`acme/s422` gets a 422).
struct StatusFromRepo;

impl Respond for StatusFromRepo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segment = request
            .url
            .path_segments()
            .unwrap()
            .find_map(|s| s.strip_prefix('s').and_then(|n| n.parse::<u16>().ok()))
            .unwrap();
        ResponseTemplate::new(segment).set_body_json(json!({"message": "nope"}))
    }
}

async fn table(spec: impl Fn(&MockServer) -> Spec, host: &str) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/s[0-9]{3}/"))
        .respond_with(StatusFromRepo)
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    for status in STATUSES {
        let mut run = event();
        run["data"]["commit"]["remoteOrigin"] = json!(format!("https://{host}/acme/s{status}"));
        let got = deliver(&integration, &run).await.unwrap_err();
        let expected = classify_response(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            "nope",
            chrono::Utc::now(),
        )
        .unwrap_err();
        assert_eq!(got.kind(), expected.kind(), "HTTP {status}: {got}");
        assert!(
            got.to_string().starts_with(&format!("HTTP {status}")),
            "{got}"
        );
    }
}

#[tokio::test]
async fn github_answers_are_classified_like_every_other_answer() {
    table(
        |server| {
            github_status("gh", &server.uri())
                .with("rate_limit", json!({"per_minute": 6000, "burst": 100}))
        },
        "github.com",
    )
    .await;
}

#[tokio::test]
async fn bitbucket_answers_are_classified_like_every_other_answer() {
    table(
        |server| {
            bitbucket_status("bb", &server.uri())
                .with("auth", json!({"token": "t"}))
                .with("rate_limit", json!({"per_minute": 6000, "burst": 100}))
        },
        "bitbucket.org",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_github_or_bitbucket_is_a_transient_failure_saying_so() {
    // Nothing listens on port 9 of this machine (discard): the connection is refused.
    for (spec, on_bitbucket) in [
        (
            github_status("gh", "http://127.0.0.1:9")
                .with("auth", json!({"token": "ghp_unreachable"})),
            false,
        ),
        (
            bitbucket_status("bb", "http://127.0.0.1:9")
                .with("auth", json!({"token": "bb_unreachable"})),
            true,
        ),
    ] {
        let integration = build(spec);
        let mut run = event();
        if on_bitbucket {
            run["data"]["commit"]["remoteOrigin"] = json!("https://bitbucket.org/acme/web-app");
        }
        let error = deliver(&integration, &run).await.unwrap_err();
        assert_eq!(
            error.kind(),
            Some(run_notifier::failure::FailureKind::Transient),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("connect"), "{message}");
        assert!(!message.contains("unreachable"), "{message}");
    }
}
