//! The run's object at the provider, kept in the ledger: a check run, a comment, a note and a
//! Slack message are edited by the id kept from the run's earlier event, with no lookup; one
//! deleted at the provider meanwhile is made anew (the delivery is `delivered`), and the next
//! event edits the new one.

use std::time::Duration;

use run_notifier::failure::FailureKind;
use run_notifier::integrations::Receipt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_checks::{CHECK_RUNS, FakeChecks, github_check_run};
use crate::support::fake_gitlab::{Notes, PROJECT_ROUTE, Paging, gitlab_event};
use crate::support::fake_pull::{COMMENT, COMMENTS_42, fake_pull};
use crate::support::fake_slack::{CHANNEL_ID, Channel};
use crate::support::providers::{build, deliver_kept, requests};
use crate::support::{
    SHA, TestApp, event, github_pr_comment, gitlab_mr_note, lifecycle_event, slack_app, unique,
    wait_until,
};

const CHECKS_OF_SHA: &str =
    "/repos/acme/web-app/commits/5a7edc9a156e417068060d67109021351fc7d9b8/check-runs";

/// One run's events at a worker with one integration, a minute apart, each settled in the
/// ledger before the next is published (so none supersedes another).
struct Life<'a> {
    app: &'a TestApp,
    run: String,
    /// Puts an event on the provider's project (GitLab's remote), or leaves it.
    adjust: fn(Value) -> Value,
}

impl<'a> Life<'a> {
    fn new(app: &'a TestApp, adjust: fn(Value) -> Value) -> Self {
        Self {
            app,
            run: unique("run"),
            adjust,
        }
    }

    /// Publishes the run's event of type `kind` and returns the ledger's state and receipt (or
    /// last error) once it is settled.
    async fn apply(&self, kind: &str) -> (String, String) {
        let minute = [
            "run.started",
            "run.finished",
            "run.timed_out",
            "run.canceled",
        ]
        .iter()
        .position(|k| *k == kind)
        .unwrap();
        let time = format!("2026-11-21T10:0{minute}:00Z");
        self.app
            .publish(&(self.adjust)(lifecycle_event(&self.run, kind, &time)))
            .await;
        let settled = || {
            self.app
                .delivery_history(&self.run)
                .into_iter()
                .find(|(event, _, _)| event == kind)
        };
        wait_until(
            &format!("{kind} is settled"),
            Duration::from_secs(30),
            || async { settled().is_some() },
        )
        .await;
        let (_, state, receipt) = settled().unwrap();
        (state, receipt)
    }
}

fn delivered(receipt: &str) -> (String, String) {
    ("delivered".to_owned(), receipt.to_owned())
}

/// The paths of the requests `server` got with `verb` under `prefix`.
async fn paths(server: &MockServer, verb: &str, prefix: &str) -> Vec<String> {
    let received = server.received_requests().await.unwrap_or_default();
    received
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(prefix))
        .map(|r| r.url.path().to_owned())
        .collect()
}

