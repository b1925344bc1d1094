//! A run's whole life: each event type gives each kind its state and text, and routing hands
//! each integration the types it takes.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_github::STATUS_PATH;
use crate::support::fake_gitlab::{PROJECT_ROUTE, SHA as GITLAB_SHA, gitlab_event};
use crate::support::fake_pull::fake_pull;
use crate::support::fake_slack::{CHANNEL_ID, Channel};
use crate::support::process::sample;
use crate::support::providers::{build, deliver, json_of, requests};
use crate::support::{
    Receiver, TestApp, bitbucket_status, github_pr_comment, github_status, gitlab_status,
    lifecycle_event, slack_app, unique, wait_until, webhook,
};

const BITBUCKET_STATUS: &str =
    "/2.0/repositories/acme/web-app/commit/5a7edc9a156e417068060d67109021351fc7d9b8/statuses/build";

/// A wiremock server answering `201` to every POST on `route`.
async fn answering(route: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 1 })))
        .mount(&server)
        .await;
    server
}

/// The four events of one run, in order, a minute apart.
fn life(run_id: &str, adjust: impl Fn(Value) -> Value) -> Vec<Value> {
    [
        ("run.started", "2026-11-21T10:00:00Z"),
        ("run.finished", "2026-11-21T10:01:00Z"),
        ("run.timed_out", "2026-11-21T10:02:00Z"),
        ("run.canceled", "2026-11-21T10:03:00Z"),
    ]
    .into_iter()
    .map(|(kind, time)| adjust(lifecycle_event(run_id, kind, time)))
    .collect()
}

