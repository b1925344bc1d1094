//! `gitlab_status` and `gitlab_mr_note` against a wiremock GitLab: nested-group projects, both
//! token kinds, states by the outcome rule, GitLab's own answers classified, merge requests
//! looked up by commit, one note per run found again on any page and edited, hostile text
//! neutralised, and preview sending nothing.

use std::time::Duration;

use run_notifier::failure::{DeliveryError, FailureKind};
use run_notifier::integrations::github::comment::marker;
use run_notifier::integrations::{Notification, Receipt};
use run_notifier::render::live_markup;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_gitlab::{Notes, PROJECT_ROUTE, Paging, SHA, gitlab_event};
use crate::support::providers::{self, build, deliver, header, json_of, requests};
use crate::support::{Spec, event, gitlab_mr_note, gitlab_status};

fn status_path() -> String {
    format!("{PROJECT_ROUTE}/statuses/{SHA}")
}

/// The wiremock GitLab's API root.
fn api(server: &MockServer) -> String {
    format!("{}/api/v4", server.uri())
}

fn status_spec(server: &MockServer) -> Spec {
    gitlab_status("gl-status", &api(server))
}

fn note_spec(server: &MockServer) -> Spec {
    gitlab_mr_note("gl-note", &api(server))
}

async fn gitlab_answering(route: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn run_marker(event: &Value) -> String {
    let id = run_notifier::event::RunId::parse(event["data"]["runId"].as_str().unwrap()).unwrap();
    marker(&id)
}

#[tokio::test]
async fn a_status_goes_to_the_encoded_nested_project_with_the_outcome_state() {
    let server = gitlab_answering(&status_path(), ResponseTemplate::new(201)).await;
    let status = build(status_spec(&server));
    let failed = gitlab_event(event());
    let mut passed = gitlab_event(event());
    passed["data"]["results"]["failures"] = json!(0);

    let receipt = deliver(&status, &failed).await.unwrap();
    deliver(&status, &passed).await.unwrap();

    assert_eq!(
        receipt,
        Receipt::Sent(format!("HTTP 201 from {}", status_path()))
    );
    let sent = requests(&server, "POST", &status_path()).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(header(&sent[0], "private-token"), "glpat-test-token");
    assert_eq!(
        json_of(&sent[0]),
        json!({
            "state": "failed",
            "name": "run-notifier/Xm2k9",
            "target_url": failed["data"]["runUrl"],
            "description": "Cancelled by jane.doe",
        })
    );
    assert_eq!(json_of(&sent[1])["state"], "success");
}

#[tokio::test]
async fn canceled_state_oauth_bearer_and_long_descriptions() {
    let server = gitlab_answering(&status_path(), ResponseTemplate::new(201)).await;
    let status = build(
        status_spec(&server)
            .with("auth", json!({"oauth_token": "oauth-test-token"}))
            .with("state", "canceled")
            .with("context", "dashboard"),
    );
    let mut event = gitlab_event(event());
    event["data"]["cancellation"]["actor"] = json!("a".repeat(400));

    deliver(&status, &event).await.unwrap();

    let sent = requests(&server, "POST", &status_path()).await;
    assert_eq!(header(&sent[0], "authorization"), "Bearer oauth-test-token");
    assert_eq!(header(&sent[0], "private-token"), "");
    let body = json_of(&sent[0]);
    assert_eq!(body["state"], "canceled");
    assert_eq!(body["name"], "dashboard");
    let description = body["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 255);
    assert!(description.ends_with('…'));
}

#[tokio::test]
async fn gitlab_answers_are_classified() {
    let cases: Vec<(ResponseTemplate, Result<FailureKind, &str>)> = vec![
        (
            ResponseTemplate::new(400).set_body_json(
                json!({"message": "Cannot transition status via :enqueue from :pending"}),
            ),
            Err("already set"),
        ),
        (
            ResponseTemplate::new(409).set_body_string("Another update is in progress"),
            Ok(FailureKind::Transient),
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})),
            Ok(FailureKind::Permanent),
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({"error": "insufficient_scope"})),
            Ok(FailureKind::Permanent),
        ),
        (
            ResponseTemplate::new(404).set_body_json(json!({"message": "404 Project Not Found"})),
            Ok(FailureKind::Permanent),
        ),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "12"),
            Ok(FailureKind::RateLimited),
        ),
        (ResponseTemplate::new(502), Ok(FailureKind::Transient)),
    ];
    for (response, expected) in cases {
        let server = gitlab_answering(&status_path(), response).await;
        let status = build(status_spec(&server));
        let result = deliver(&status, &gitlab_event(event())).await;
        match (expected, result) {
            (Err(receipt), Ok(Receipt::Sent(got))) => assert!(got.contains(receipt), "{got}"),
            (Ok(kind), Err(error)) => {
                assert_eq!(error.kind(), Some(kind), "{error}");
                assert!(!error.to_string().contains("glpat-test-token"));
                if kind == FailureKind::RateLimited {
                    assert!(matches!(
                        error,
                        DeliveryError::Retryable { retry_after: Some(wait), .. } if wait == Duration::from_secs(12)
                    ));
                }
            }
            (expected, got) => panic!("expected {expected:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn runs_elsewhere_or_without_a_sha_are_skipped() {
    let server = MockServer::start().await;
    let status = build(status_spec(&server));
    let note = build(note_spec(&server));
    let mut no_sha = gitlab_event(event());
    no_sha["data"]["commit"]
        .as_object_mut()
        .unwrap()
        .remove("sha");
    no_sha["data"]
        .as_object_mut()
        .unwrap()
        .remove("pullRequest");
    for (integration, event, reason) in [
        (&status, event(), "on github.com, not on gitlab.com"),
        (&note, event(), "on github.com, not on gitlab.com"),
        (&status, no_sha.clone(), "no commit sha"),
        (&note, no_sha, "neither a pullRequest"),
    ] {
        match deliver(integration, &event).await.unwrap() {
            Receipt::Skipped(got) => assert!(got.contains(reason), "{got}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_second_cancel_edits_the_note_found_on_a_later_page() {
    for paging in [Paging::NextPageHeader, Paging::NoHeaders] {
        let server = MockServer::start().await;
        // 23 notes by others, 4 to a page: the run's note lands on the sixth page.
        let notes = Notes::new(23, 4, paging);
        notes.mount(&server, 42).await;
        let note = build(note_spec(&server));
        let event = gitlab_event(event());

        let first = deliver(&note, &event).await.unwrap();
        let mut again = event.clone();
        again["data"]["cancellation"]["actor"] = json!("second.canceler");
        let second = deliver(&note, &again).await.unwrap();

        let ours = notes.with_marker(&run_marker(&event));
        assert_eq!(ours.len(), 1, "{paging:?}: one note per run");
        assert_eq!(ours[0].edits, 1, "{paging:?}");
        assert!(
            ours[0].body.starts_with("Cancelled by second.canceler"),
            "{}",
            ours[0].body
        );
        assert_eq!(
            first,
            Receipt::Sent(format!("posted note {} on !42", ours[0].id))
        );
        assert_eq!(
            second,
            Receipt::Sent(format!("updated note {} on !42", ours[0].id))
        );
        let notes_path = format!("{PROJECT_ROUTE}/merge_requests/42/notes");
        let pages = requests(&server, "GET", &notes_path).await;
        assert!(
            pages
                .iter()
                .all(|r| r.url.query().unwrap().contains("per_page=100")),
            "asks for the largest pages"
        );
        // First delivery: every page to the end (without headers, to an empty seventh);
        // second: up to the sixth, which holds the note.
        let expected = match paging {
            Paging::NextPageHeader => 6 + 6,
            Paging::NoHeaders => 7 + 6,
        };
        assert_eq!(pages.len(), expected, "{paging:?}");
    }
}

#[tokio::test]
async fn without_a_merge_request_iid_the_open_merge_requests_of_the_commit_get_the_note() {
    let server = MockServer::start().await;
    let lookup = format!("{PROJECT_ROUTE}/repository/commits/{SHA}/merge_requests");
    // No paging headers: the lookup reads on until an empty page.
    Mock::given(method("GET"))
        .and(path(lookup.as_str()))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"iid": 7, "state": "opened", "sha": SHA},
            {"iid": 8, "state": "merged", "sha": SHA},
            {"iid": 9, "state": "opened", "sha": "0000000000000000000000000000000000000000"},
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(lookup.as_str()))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let notes = Notes::new(0, 20, Paging::NextPageHeader);
    notes.mount(&server, 7).await;
    let note = build(note_spec(&server));
    let mut event = gitlab_event(event());
    event["data"].as_object_mut().unwrap().remove("pullRequest");

    let receipt = deliver(&note, &event).await.unwrap();

    assert!(
        matches!(&receipt, Receipt::Sent(r) if r.starts_with("posted note") && r.ends_with("on !7")),
        "{receipt:?}"
    );
    assert_eq!(notes.with_marker(&run_marker(&event)).len(), 1);
    let asked = requests(&server, "GET", &lookup).await;
    assert_eq!(asked.len(), 2, "page 1, then the empty page 2");
}

#[tokio::test]
async fn a_commit_without_an_open_merge_request_is_a_skip() {
    let server = MockServer::start().await;
    let lookup = format!("{PROJECT_ROUTE}/repository/commits/{SHA}/merge_requests");
    Mock::given(method("GET"))
        .and(path(lookup.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"iid": 8, "state": "closed", "sha": SHA}]))
                .insert_header("x-next-page", ""),
        )
        .mount(&server)
        .await;
    let note = build(note_spec(&server));
    let mut event = gitlab_event(event());
    event["data"].as_object_mut().unwrap().remove("pullRequest");

    match deliver(&note, &event).await.unwrap() {
        Receipt::Skipped(reason) => {
            assert!(
                reason.contains("no open merge request has head"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hostile_event_text_cannot_mention_reference_link_or_run_quick_actions() {
    let server = MockServer::start().await;
    let notes = Notes::new(0, 20, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let note = build(note_spec(&server));
    let hostile = "/close\n/merge @all #1 !2 ~bug %v1 &3 $4 &#64;all <img src=x> [x](http://evil.example) | a |";
    let mut event = gitlab_event(event());
    event["data"]["cancellation"]["actor"] = json!(hostile);
    event["data"]["cancellation"]["note"] = json!(hostile);
    event["data"]["commit"]["branch"] = json!(hostile);
    event["data"]["commit"]["message"] = json!(hostile);

    deliver(&note, &event).await.unwrap();

    let body = notes.with_marker(&run_marker(&event)).remove(0).body;
    assert!(
        !body
            .lines()
            .any(|line| line.trim_start_matches("> ").starts_with('/')),
        "no line starts with a quick action:\n{body}"
    );
    // Nothing GitLab acts on is live (but the note's own hidden marker); links and table
    // cells are broken by their backslash.
    let text = body.split("<!-- run-notifier:").next().unwrap();
    assert_eq!(live_markup(text), None, "{body}");
    assert!(body.contains("[x\\](http"), "no link:\n{body}");
    assert!(body.contains("\\| a \\|"), "no table cell:\n{body}");
    assert!(!body.contains("://evil"), "no autolink:\n{body}");
    assert!(!body.contains("&lt;"), "no entity is relied on:\n{body}");
}

#[tokio::test]
async fn preview_reads_what_it_must_and_writes_nothing() {
    let server = MockServer::start().await;
    let notes = Notes::new(3, 20, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let status = build(status_spec(&server));
    let note = build(note_spec(&server));
    let event = gitlab_event(event());
    let parsed = providers::parse(&event);
    for integration in [&status, &note] {
        let plan = integration
            .preview(&Notification {
                event: &parsed,
                integration: integration.name(),
                attempt: 1,
                resumed: false,
                object_id: None,
            })
            .await
            .unwrap();
        let requests = plan.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert!(requests[0].url.path().starts_with(PROJECT_ROUTE));
        assert!(requests[0].headers["private-token"].is_sensitive());
        let shown = run_notifier::preview::show(&requests[0]);
        assert!(!shown.contains("glpat-test-token"), "{shown}");
    }
    let received = server.received_requests().await.unwrap();
    assert!(
        received.iter().all(|r| r.method.as_str() == "GET"),
        "only the note search was read: {received:?}"
    );
    assert!(notes.with_marker(&run_marker(&event)).is_empty());
}

#[test]
fn bad_gitlab_config_is_explained_at_load_without_the_token() {
    let base = "  - name: g\n    type: gitlab_status\n";
    for (extra, expected) in [
        ("    auth: {}\n", "needs `token`"),
        (
            "    auth: {token: glpat-secret, oauth_token: x}\n",
            "not both",
        ),
        (
            "    auth:\n      token: ${GITLAB_TOKEN}\n    api_url: ftp://gitlab.example\n",
            "http or https",
        ),
        (
            "    auth:\n      token: ${GITLAB_TOKEN}\n    host: 'gitlab.example/x'\n",
            "`host`",
        ),
        (
            "    auth:\n      token: ${GITLAB_TOKEN}\n    state: pending\n",
            "expected one of outcome, canceled",
        ),
    ] {
        let yaml = format!("integrations:\n{base}{extra}");
        let env = [("GITLAB_TOKEN".to_owned(), "glpat-secret".to_owned())].into();
        let error = run_notifier::config::Config::parse(&yaml, env).unwrap_err();
        assert!(error.contains(expected), "{extra}: {error}");
        if !extra.contains("glpat-secret") {
            assert!(!error.contains("glpat-secret"), "{error}");
        }
    }
}

#[test]
fn a_broken_name_template_stops_the_start_with_its_place() {
    let yaml = "integrations:\n  - name: g\n    type: gitlab_status\n    auth: {token: t}\n    context: '{{nope}}'\n";
    let config = run_notifier::config::Config::parse(yaml, Default::default()).unwrap();
    let problems = run_notifier::integrations::build_all(
        &config.integrations,
        &config.templates_dir,
        &run_notifier::integrations::http_client(),
    )
    .unwrap_err();
    let shown = problems[0].clone();
    assert!(shown.starts_with("integration `g`: context"), "{shown}");
    assert!(shown.contains("nope"), "{shown}");
}

/// Through the real broker and worker: one status and one note; then the ledger loses its
/// record (a second test app, whose ledger is a new one) and the dashboard cancels the same
/// run again: the note is edited, never doubled.
#[tokio::test]
async fn a_gitlab_event_gives_one_status_and_one_note_and_a_forgotten_second_cancel_edits_it() {
    use crate::support::{TestApp, event_for, unique, wait_until};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let notes = Notes::new(5, 2, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let run_id = unique("run");
    let event = gitlab_event(event_for(&run_id));
    let marker = run_marker(&event);

    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(status_spec(&server));
        config.add(note_spec(&server));
    })
    .await;
    app.publish(&event).await;
    wait_until("the note is posted", Duration::from_secs(20), || async {
        !notes.with_marker(&marker).is_empty()
    })
    .await;
    wait_until("the status is set", Duration::from_secs(20), || async {
        requests(&server, "POST", &status_path()).await.len() == 1
    })
    .await;
    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
    drop(app);

    // The ledger forgets: a new app has a ledger of its own, as after a lost volume.
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(status_spec(&server));
        config.add(note_spec(&server));
    })
    .await;
    let mut again = gitlab_event(event_for(&run_id));
    again["data"]["cancellation"]["actor"] = json!("second.canceler");
    app.publish(&again).await;
    wait_until("the note is edited", Duration::from_secs(20), || async {
        notes
            .with_marker(&marker)
            .first()
            .is_some_and(|n| n.edits == 1)
    })
    .await;
    app.stop_worker().await;

    let ours = notes.with_marker(&marker);
    assert_eq!(ours.len(), 1, "one note for the run");
    assert!(
        ours[0].body.starts_with("Cancelled by second.canceler"),
        "{}",
        ours[0].body
    );
    assert_eq!(
        requests(&server, "POST", &status_path()).await.len(),
        2,
        "a status again is harmless"
    );
    let posts = requests(
        &server,
        "POST",
        &format!("{PROJECT_ROUTE}/merge_requests/42/notes"),
    )
    .await;
    assert_eq!(posts.len(), 1, "the second cancel did not post");
    assert!(app.take_dead_letters().await.is_empty());
}

/// `preview` prints the plan; the delivery sends the same requests, byte for byte.
#[tokio::test]
async fn the_previewed_requests_are_the_ones_a_delivery_sends() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let notes = Notes::new(2, 20, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let event = gitlab_event(event());
    let parsed = providers::parse(&event);
    for spec in [status_spec(&server), note_spec(&server)] {
        let integration = build(spec);
        let notification = Notification {
            event: &parsed,
            integration: integration.name(),
            attempt: 1,
            resumed: false,
            object_id: None,
        };
        let planned = integration.preview(&notification).await.unwrap().requests();
        integration
            .deliver(&notification, &tokio_util::sync::CancellationToken::new())
            .await
            .unwrap();
        let written: Vec<_> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() != "GET")
            .collect();
        let sent = written.last().unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].method.as_str(), sent.method.as_str());
        assert_eq!(planned[0].url.path(), sent.url.path());
        assert_eq!(planned[0].body, sent.body);
        assert_eq!(header(sent, "private-token"), "glpat-test-token");
    }
}

/// The check the fuzz target (`fuzz/fuzz_targets/render_hostile.rs`) makes of every rendered
/// note, here over the shipped template with the sample events and known-hostile values: no
/// line may start a quick action, and no mention or reference character comes without its
/// backslash.
#[test]
fn the_shipped_note_template_passes_the_fuzz_targets_check_on_hostile_values() {
    use run_notifier::render::{Format, Templates, sample_events, variables};

    let mut templates = Templates::new();
    templates
        .add_file(
            Format::GITLAB_MARKDOWN,
            "note",
            std::path::Path::new("templates/gitlab/mr_note.md.hbs"),
        )
        .unwrap();
    let mut events: Vec<_> = sample_events().into_iter().map(|(_, e)| e).collect();
    for hostile in [
        "/close\n/merge",
        "@all #1 !2 ~x %y $z ^a <b>",
        "&#64;all",
        "\n\n/approve",
    ] {
        let mut event = gitlab_event(event());
        for pointer in [
            "/data/projectName",
            "/data/commit/branch",
            "/data/commit/message",
        ] {
            *event.pointer_mut(pointer).unwrap() = json!(hostile);
        }
        event["data"]["cancellation"]["actor"] = json!(hostile);
        event["data"]["cancellation"]["note"] = json!(hostile);
        event["data"]["tags"] = json!([hostile]);
        events.push(providers::parse(&event));
    }
    for event in events {
        let note = templates
            .render(Format::GITLAB_MARKDOWN, "note", variables(&event))
            .unwrap();
        for line in note.lines() {
            assert!(!line.trim_start_matches("> ").starts_with('/'), "{line:?}");
        }
        assert_eq!(live_markup(&note), None, "{note:?}");
    }
}

#[tokio::test]
async fn plain_values_stay_verbatim_in_the_raw_note() {
    // E-mail notifications and API readers see the raw text: only what GitLab would act on
    // gets a backslash.
    let server = MockServer::start().await;
    let notes = Notes::new(0, 20, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let note = build(note_spec(&server));
    let mut event = gitlab_event(event());
    event["data"]["cancellation"]["actor"] = json!("jane.doe");
    event["data"]["projectName"] = json!("web-app");
    event["data"]["commit"]["branch"] = json!("feature-A");
    event["data"]["commit"]["message"] = json!("fix snake_case names (v1.2) for @jane, see #12");

    deliver(&note, &event).await.unwrap();

    let body = notes.with_marker(&run_marker(&event)).remove(0).body;
    for verbatim in [
        "Cancelled by jane.doe",
        "of **web-app** on branch feature-A",
        "> fix snake_case names (v1.2) for \\@\u{200D}jane, see \\#12",
    ] {
        assert!(body.contains(verbatim), "missing `{verbatim}` in:\n{body}");
    }
}