#[tokio::test]
async fn a_check_run_is_patched_by_its_kept_id_and_one_gone_is_created_anew() {
    let github = FakeChecks::start().await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(github_check_run("checks", &github.uri()));
    })
    .await;
    let life = Life::new(&app, |e| e);
    let lookups = || async { github.requests("GET", CHECKS_OF_SHA).await.len() };

    assert_eq!(
        life.apply("run.started").await,
        delivered("created check run 1000 (in_progress)")
    );
    assert_eq!(
        lookups().await,
        1,
        "the first event looked before it created"
    );
    assert_eq!(
        life.apply("run.finished").await,
        delivered("updated check run 1000 (completed: failure)")
    );
    assert_eq!(lookups().await, 1, "the kept id needs no lookup");

    github.delete(1000);
    assert_eq!(
        life.apply("run.timed_out").await,
        delivered("check run 1000 was gone; created check run 1001 (completed: timed_out)")
    );
    assert_eq!(lookups().await, 2, "gone: looked up as without an id");
    assert_eq!(
        life.apply("run.canceled").await,
        delivered("updated check run 1001 (completed: cancelled)")
    );
    assert_eq!(lookups().await, 2, "the new id was kept");

    let run = life.run.clone();
    app.stop_worker().await;
    let runs = github.of_run(&run);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (&runs[0]["id"], &runs[0]["conclusion"]),
        (&json!(1001), &json!("cancelled"))
    );
    assert_eq!(
        paths(&github.server, "PATCH", CHECK_RUNS).await,
        [1000, 1000, 1001].map(|id| format!("{CHECK_RUNS}/{id}"))
    );
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_slack_message_is_updated_by_its_kept_ts_and_one_deleted_is_posted_anew() {
    let server = MockServer::start().await;
    let channel = Channel::new(0, 100);
    channel.mount(&server).await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack_app(
            "app",
            &format!("{}/api", server.uri()),
            CHANNEL_ID,
        ));
    })
    .await;
    let life = Life::new(&app, |e| e);
    let (first, second) = ("1800000000.000000", "1800000000.000001");

    assert_eq!(
        life.apply("run.started").await,
        delivered(&format!("posted message {first} in {CHANNEL_ID}"))
    );
    assert_eq!(
        life.apply("run.finished").await,
        delivered(&format!("updated message {first} in {CHANNEL_ID}"))
    );

    channel.delete(first);
    assert_eq!(
        life.apply("run.timed_out").await,
        delivered(&format!(
            "message {first} in {CHANNEL_ID} was gone; posted message {second} in {CHANNEL_ID}"
        ))
    );
    assert_eq!(
        life.apply("run.canceled").await,
        delivered(&format!("updated message {second} in {CHANNEL_ID}"))
    );

    let run = life.run.clone();
    app.stop_worker().await;
    let messages = channel.for_run(&run);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0].ts.as_str(), messages[0].edits), (second, 1));
    let text = messages[0].body["text"].as_str().unwrap();
    assert!(text.starts_with("Run cancelled by jane.doe"), "{text}");
    let posts = requests(&server, "POST", "/api/chat.postMessage").await;
    let updates = requests(&server, "POST", "/api/chat.update").await;
    assert_eq!((posts.len(), updates.len()), (2, 3));
    assert!(
        requests(&server, "GET", "/api/conversations.history")
            .await
            .is_empty(),
        "the kept ts needs no look at the channel"
    );
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_pr_comment_is_edited_by_its_kept_id_and_one_deleted_is_posted_anew() {
    let (github, comments) = fake_pull().await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(github_pr_comment("comment", &github.uri()));
    })
    .await;
    let life = Life::new(&app, |e| e);
    let listed = || async { requests(&github, "GET", COMMENTS_42).await.len() };

    assert_eq!(
        life.apply("run.started").await,
        delivered("posted comment 900 on #42")
    );
    assert_eq!(
        listed().await,
        1,
        "the first event looked for a marked comment"
    );
    assert_eq!(
        life.apply("run.finished").await,
        delivered("updated comment 900 on #42")
    );
    assert_eq!(listed().await, 1, "the kept id needs no list of comments");

    comments.lock().unwrap().retain(|(id, _)| *id != 900);
    assert_eq!(
        life.apply("run.timed_out").await,
        delivered("comment 900 on #42 was gone; posted comment 901 on #42")
    );
    assert_eq!(
        listed().await,
        2,
        "gone: searched by marker as without an id"
    );
    assert_eq!(
        life.apply("run.canceled").await,
        delivered("updated comment 901 on #42")
    );
    assert_eq!(listed().await, 2, "the new id was kept");

    app.stop_worker().await;
    let comments = comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].0, 901);
    assert!(
        comments[0].1.starts_with("Cancelled by jane.doe"),
        "{comments:?}"
    );
    assert_eq!(
        paths(&github, "PATCH", COMMENT).await,
        [900, 900, 901].map(|id| format!("{COMMENT}/{id}"))
    );
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_mr_note_is_edited_by_its_kept_id_and_one_deleted_is_posted_anew() {
    let server = MockServer::start().await;
    let notes = Notes::new(0, 20, Paging::NextPageHeader);
    notes.mount(&server, 42).await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(gitlab_mr_note("note", &format!("{}/api/v4", server.uri())));
    })
    .await;
    let life = Life::new(&app, gitlab_event);
    let route = format!("{PROJECT_ROUTE}/merge_requests/42/notes");
    let listed = || async { requests(&server, "GET", &route).await.len() };

    assert_eq!(
        life.apply("run.started").await,
        delivered("posted note 5000 on !42")
    );
    assert_eq!(
        listed().await,
        1,
        "the first event looked for a marked note"
    );
    assert_eq!(
        life.apply("run.finished").await,
        delivered("updated note 5000 on !42")
    );
    assert_eq!(listed().await, 1, "the kept id needs no list of notes");

    notes.delete(5000);
    assert_eq!(
        life.apply("run.timed_out").await,
        delivered("note 5000 on !42 was gone; posted note 5001 on !42")
    );
    assert_eq!(
        listed().await,
        2,
        "gone: searched by marker as without an id"
    );
    assert_eq!(
        life.apply("run.canceled").await,
        delivered("updated note 5001 on !42")
    );
    assert_eq!(listed().await, 2, "the new id was kept");

    app.stop_worker().await;
    let notes = notes.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!((notes[0].id, notes[0].edits), (5001, 1));
    assert!(
        notes[0].body.starts_with("Cancelled by jane.doe"),
        "{notes:?}"
    );
    assert_eq!(
        paths(&server, "PUT", &route).await,
        [5000, 5000, 5001].map(|id| format!("{route}/{id}"))
    );
    assert!(app.take_dead_letters().await.is_empty());
}