/// The `(state, description)` each event of `events` gave, in order.
async fn states(
    server: &MockServer,
    route: &str,
    events: &[Value],
    spec: crate::support::Spec,
) -> Vec<(String, String)> {
    let status = build(spec);
    for event in events {
        deliver(&status, event).await.unwrap();
    }
    requests(server, "POST", route)
        .await
        .iter()
        .map(|request| {
            let body = json_of(request);
            (
                body["state"].as_str().unwrap().to_owned(),
                body["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: [(&str, &str); 4]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(state, text)| ((*state).to_owned(), (*text).to_owned()))
        .collect()
}

#[tokio::test]
async fn each_type_gives_each_commit_status_its_state_and_description() {
    let run = unique("run");
    let descriptions = [
        "Running…",
        "100 passed, 2 failed",
        "Timed out after 30m",
        "Cancelled by jane.doe",
    ];

    let github = answering(STATUS_PATH).await;
    let spec = github_status("gh", &github.uri());
    assert_eq!(
        states(&github, STATUS_PATH, &life(&run, |e| e), spec).await,
        pairs([
            ("pending", descriptions[0]),
            ("failure", descriptions[1]),
            ("failure", descriptions[2]),
            ("failure", descriptions[3]),
        ])
    );

    let route = format!("{PROJECT_ROUTE}/statuses/{GITLAB_SHA}");
    let gitlab = answering(&route).await;
    let spec = gitlab_status("gl", &format!("{}/api/v4", gitlab.uri()));
    assert_eq!(
        states(&gitlab, &route, &life(&run, gitlab_event), spec).await,
        pairs([
            ("running", descriptions[0]),
            ("failed", descriptions[1]),
            ("failed", descriptions[2]),
            ("failed", descriptions[3]),
        ])
    );

    let bitbucket = answering(BITBUCKET_STATUS).await;
    let on_bitbucket = |mut event: Value| {
        event["data"]["commit"]["remoteOrigin"] = json!("git@bitbucket.org:Acme/Web-App.git");
        event
    };
    let spec = bitbucket_status("bb", &bitbucket.uri());
    assert_eq!(
        states(
            &bitbucket,
            BITBUCKET_STATUS,
            &life(&run, on_bitbucket),
            spec
        )
        .await,
        pairs([
            ("INPROGRESS", descriptions[0]),
            ("FAILED", descriptions[1]),
            ("FAILED", descriptions[2]),
            ("FAILED", descriptions[3]),
        ])
    );
}

#[tokio::test]
async fn a_finished_run_without_failures_succeeds_everywhere() {
    let run = unique("run");
    let passed = |mut event: Value| {
        event["data"]["results"]["failures"] = json!(0);
        event
    };
    let finished = [passed(lifecycle_event(
        &run,
        "run.finished",
        "2026-11-21T10:01:00Z",
    ))];
    let github = answering(STATUS_PATH).await;
    let sent = states(
        &github,
        STATUS_PATH,
        &finished,
        github_status("gh", &github.uri()),
    )
    .await;
    assert_eq!(
        sent[0],
        ("success".to_owned(), "100 passed, 0 failed".to_owned())
    );
    let route = format!("{PROJECT_ROUTE}/statuses/{GITLAB_SHA}");
    let gitlab = answering(&route).await;
    let finished = [gitlab_event(finished[0].clone())];
    let spec = gitlab_status("gl", &format!("{}/api/v4", gitlab.uri()));
    assert_eq!(
        states(&gitlab, &route, &finished, spec).await[0].0,
        "success"
    );
}

#[tokio::test]
async fn webhooks_get_the_ends_of_a_run_by_default_and_what_events_names_otherwise() {
    let mut app = TestApp::new().await;
    let ends = Receiver::ok().await;
    let starts = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("ends", &ends.url("/ends")));
        config.add(webhook("starts", &starts.url("/starts")).with("events", ["run.started"]));
    })
    .await;

    // A run of its own per type: within one run, the latest event would supersede the others
    // whenever it came first.
    let run = unique("run");
    for event in life(&run, |e| e) {
        let own = lifecycle_event(
            &unique("run"),
            event["type"].as_str().unwrap(),
            event["time"].as_str().unwrap(),
        );
        let event = if event["type"] == "run.started" {
            event
        } else {
            own
        };
        app.publish(&event).await;
    }
    let mut received: Vec<_> = ends
        .wait_for(3)
        .await
        .iter()
        .map(|request| request.json()["event"].as_str().unwrap().to_owned())
        .collect();
    received.sort();
    assert_eq!(received, ["RUN_CANCELED", "RUN_FINISHED", "RUN_TIMED_OUT"]);
    let started = starts.wait_for(1).await.remove(0).json();
    assert_eq!(started["event"], "RUN_STARTED");
    assert_eq!(started["time"], "2026-11-21T10:00:00Z");
    assert_eq!(started["overall"], Value::Null);
    assert_eq!(started["runId"], run.as_str());
    assert!(started.get("cancellation").is_none());
}

/// The states of the commit statuses `server` took, in order.
async fn status_states(server: &MockServer) -> Vec<String> {
    requests(server, "POST", STATUS_PATH)
        .await
        .iter()
        .map(|request| json_of(request)["state"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_runs_status_goes_pending_then_failure_with_one_comment_edited() {
    let (github, comments) = fake_pull().await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(github_status("status", &github.uri()));
        config.add(github_pr_comment("comment", &github.uri()));
    })
    .await;
    let run = unique("run");
    let started = lifecycle_event(&run, "run.started", "2026-11-21T10:00:00Z");
    app.publish(&started).await;
    wait_until("the start is applied", Duration::from_secs(20), || async {
        status_states(&github).await.len() == 1 && comments.lock().unwrap().len() == 1
    })
    .await;
    assert!(comments.lock().unwrap()[0].1.starts_with("⏳ Running"));

    app.publish(&lifecycle_event(
        &run,
        "run.finished",
        "2026-11-21T10:05:00Z",
    ))
    .await;
    wait_until("the end is applied", Duration::from_secs(20), || async {
        status_states(&github).await.len() == 2
            && requests(&github, "PATCH", "/repos/acme/web-app/issues/comments/900")
                .await
                .len()
                == 1
    })
    .await;
    assert_eq!(status_states(&github).await, ["pending", "failure"]);
    let comments = comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 1, "one comment per run");
    assert!(comments[0].1.starts_with("Finished"), "{}", comments[0].1);
    assert!(comments[0].1.contains("by the final results"));
}

#[tokio::test]
async fn a_late_start_after_the_end_is_superseded_and_the_status_stays_final() {
    let (github, _) = fake_pull().await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(github_status("late-status", &github.uri()));
    })
    .await;
    let run = unique("run");
    app.publish(&lifecycle_event(
        &run,
        "run.finished",
        "2026-11-21T10:05:00Z",
    ))
    .await;
    wait_until("the end is applied", Duration::from_secs(20), || async {
        status_states(&github).await.len() == 1
    })
    .await;
    app.publish(&lifecycle_event(
        &run,
        "run.started",
        "2026-11-21T10:00:00Z",
    ))
    .await;
    wait_until(
        "the late start is settled",
        Duration::from_secs(20),
        || async {
            app.delivery_history(&run)
                .iter()
                .any(|(kind, _, _)| kind == "run.started")
        },
    )
    .await;
    let entries = app.delivery_history(&run);
    let start = entries
        .iter()
        .find(|(kind, _, _)| kind == "run.started")
        .unwrap();
    assert_eq!(start.1, "skipped");
    assert!(start.2.contains("superseded"), "{start:?}");
    assert_eq!(status_states(&github).await, ["failure"]);
    // Deliveries are counted by event type too.
    let page = reqwest::get(app.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (event, outcome) in [("run.finished", "delivered"), ("run.started", "skipped")] {
        let labels = [
            ("integration", "late-status"),
            ("event", event),
            ("outcome", outcome),
        ];
        assert_eq!(
            sample(&page, "run_notifier_deliveries_total", &labels),
            Some(1.0),
            "{page}"
        );
    }
}

