//! Every HTTP status GitHub or Bitbucket may answer is classified exactly as the one
//! classifier says, through the real octocrab and reqwest paths (a table over the statuses).

use crate::support::providers;

use providers::{build, deliver, event};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use run_notifier::failure::classify_response;
use serde_json::json;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

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

async fn table(integration_yaml: impl Fn(&MockServer) -> String, host: &str) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/s[0-9]{3}/"))
        .respond_with(StatusFromRepo)
        .mount(&server)
        .await;
    let integration = build(&integration_yaml(&server));
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
            format!(
                "  - name: gh\n    type: github_status\n    api_url: {}\n    auth: {{token: t}}\n    rate_limit: {{per_minute: 6000, burst: 100}}\n",
                server.uri()
            )
        },
        "github.com",
    )
    .await;
}

#[tokio::test]
async fn bitbucket_answers_are_classified_like_every_other_answer() {
    table(
        |server| {
            format!(
                "  - name: bb\n    type: bitbucket_status\n    api_url: {}\n    auth: {{token: t}}\n    rate_limit: {{per_minute: 6000, burst: 100}}\n",
                server.uri()
            )
        },
        "bitbucket.org",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_github_or_bitbucket_is_a_transient_failure_saying_so() {
    // Nothing listens on port 9 of this machine (discard): the connection is refused.
    for yaml in [
        "  - name: gh\n    type: github_status\n    api_url: http://127.0.0.1:9\n    auth: {token: ghp_unreachable}\n",
        "  - name: bb\n    type: bitbucket_status\n    api_url: http://127.0.0.1:9\n    auth: {token: bb_unreachable}\n",
    ] {
        let integration = build(yaml);
        let mut run = event();
        if yaml.contains("bitbucket") {
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