/// A kept id GitHub does not know (not deleted: from elsewhere) while the run's check run is on
/// the commit: the fallback finds that one and patches it, and keeps its id.
#[tokio::test]
async fn a_stale_check_run_id_falls_back_to_the_lookup_which_finds_the_runs_check_run() {
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("checks", &github.uri()));
    let run = event();
    let run_id = run["data"]["runId"].as_str().unwrap();
    crate::support::providers::deliver(&check_run, &run)
        .await
        .unwrap();

    let delivered = deliver_kept(&check_run, &run, "4242").await.unwrap();

    assert_eq!(
        delivered.receipt,
        Receipt::Sent(
            "check run 4242 was gone; updated check run 1000 (completed: cancelled)".into()
        )
    );
    assert_eq!(delivered.object_id.as_deref(), Some("1000"));
    assert_eq!(github.of_run(run_id).len(), 1);
    assert_eq!(github.requests("POST", CHECK_RUNS).await.len(), 1);
    let listed = github.requests("GET", CHECKS_OF_SHA).await;
    assert!(listed.iter().all(|r| r.url.path().contains(SHA)));
}

/// The fallback is tried once: when its own requests fail (here the merge request itself is
/// gone), the delivery fails as they were classified, naming GitLab's answer.
#[tokio::test]
async fn a_gone_note_whose_merge_request_is_gone_too_fails_permanently_saying_why() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "404 Not found"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "404 Not found"})))
        .mount(&server)
        .await;
    let note = build(gitlab_mr_note("note", &format!("{}/api/v4", server.uri())));

    let error = deliver_kept(&note, &gitlab_event(event()), "42:5000")
        .await
        .unwrap_err();

    assert_eq!(error.kind(), Some(FailureKind::Permanent));
    let shown = error.to_string();
    assert!(shown.contains("404"), "{shown}");
    assert!(
        shown.contains("no such project, commit or merge request"),
        "{shown}"
    );
    let received = server.received_requests().await.unwrap();
    let methods: Vec<&str> = received.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["PUT", "GET"], "one edit, one search, no loop");
}

/// A message the app may not edit still stands in the channel: posting again would give the
/// run two, so `cant_update_message` and `edit_window_closed` stay permanent failures.
#[tokio::test]
async fn a_slack_message_that_cannot_be_edited_is_a_permanent_failure_not_a_second_post() {
    for code in ["cant_update_message", "edit_window_closed"] {
        let server = MockServer::start().await;
        Mock::given(path("/api/chat.update"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code})),
            )
            .mount(&server)
            .await;
        let app = build(slack_app(
            "app",
            &format!("{}/api", server.uri()),
            CHANNEL_ID,
        ));

        let error = deliver_kept(&app, &event(), &format!("{CHANNEL_ID} 1800000000.000000"))
            .await
            .unwrap_err();

        assert_eq!(error.kind(), Some(FailureKind::Permanent), "{code}");
        let shown = error.to_string();
        assert!(shown.contains(code), "{shown}");
        assert!(shown.contains("can no longer be edited"), "{shown}");
        assert!(
            requests(&server, "POST", "/api/chat.postMessage")
                .await
                .is_empty(),
            "{code}: nothing posted"
        );
    }
}
