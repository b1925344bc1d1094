//! `github_pr_comment` against a wiremock GitHub: one comment per run (found again on any
//! page and edited, but only when the token's user wrote it), hostile text neutralised, bodies
//! cut to fit, cancellation between steps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use run_notifier::failure::DeliveryError;
use run_notifier::integrations::Receipt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::providers::{build, build_errors, deliver, deliver_with, json_of, requests};
use crate::support::{HOSTILE, Spec, event, github_pr_comment, wait_until};

const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";
/// The login of the token's user (`GET /user`), who writes the worker's comments.
const OURS: &str = "ci-bot";

/// `gh-comment` against `server`, with the token `ghp_test_token`.
fn spec(server: &MockServer) -> Spec {
    github_pr_comment("gh-comment", &server.uri())
}

/// A comment by a person.
fn comment(id: u64, body: &str) -> Value {
    comment_by("someone", id, body)
}

fn comment_by(login: &str, id: u64, body: &str) -> Value {
    json!({"id": id, "body": body, "user": {"login": login}})
}

/// Answers `GET /user` as the token's user, [`OURS`].
async fn mount_user(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": OURS, "id": 7})))
        .mount(server)
        .await;
}

/// The comments of PR #42 in three pages of 100; page 3 also holds what was posted so far.
struct CommentPages {
    base: String,
    posted: Arc<Mutex<Vec<(u64, String)>>>,
}

impl Respond for CommentPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let page: u64 = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .map_or(1, |(_, v)| v.parse().unwrap());
        assert!(
            request
                .url
                .query_pairs()
                .any(|(k, v)| k == "per_page" && v == "100"),
            "asks for the largest pages"
        );
        let mut items: Vec<Value> = (0..100)
            .map(|i| {
                comment(
                    page * 1_000 + i,
                    "LGTM <!-- run-notifier:run=some-other-run -->",
                )
            })
            .collect();
        let mut response = ResponseTemplate::new(200);
        if page < 3 {
            let next = format!("{}{COMMENTS_42}?per_page=100&page={}", self.base, page + 1);
            response = response.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        } else {
            items.truncate(37);
            for (id, body) in self.posted.lock().unwrap().iter() {
                items.push(comment_by(OURS, *id, body));
            }
        }
        response.set_body_json(items)
    }
}

/// Records a posted comment and answers like GitHub.
struct PostComment {
    posted: Arc<Mutex<Vec<(u64, String)>>>,
}

impl Respond for PostComment {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = json_of(request)["body"].as_str().unwrap().to_owned();
        let id = 900_000 + self.posted.lock().unwrap().len() as u64;
        self.posted.lock().unwrap().push((id, body.clone()));
        ResponseTemplate::new(201).set_body_json(comment_by(OURS, id, &body))
    }
}

async fn github_with_pages() -> MockServer {
    let server = MockServer::start().await;
    mount_user(&server).await;
    let posted = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(CommentPages {
            base: server.uri(),
            posted: Arc::clone(&posted),
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(COMMENTS_42))
        .respond_with(PostComment { posted })
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/web-app/issues/comments/900000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(comment(900_000, "edited")))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_run_is_commented_once_and_a_second_delivery_edits_the_comment_found_on_page_3() {
    let server = github_with_pages().await;
    let integration = build(spec(&server));
    let run = event();

    let first = deliver(&integration, &run).await.unwrap();
    assert_eq!(first, Receipt::Sent("posted comment 900000 on #42".into()));
    let posted = requests(&server, "POST", COMMENTS_42).await;
    assert_eq!(posted.len(), 1);
    let body = json_of(&posted[0])["body"].as_str().unwrap().to_owned();
    // Ordinary values read the same in the raw body: escapes only where they change rendering.
    assert!(body.starts_with("Cancelled by jane.doe\n"), "{body}");
    assert!(
        body.contains("**web-app** on branch feature-A at 5a7edc9."),
        "{body}"
    );
    assert!(body.contains("\n> feat: change button color\n"), "{body}");
    let marker = format!(
        "<!-- run-notifier:run={} -->",
        run["data"]["runId"].as_str().unwrap()
    );
    assert!(body.ends_with(&marker), "{body}");
    assert!(body.contains("[View the run in the dashboard](https://app.example.dev/run/"));

    // The ledger forgot the delivery (or a second cancel event came): a new event, same run.
    let mut again = run.clone();
    again["id"] = json!("evt_second");
    again["data"]["results"]["failures"] = json!(5);
    let second = deliver(&integration, &again).await.unwrap();
    assert_eq!(
        second,
        Receipt::Sent("updated comment 900000 on #42".into())
    );

    assert_eq!(
        requests(&server, "POST", COMMENTS_42).await.len(),
        1,
        "nothing new was posted"
    );
    let pages: Vec<String> = requests(&server, "GET", COMMENTS_42)
        .await
        .iter()
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        pages,
        [
            "per_page=100&page=1",
            "per_page=100&page=2",
            "per_page=100&page=3",
            "per_page=100&page=1",
            "per_page=100&page=2",
            "per_page=100&page=3"
        ]
    );
    let patched = requests(
        &server,
        "PATCH",
        "/repos/acme/web-app/issues/comments/900000",
    )
    .await;
    assert_eq!(patched.len(), 1);
    let edited = json_of(&patched[0])["body"].as_str().unwrap().to_owned();
    assert!(edited.contains("| 120 | 100 | 5 |"), "{edited}");
    assert!(edited.ends_with(&marker));
}

