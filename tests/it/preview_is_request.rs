//! `preview` prints the request a delivery sends: for every kind, one event goes through
//! wiremock and the method, URL, headers (secrets aside) and body bytes it received are exactly
//! what `preview` prints for the same attempt. Webhook previews verify with `run-notifier verify`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use run_notifier::event::RunCanceled;
use run_notifier::integrations::{Integration, Notification, Receipt, build_all, http_client};
use run_notifier::preview::{PRETTY_LABEL, REDACTED, render};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{EXAMPLE_EVENT, SECRET};

const SHA: &str = "5a7edc9a156e417068060d67109021351fc7d9b8";
const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";

/// One request as `preview` printed it.
#[derive(Debug)]
struct Shown {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Every request `preview` printed for the integration `name`, in order.
fn shown(preview: &str, name: &str) -> Vec<Shown> {
    preview
        .split("\n== ")
        .filter_map(|section| section.strip_prefix(&format!("{name} (")))
        .filter_map(|section| section.split_once("): would send\n").map(|(_, rest)| rest))
        .map(|section| {
            let mut lines = section.split('\n');
            let (method, url) = lines.next().unwrap().split_once(' ').unwrap();
            let headers = lines
                .by_ref()
                .take_while(|line| !line.is_empty())
                .map(|line| {
                    let (name, value) = line.split_once(": ").unwrap();
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            Shown {
                method: method.to_owned(),
                url: url.to_owned(),
                headers,
                body: lines.next().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Asserts that `received` is exactly `printed`: method, URL (the origin only when the URL is a
/// secret), every header with its value (`***` for secrets) and the body bytes. `host` and
/// `content-length` are framing the HTTP stack adds, not part of the request value.
fn assert_same(printed: &Shown, received: &Request) {
    assert_eq!(printed.method, received.method.as_str());
    // wiremock puts a placeholder host in `url`; the request's own is in `host`.
    let mut url = received.url.clone();
    let host = received.headers["host"].to_str().unwrap();
    let (host, port) = host.split_once(':').unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port.parse().unwrap())).unwrap();
    match printed.url.strip_suffix(&format!("/{REDACTED}")) {
        Some(origin) => assert_eq!(origin, url.origin().ascii_serialization()),
        None => assert_eq!(printed.url, url.as_str()),
    }
    let mut sent: Vec<(String, String)> = received
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let mut printed_headers = printed.headers.clone();
    sent.sort();
    printed_headers.sort();
    assert_eq!(
        printed_headers.len(),
        sent.len(),
        "printed {printed_headers:?}, sent {sent:?}"
    );
    for ((name, shown), (sent_name, value)) in printed_headers.iter().zip(&sent) {
        assert_eq!(name, sent_name);
        assert!(
            shown == value || shown == REDACTED,
            "{name}: printed {shown:?}, sent {value:?}"
        );
    }
    assert_eq!(printed.body.as_bytes(), received.body.as_slice());
}

fn event(change: impl FnOnce(&mut Value)) -> RunCanceled {
    let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
    event["data"]["runId"] = json!(format!("run-{:016x}", rand::random::<u64>()));
    change(&mut event);
    RunCanceled::parse(event.to_string().as_bytes()).unwrap()
}

fn integrations(items: &str) -> Vec<Integration> {
    let text = format!("integrations:\n{items}");
    let config = run_notifier::config::Config::parse(&text, Default::default())
        .unwrap_or_else(|err| panic!("{err}\n{text}"));
    build_all(&config.integrations, &config.templates_dir, &http_client()).unwrap()
}

async fn deliver(integration: &Integration, event: &RunCanceled) -> Receipt {
    let notification = Notification {
        event,
        integration: integration.name(),
        attempt: 1,
        resumed: false,
    };
    integration
        .deliver(&notification, &CancellationToken::new())
        .await
        .unwrap()
}

/// The requests that changed something (everything but the GETs a plan reads with).
async fn writes(server: &MockServer) -> Vec<Request> {
    let received = server.received_requests().await.unwrap();
    received
        .into_iter()
        .filter(|r| r.method.as_str() != "GET")
        .collect()
}

/// Delivers `event` to the one integration in `items`, then previews it as at the moment of
/// that attempt (the webhook timestamp it signed, when there is one), and compares.
async fn delivered_equals_previewed(server: &MockServer, items: &str, event: &RunCanceled) {
    let integrations = integrations(items);
    let integration = &integrations[0];
    let receipt = deliver(integration, event).await;
    assert!(matches!(receipt, Receipt::Sent(_)), "{receipt:?}");
    let sent = writes(server).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let at = sent[0]
        .headers
        .get("webhook-timestamp")
        .map(|t| t.to_str().unwrap().parse().unwrap())
        .map_or_else(Utc::now, |t| DateTime::from_timestamp(t, 0).unwrap());

    let preview = render(&integrations, event, at).await;

    let printed = shown(&preview, integration.name());
    assert_eq!(printed.len(), 1, "{preview}");
    assert_same(&printed[0], &sent[0]);
    assert_eq!(writes(server).await.len(), 1, "preview wrote nothing");
}

async fn answering(verb: &str, route: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_webhook_preview_is_the_signed_request() {
    let server = answering("POST", "/hooks", ResponseTemplate::new(204)).await;
    let items = format!(
        "  - name: audit\n    type: webhook\n    url: {}/hooks\n    secrets: [{SECRET}]\n    hub_secret: hub-hunter2\n    headers:\n      Authorization: Bearer tok-hunter3\n",
        server.uri()
    );
    delivered_equals_previewed(&server, &items, &event(|_| {})).await;
}

#[tokio::test]
async fn a_slack_preview_is_the_request() {
    let server = answering(
        "POST",
        "/services/T0/B0/slacksecret",
        ResponseTemplate::new(200).set_body_string("ok"),
    )
    .await;
    let items = format!(
        "  - name: alerts\n    type: slack\n    webhook_url: {}/services/T0/B0/slacksecret\n",
        server.uri()
    );
    delivered_equals_previewed(&server, &items, &event(|_| {})).await;
}

#[tokio::test]
async fn a_teams_preview_is_the_request() {
    let server = answering("POST", "/workflows/x/invoke", ResponseTemplate::new(202)).await;
    let items = format!(
        "  - name: cards\n    type: teams\n    webhook_url: {}/workflows/x/invoke?sig=teamssig\n",
        server.uri()
    );
    delivered_equals_previewed(&server, &items, &event(|_| {})).await;
}

#[tokio::test]
async fn a_github_status_preview_is_the_request_with_its_api_version() {
    let server = answering(
        "POST",
        &format!("/repos/acme/web-app/statuses/{SHA}"),
        ResponseTemplate::new(201).set_body_json(json!({"id": 1})),
    )
    .await;
    let items = format!(
        "  - name: gh\n    type: github_status\n    api_url: {}\n    auth: {{token: ghp_test_token}}\n",
        server.uri()
    );
    delivered_equals_previewed(&server, &items, &event(|_| {})).await;
    let sent = writes(&server).await;
    assert_eq!(sent[0].headers["x-github-api-version"], "2022-11-28");
}

#[tokio::test]
async fn a_bitbucket_preview_is_the_request() {
    let server = answering(
        "POST",
        &format!("/2.0/repositories/acme/web-app/commit/{SHA}/statuses/build"),
        ResponseTemplate::new(201),
    )
    .await;
    let items = format!(
        "  - name: bb\n    type: bitbucket_status\n    api_url: {}\n    auth: {{token: bb-secret}}\n",
        server.uri()
    );
    let on_bitbucket = event(|event| {
        event["data"]["commit"]["remoteOrigin"] = json!("git@bitbucket.org:acme/web-app.git");
    });
    delivered_equals_previewed(&server, &items, &on_bitbucket).await;
}

#[tokio::test]
async fn a_gitlab_status_preview_is_the_request() {
    let server = answering(
        "POST",
        &format!("/api/v4/projects/acme%2Fplatform%2Fweb-app/statuses/{SHA}"),
        ResponseTemplate::new(201),
    )
    .await;
    let items = format!(
        "  - name: gl\n    type: gitlab_status\n    api_url: {}/api/v4\n    auth: {{token: glpat-secret}}\n",
        server.uri()
    );
    let on_gitlab = event(|event| {
        event["data"]["commit"]["remoteOrigin"] = json!("git@gitlab.com:acme/platform/web-app.git");
    });
    delivered_equals_previewed(&server, &items, &on_gitlab).await;
}

#[tokio::test]
async fn a_gitlab_mr_note_preview_is_the_post_it_sends_after_its_reads() {
    let notes = "/api/v4/projects/acme%2Fweb-app/merge_requests/42/notes";
    let server = answering(
        "GET",
        notes,
        ResponseTemplate::new(200).set_body_json(json!([])),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(notes))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 7})))
        .mount(&server)
        .await;
    let items = format!(
        "  - name: gl-note\n    type: gitlab_mr_note\n    api_url: {}/api/v4\n    auth: {{token: glpat-secret}}\n",
        server.uri()
    );
    let on_gitlab = event(|event| {
        event["data"]["commit"]["remoteOrigin"] = json!("https://gitlab.com/acme/web-app.git");
    });
    delivered_equals_previewed(&server, &items, &on_gitlab).await;
}

#[tokio::test]
async fn a_slack_app_preview_is_the_post() {
    let server = answering(
        "POST",
        "/api/chat.postMessage",
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "channel": "C0123ABCD", "ts": "1.2"})),
    )
    .await;
    let items = format!(
        "  - name: app\n    type: slack_app\n    token: xoxb-secret\n    channel: C0123ABCD\n    api_url: {}/api\n",
        server.uri()
    );
    delivered_equals_previewed(&server, &items, &event(|_| {})).await;
}

