//! GitHub App authentication through octocrab: the App's JWT is exchanged for an installation
//! token, the token is used, and a new one is fetched before the old one expires. The App's
//! comments are its bot's (`<slug>[bot]`, from `GET /app` with the JWT).

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_github::{self, EXCHANGE, KEY_FILE, STATUS_PATH, Tokens, jwt_claims};
use crate::support::providers::{build, config_error, deliver, header, requests};
use crate::support::{event, github_pr_comment, github_status};

const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";

#[tokio::test]
async fn the_app_jwt_is_exchanged_for_an_installation_token_that_is_used_and_refreshed() {
    let server = fake_github::start(Tokens::first_expiring_in(10)).await;
    Mock::given(method("POST"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let status =
        build(github_status("gh-app", &server.uri()).with("auth", fake_github::app_auth()));

    for _ in 0..3 {
        deliver(&status, &event()).await.unwrap();
    }

    let exchanges = requests(&server, "POST", EXCHANGE).await;
    assert_eq!(
        exchanges.len(),
        2,
        "one exchange, then one refresh because the first token expires within 30 s"
    );
    let claims = jwt_claims(&header(&exchanges[0], "authorization"));
    assert_eq!(claims["iss"].to_string().trim_matches('"'), "123456");
    assert!(claims["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    let used: Vec<String> = requests(&server, "POST", STATUS_PATH)
        .await
        .iter()
        .map(|r| header(r, "authorization"))
        .collect();
    assert_eq!(
        used,
        [
            "Bearer ghs_installation_1",
            "Bearer ghs_installation_2",
            "Bearer ghs_installation_2"
        ]
    );
}

#[tokio::test]
async fn a_rejected_app_is_a_permanent_failure_naming_the_credential() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "A JSON web token could not be decoded"})),
        )
        .mount(&server)
        .await;
    let key = std::fs::read_to_string(KEY_FILE).unwrap();
    let status = build(github_status("gh-app", &server.uri()).with(
        "auth",
        json!({"app_id": "1", "installation_id": 4242, "private_key": key}),
    ));

    let error = deliver(&status, &event()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("HTTP 401 Unauthorized"), "{message}");
    assert!(message.contains("credential was rejected"), "{message}");
    assert!(!message.contains("PRIVATE KEY"));
    assert!(requests(&server, "POST", STATUS_PATH).await.is_empty());
}

#[tokio::test]
async fn the_comment_search_of_an_app_matches_its_bots_comment_only() {
    let server = fake_github::start(Tokens::lasting_an_hour()).await;
    Mock::given(method("GET"))
        .and(path("/app"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": 123456, "slug": "run-notifier", "name": "Run Notifier"}),
            ),
        )
        .mount(&server)
        .await;
    let run = event();
    let marker = format!(
        "<!-- run-notifier:run={} -->",
        run["data"]["runId"].as_str().unwrap()
    );
    // A person whose login is the App's slug, then the App's bot.
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 11, "body": format!("old {marker}"), "user": {"login": "run-notifier", "type": "User"}},
            {"id": 12, "body": format!("old {marker}"), "user": {"login": "run-notifier[bot]", "type": "Bot"}},
        ])))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/web-app/issues/comments/12"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 12})))
        .expect(1)
        .mount(&server)
        .await;
    let comment =
        build(github_pr_comment("gh-app", &server.uri()).with("auth", fake_github::app_auth()));

    let receipt = deliver(&comment, &run).await.unwrap();

    assert_eq!(
        receipt,
        run_notifier::integrations::Receipt::Sent("updated comment 12 on #42".into())
    );
    let asked = requests(&server, "GET", "/app").await;
    assert_eq!(asked.len(), 1);
    let claims = jwt_claims(&header(&asked[0], "authorization"));
    assert_eq!(
        claims["iss"].to_string().trim_matches('"'),
        "123456",
        "the App's JWT"
    );
    let listed = requests(&server, "GET", COMMENTS_42).await;
    assert_eq!(
        header(&listed[0], "authorization"),
        "Bearer ghs_installation_1",
        "the comments are read with the installation token"
    );
}

#[test]
fn a_private_key_that_is_not_a_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.pem");
    std::fs::write(&file, "not a key").unwrap();
    let error = config_error(github_pr_comment("gh-app", "https://api.github.com").with(
        "auth",
        json!({"app_id": 1, "installation_id": 2, "private_key_file": file}),
    ));
    assert!(
        error.contains("integrations[0] (gh-app): `auth`: the private key is not an RSA private key in PEM form"),
        "{error}"
    );
}