#[tokio::test]
async fn hostile_actor_branch_and_message_cannot_inject_html_links_or_mentions() {
    let server = github_with_pages().await;
    let integration = build(spec(&server));
    let mut run = event();
    run["data"]["cancellation"]["actor"] = json!(HOSTILE);
    run["data"]["cancellation"]["reason"] = json!("failFast");
    run["data"]["commit"]["branch"] = json!(HOSTILE);
    run["data"]["commit"]["message"] = json!(HOSTILE);
    run["data"]["tags"] = json!([HOSTILE, "@team"]);

    deliver(&integration, &run).await.unwrap();

    let posted = requests(&server, "POST", COMMENTS_42).await;
    let body = json_of(&posted[0])["body"].as_str().unwrap().to_owned();
    for forbidden in [
        "<script",
        "<img",
        "@everyone",
        "@team",
        "](http://evil",
        "\n# heading",
    ] {
        assert!(
            !body.contains(forbidden),
            "`{forbidden}` got through:\n{body}"
        );
    }
    assert!(body.starts_with("Cancelled by "), "{body}");
    assert!(body.contains("**⚡ fail-fast**"), "{body}");
    let lines: Vec<&str> = body.lines().collect();
    let header = lines
        .iter()
        .position(|l| *l == "| Tests | Passed | Failed | Pending | Skipped | Flaky | Retries |")
        .expect("the table header is intact");
    assert_eq!(lines[header + 1], "|---:|---:|---:|---:|---:|---:|---:|");
    assert_eq!(lines[header + 2], "| 120 | 100 | 2 | 3 | 15 | 1 | 4 |");
}

#[tokio::test]
async fn bodies_are_cut_to_githubs_limit_and_keep_the_marker() {
    let server = github_with_pages().await;
    let integration = build(spec(&server));
    let mut run = event();
    run["data"]["commit"]["message"] = json!("m".repeat(100_000));

    deliver(&integration, &run).await.unwrap();

    let posted = requests(&server, "POST", COMMENTS_42).await;
    let body = json_of(&posted[0])["body"].as_str().unwrap().to_owned();
    assert_eq!(body.chars().count(), 65_536);
    assert!(body.contains("m…\n\n<!-- run-notifier:run="));
}

#[tokio::test]
async fn cancellation_stops_the_delivery_between_requests() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(COMMENTS_42))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let integration = build(spec(&server));
    let cancel = CancellationToken::new();
    let run = event();
    let delivery = deliver_with(&integration, &run, &cancel);
    let canceller = async {
        wait_until(
            "GitHub got the first request",
            Duration::from_secs(10),
            || async {
                !server
                    .received_requests()
                    .await
                    .unwrap_or_default()
                    .is_empty()
            },
        )
        .await;
        cancel.cancel();
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(delivery, canceller)
    })
    .await
    .expect("cancellation ends the delivery at once");
    assert_eq!(result, Err(DeliveryError::Canceled));
    assert!(requests(&server, "POST", COMMENTS_42).await.is_empty());
}

#[test]
fn a_missing_comment_template_stops_the_start_naming_the_file() {
    let errors = build_errors(
        github_pr_comment("c", "https://api.github.com")
            .with("template", "/nonexistent/comment.md.hbs"),
    );
    let text = errors[0].to_string();
    assert!(
        text.starts_with("/nonexistent/comment.md.hbs: cannot read the template"),
        "{text}"
    );
}