fn comment_yaml(server: &MockServer) -> String {
    format!(
        "  - name: gh-comment\n    type: github_pr_comment\n    api_url: {}\n    auth:\n      token: ghp_test_token\n",
        server.uri()
    )
}

#[tokio::test]
async fn a_pr_comment_preview_is_the_post_it_sends() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
        .mount(&server)
        .await;
    delivered_equals_previewed(&server, &comment_yaml(&server), &event(|_| {})).await;
}

#[tokio::test]
async fn a_pr_comment_preview_reads_what_it_must_and_shows_the_edit_or_the_lookup_result() {
    let server = MockServer::start().await;
    let earlier = event(|_| {});
    let marker = format!("<!-- run-notifier:run={} -->", earlier.data.run_id.as_str());
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 900, "body": format!("old text\n\n{marker}"), "user": {"login": "ci-bot"}},
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "ci-bot"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web-app/commits/{SHA}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"number": 7, "state": "closed", "head": {"sha": SHA}},
        ])))
        .mount(&server)
        .await;
    let integrations = integrations(&comment_yaml(&server));
    let without_pr = event(|event| {
        event["data"].as_object_mut().unwrap().remove("pullRequest");
    });

    let edit = render(&integrations, &earlier, Utc::now()).await;
    let lookup = render(&integrations, &without_pr, Utc::now()).await;

    let printed = shown(&edit, "gh-comment");
    assert_eq!(printed.len(), 1, "{edit}");
    assert_eq!(printed[0].method, "PATCH");
    assert!(
        printed[0]
            .url
            .ends_with("/repos/acme/web-app/issues/comments/900"),
        "{edit}"
    );
    let body: Value = serde_json::from_str(&printed[0].body).unwrap();
    assert!(
        body["body"]
            .as_str()
            .unwrap()
            .starts_with("Cancelled by jane.doe")
    );
    assert!(
        printed[0]
            .headers
            .contains(&("authorization".into(), REDACTED.into()))
    );
    assert!(!edit.contains("ghp_test_token"));
    assert!(
        lookup.contains(&format!(
            "== gh-comment (github_pr_comment): skipped: no open pull request has head {SHA}"
        )),
        "{lookup}"
    );
    assert!(writes(&server).await.is_empty(), "a preview only reads");
}

