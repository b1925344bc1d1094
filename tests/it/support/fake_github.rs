//! GitHub as a GitHub App meets it: a wiremock server whose token exchange hands out numbered
//! installation tokens, the test App's credentials, and a reader of the App's JWT.

use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The test App's private key (made for the tests; it signs nothing real). Absolute, so that a
/// config naming it works from the test's own directory too (the CLI resolves relative paths
/// against the config file's folder).
pub const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/github-app-test-key.pem"
);
/// The route that exchanges the App's JWT for a token of installation 4242.
pub const EXCHANGE: &str = "/app/installations/4242/access_tokens";
/// The commit status route of the example event's commit.
pub const STATUS_PATH: &str =
    "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8";

/// The `auth:` of an integration that authenticates as the test App (id 123456).
pub fn app_auth() -> Value {
    json!({"app_id": 123456, "installation_id": 4242, "private_key_file": KEY_FILE})
}

/// Hands out installation tokens `ghs_installation_1`, `_2`, …, each valid for an hour, but
/// the first for only `first_lifetime` seconds.
pub struct Tokens {
    issued: Mutex<u32>,
    first_lifetime: i64,
}

impl Tokens {
    /// Every token valid for an hour.
    pub fn lasting_an_hour() -> Self {
        Self::first_expiring_in(3_600)
    }

    /// The first token valid for `seconds`, the next ones for an hour.
    pub fn first_expiring_in(seconds: i64) -> Self {
        Self {
            issued: Mutex::new(0),
            first_lifetime: seconds,
        }
    }
}

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut issued = self.issued.lock().unwrap();
        *issued += 1;
        let lifetime = if *issued == 1 {
            self.first_lifetime
        } else {
            3_600
        };
        let expires_at = chrono::Utc::now() + chrono::Duration::seconds(lifetime);
        ResponseTemplate::new(201).set_body_json(json!({
            "token": format!("ghs_installation_{issued}"),
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": {"statuses": "write", "pull_requests": "write"},
            "repository_selection": "selected",
        }))
    }
}

/// A GitHub whose token exchange answers with `tokens`; tests mount the API routes they need.
pub async fn start(tokens: Tokens) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE))
        .respond_with(tokens)
        .mount(&server)
        .await;
    server
}

/// The claims of the App's JWT in an `Authorization: Bearer <jwt>` value.
pub fn jwt_claims(authorization: &str) -> Value {
    let jwt = authorization.strip_prefix("Bearer ").expect("a bearer JWT");
    let claims = jwt.split('.').nth(1).expect("header.claims.signature");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