#[tokio::test]
async fn duplicated_lifecycle_events_have_one_effect_each() {
    let (github, _) = fake_pull().await;
    let mut app = TestApp::new().await;
    let hook = Receiver::ok().await;
    app.spawn_worker(|config| {
        // A short timeout makes short leases, which copies wait out.
        config.add(github_status("status", &github.uri()).with("timeout", "1s"));
        config.add(webhook("hook", &hook.url("/hook")).with("timeout", "1s"));
    })
    .await;
    let run = unique("run");
    let started = lifecycle_event(&run, "run.started", "2026-11-21T10:00:00Z");
    let timed_out = lifecycle_event(&run, "run.timed_out", "2026-11-21T10:30:00Z");
    for event in [&started, &started] {
        app.publish(event).await;
    }
    wait_until(
        "the start is delivered",
        Duration::from_secs(20),
        || async {
            app.delivery_history(&run)
                .iter()
                .any(|(kind, state, _)| kind == "run.started" && state == "delivered")
        },
    )
    .await;
    for event in [&timed_out, &timed_out] {
        app.publish(event).await;
    }
    wait_until(
        "every type is delivered",
        Duration::from_secs(20),
        || async {
            app.delivery_history(&run)
                .iter()
                .filter(|(_, state, _)| state == "delivered")
                .count()
                == 3
        },
    )
    .await;
    // A copy that came while its twin was in flight looks again once the twin's lease ends.
    wait_until(
        "the copies are settled",
        Duration::from_secs(60),
        || async { app.waiting_anywhere().await == 0 },
    )
    .await;
    app.stop_worker().await;
    assert_eq!(status_states(&github).await, ["pending", "failure"]);
    let hooks: Vec<_> = hook
        .received()
        .iter()
        .map(|r| r.json()["event"].clone())
        .collect();
    assert_eq!(hooks, [json!("RUN_TIMED_OUT")]);
}

/// A `slack_app` posting to the fake channel `#deploys` of `server`.
fn slack_app_spec(server: &MockServer) -> crate::support::Spec {
    slack_app("app", &format!("{}/api", server.uri()), CHANNEL_ID)
}

#[tokio::test]
async fn a_restart_between_start_and_end_edits_the_same_slack_message() {
    let server = MockServer::start().await;
    let channel = Channel::new(0, 100);
    channel.mount(&server).await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack_app_spec(&server));
    })
    .await;
    let run = unique("run");
    app.publish(&lifecycle_event(
        &run,
        "run.started",
        "2026-11-21T10:00:00Z",
    ))
    .await;
    wait_until("the start is posted", Duration::from_secs(20), || async {
        channel.for_run(&run).len() == 1
    })
    .await;
    app.stop_worker().await;

    app.spawn_worker(|config| {
        config.add(slack_app_spec(&server));
    })
    .await;
    app.publish(&lifecycle_event(
        &run,
        "run.finished",
        "2026-11-21T10:05:00Z",
    ))
    .await;
    wait_until("the end edits it", Duration::from_secs(20), || async {
        channel.for_run(&run).first().is_some_and(|m| m.edits == 1)
    })
    .await;
    app.stop_worker().await;
    let messages = channel.for_run(&run);
    assert_eq!(messages.len(), 1, "one message per run");
    assert!(
        messages[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("Run finished"),
        "{}",
        messages[0].body
    );
    assert_eq!(channel.messages.lock().unwrap().len(), 1, "no other post");
}

#[tokio::test]
async fn thread_replies_tell_the_thread_of_each_end_of_the_run() {
    let server = MockServer::start().await;
    let channel = Channel::new(0, 100);
    channel.mount(&server).await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.add(slack_app_spec(&server).with("thread_replies", true));
    })
    .await;
    let run = unique("run");
    app.publish(&lifecycle_event(
        &run,
        "run.started",
        "2026-11-21T10:00:00Z",
    ))
    .await;
    wait_until("the start is posted", Duration::from_secs(20), || async {
        channel.for_run(&run).len() == 1
    })
    .await;
    app.publish(&lifecycle_event(
        &run,
        "run.timed_out",
        "2026-11-21T10:30:00Z",
    ))
    .await;
    wait_until(
        "the end edits and replies",
        Duration::from_secs(20),
        || async { channel.messages.lock().unwrap().len() == 2 },
    )
    .await;
    let messages = channel.messages.lock().unwrap().clone();
    let (message, reply) = (&messages[0], &messages[1]);
    assert_eq!(message.edits, 1);
    assert_eq!(reply.body["thread_ts"], message.ts.as_str());
    assert!(
        reply.body["text"]
            .as_str()
            .unwrap()
            .starts_with("Run timed out after 30m"),
        "{}",
        reply.body
    );
}