/// Runs the binary with `args`, `stdin` as its input; returns success, stdout and stderr.
fn run_notifier(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn verify_accepts_the_body_and_headers_preview_prints_and_refuses_the_pretty_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "integrations:\n  - name: audit\n    type: webhook\n    url: http://127.0.0.1:9/hooks\n    secrets: [{SECRET}]\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let (ok, preview, stderr) = run_notifier(
        &[
            "preview",
            "--event",
            "config/example-event.json",
            "--config",
            &config,
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    let printed = shown(&preview, "audit").remove(0);
    let header = |name: &str| {
        printed
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {preview}"))
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verify = |body: &[u8]| {
        run_notifier(
            &[
                "verify",
                "--secret",
                SECRET,
                "--id",
                &id,
                "--timestamp",
                &timestamp,
                "--signature",
                &signature,
            ],
            body,
        )
    };

    let (ok, stdout, stderr) = verify(printed.body.as_bytes());
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.starts_with("valid:"), "{stdout}");

    let pretty = preview
        .split_once(&format!("{PRETTY_LABEL}\n"))
        .expect("a labelled pretty copy follows the exact body")
        .1;
    let pretty = &pretty[..pretty.find("\n}\n").unwrap() + 2];
    assert_eq!(
        serde_json::from_str::<Value>(pretty).unwrap(),
        serde_json::from_str::<Value>(&printed.body).unwrap(),
        "the pretty copy is the same JSON"
    );
    let (ok, _, stderr) = verify(pretty.as_bytes());
    assert!(!ok, "the pretty copy is not the signed bytes");
    assert!(!stderr.is_empty());
}

#[tokio::test]
async fn when_a_lookup_fails_preview_still_shows_the_body_it_would_send() {
    // A GitHub and a GitLab that answer nothing useful: every lookup fails.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let items = format!(
        "{}  - name: gl-note\n    type: gitlab_mr_note\n    api_url: {}/api/v4\n    auth: {{token: glpat-secret}}\n",
        comment_yaml(&server),
        server.uri()
    );
    let integrations = integrations(&items);
    let on_github = event(|_| {});
    let on_gitlab = event(|event| {
        event["data"]["commit"]["remoteOrigin"] = json!("https://gitlab.com/acme/web-app.git");
    });

    let github = render(&integrations[..1], &on_github, Utc::now()).await;
    let section = github
        .split("\n== gh-comment (github_pr_comment): ")
        .nth(1)
        .unwrap();
    assert!(section.starts_with("would fail: "), "{github}");
    assert!(
        section.contains(
            "\nonce that lookup answers, it would POST or PATCH a comment on pull request #42 of acme/web-app (PATCH edits the run's earlier comment) with this body:\n\n{\"body\":\"Cancelled by "
        ),
        "{github}"
    );
    assert!(section.contains(PRETTY_LABEL), "{github}");

    let gitlab = render(&integrations[1..], &on_gitlab, Utc::now()).await;
    assert!(
        gitlab.contains(
            "once that lookup answers, it would POST or PUT a note on merge request !42 of acme/web-app (PUT edits the run's earlier note) with this body:\n\n{\"body\":\"Cancelled by "
        ),
        "{gitlab}"
    );
    assert!(writes(&server).await.is_empty(), "preview writes nothing");
}
