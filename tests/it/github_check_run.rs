//! `github_check_run` against a GitHub that keeps check runs: one check run per run, created at
//! the run's first event and updated on the later ones, found again by its name and
//! `external_id` when the worker has no id for it; every request as GitHub's OpenAPI
//! description has it; App auth only.

use std::time::Duration;

use run_notifier::integrations::Receipt;
use serde_json::{Value, json};

use crate::support::fake_checks::{APP_ID, CHECK_RUNS, FakeChecks, github_check_run};
use crate::support::openapi::{check_runs_description, query_violations, violations};
use crate::support::providers::{build, config_error, deliver, json_of, parse};
use crate::support::{HOSTILE, SHA, TestApp, event, lifecycle_event, wait_until};

const CHECKS_OF_SHA: &str =
    "/repos/acme/web-app/commits/5a7edc9a156e417068060d67109021351fc7d9b8/check-runs";

fn run_id(event: &Value) -> &str {
    event["data"]["runId"].as_str().unwrap()
}

/// Run `run`'s event of type `kind` at `time` (see [`lifecycle_event`]).
fn lifecycle(run: &Value, kind: &str, time: &str) -> Value {
    lifecycle_event(run_id(run), kind, time)
}

#[tokio::test]
async fn a_started_run_gets_an_in_progress_check_run_that_its_finish_completes() {
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let run = event();

    let started = deliver(
        &check_run,
        &lifecycle(&run, "run.started", "2026-11-21T10:00:00Z"),
    )
    .await
    .unwrap();
    let after_start = github.of_run(run_id(&run));
    let finished = deliver(
        &check_run,
        &lifecycle(&run, "run.finished", "2026-11-21T10:20:00Z"),
    )
    .await
    .unwrap();

    assert_eq!(
        (started, finished),
        (
            Receipt::Sent("created check run 1000 (in_progress)".into()),
            Receipt::Sent("updated check run 1000 (completed: failure)".into())
        )
    );
    let begun = &after_start[0];
    assert_eq!(begun["status"], "in_progress");
    assert_eq!(begun["started_at"], "2026-11-21T10:00:00Z");
    assert!(begun.get("conclusion").is_none(), "{begun}");
    assert_eq!(begun["output"]["title"], "Running");
    let summary = begun["output"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("⏳ **Running**"), "{summary}");
    assert!(summary.contains("no results yet"), "{summary}");
    let runs = github.of_run(run_id(&run));
    assert_eq!(runs.len(), 1, "one check run per run: {runs:?}");
    let done = &runs[0];
    assert_eq!(
        (done["id"].as_u64(), &done["updates"]),
        (Some(1000), &json!(1))
    );
    assert_eq!(done["status"], "completed");
    assert_eq!(done["conclusion"], "failure", "2 failed tests");
    assert_eq!(done["completed_at"], "2026-11-21T10:20:00Z");
    assert_eq!(done["output"]["title"], "Failed: 100 passed, 2 failed");
}

#[tokio::test]
async fn a_finished_run_without_failures_succeeds_and_a_timed_out_one_times_out() {
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let mut passed = lifecycle(&event(), "run.finished", "2026-11-21T10:20:00Z");
    passed["data"]["results"]["failures"] = json!(0);
    let timed_out = event();

    deliver(&check_run, &passed).await.unwrap();
    let receipt = deliver(
        &check_run,
        &lifecycle(&timed_out, "run.timed_out", "2026-11-21T10:30:00Z"),
    )
    .await
    .unwrap();

    let passed = &github.of_run(run_id(&passed))[0];
    assert_eq!(
        (&passed["status"], &passed["conclusion"]),
        (&json!("completed"), &json!("success")),
        "created completed at once"
    );
    assert_eq!(
        receipt,
        Receipt::Sent("created check run 1001 (completed: timed_out)".into())
    );
    let timed_out = &github.of_run(run_id(&timed_out))[0];
    assert_eq!(timed_out["conclusion"], "timed_out");
    assert_eq!(timed_out["completed_at"], "2026-11-21T10:30:00Z");
    assert_eq!(
        timed_out["output"]["title"],
        "Timed out after 30m: 100 passed, 2 failed"
    );
    let summary = timed_out["output"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("⌛ **Timed out** after 30m"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_cancelled_run_gets_one_check_run_concluded_cancelled_naming_who_cancelled() {
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let run = event();

    let receipt = deliver(&check_run, &run).await.unwrap();

    assert_eq!(
        receipt,
        Receipt::Sent("created check run 1000 (completed: cancelled)".into())
    );
    let runs = github.of_run(run_id(&run));
    assert_eq!(runs.len(), 1, "{runs:?}");
    let created = &runs[0];
    assert_eq!(created["name"], "run-notifier / web-app");
    assert_eq!(created["head_sha"], SHA);
    assert_eq!(created["details_url"], run["data"]["runUrl"]);
    assert_eq!(created["status"], "completed");
    assert_eq!(created["conclusion"], "cancelled");
    assert_eq!(created["completed_at"], "2026-11-21T10:15:01Z");
    assert!(created.get("started_at").is_none(), "{created}");
    let title = created["output"]["title"].as_str().unwrap();
    assert_eq!(title, "Cancelled by jane.doe: 100 passed, 2 failed");
    let summary = created["output"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("**Cancelled** by jane.doe"),
        "{summary}"
    );
    assert!(
        summary.contains("| 120 | 100 | 2 | 3 | 15 | 1 | 4 |"),
        "{summary}"
    );
    let posted = github.requests("POST", CHECK_RUNS).await;
    assert_eq!(
        posted[0].headers.get("authorization").unwrap(),
        "Bearer ghs_installation_1",
        "written with the App's installation token"
    );
}

#[tokio::test]
async fn the_summary_shows_the_fail_fast_badge_and_keeps_hostile_values_inert() {
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let mut run = event();
    run["data"]["cancellation"]["reason"] = json!("failFast");
    run["data"]["cancellation"]["actor"] = json!(HOSTILE);

    deliver(&check_run, &run).await.unwrap();

    let created = &github.of_run(run_id(&run))[0];
    let summary = created["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("**⚡ fail-fast**"), "{summary}");
    for live in ["<script>", "<img", "[click](", "@everyone", "\n# heading"] {
        assert!(!summary.contains(live), "{live} stayed live in {summary}");
    }
    let title = created["output"]["title"].as_str().unwrap();
    assert!(!title.contains('\n'), "the title is one line: {title:?}");
}

#[tokio::test]
async fn without_a_known_id_the_check_run_is_found_by_name_and_external_id_not_created_twice() {
    let github = FakeChecks::start().await;
    let run = event();
    // The same name on the commit for another run, and this run's id under another App.
    github.seed(json!({"name": "run-notifier / web-app", "head_sha": SHA, "external_id": "another-run", "status": "completed", "conclusion": "success", "app": {"id": APP_ID}}));
    github.seed(json!({"name": "run-notifier / web-app", "head_sha": SHA, "external_id": run_id(&run), "status": "completed", "conclusion": "success", "app": {"id": 7}}));

    // Two lives of the worker that share nothing but GitHub.
    let first = build(github_check_run("gh-checks", &github.uri()));
    deliver(&first, &run).await.unwrap();
    let restarted = build(github_check_run("gh-checks", &github.uri()));
    let receipt = deliver(&restarted, &run).await.unwrap();

    assert_eq!(
        receipt,
        Receipt::Sent("updated check run 1000 (completed: cancelled)".into())
    );
    assert_eq!(github.requests("POST", CHECK_RUNS).await.len(), 1);
    let mine: Vec<Value> = github
        .of_run(run_id(&run))
        .into_iter()
        .filter(|r| r["app"]["id"] == APP_ID)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["updates"], 1);
    let listed = github.requests("GET", CHECKS_OF_SHA).await;
    assert_eq!(listed.len(), 2, "each life looked before it wrote");
    let query: Vec<(String, String)> = listed[1].url.query_pairs().into_owned().collect();
    for expected in [
        ("check_name", "run-notifier / web-app"),
        ("filter", "all"),
        ("app_id", "123456"),
    ] {
        assert!(
            query.contains(&(expected.0.into(), expected.1.into())),
            "{query:?}"
        );
    }
    let untouched = github.runs.lock().unwrap();
    assert!(
        untouched
            .iter()
            .filter(|r| r["id"] != 1000)
            .all(|r| r.get("updates").is_none())
    );
}

#[tokio::test]
async fn every_request_is_as_githubs_openapi_description_has_it() {
    let description = check_runs_description();
    let github = FakeChecks::start().await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let mut run = event();
    run["data"]["cancellation"]["actor"] = json!(HOSTILE);
    let started = lifecycle(&run, "run.started", "2026-11-21T10:00:00Z");
    deliver(&check_run, &started).await.unwrap();
    deliver(&check_run, &run).await.unwrap();

    let created = github.requests("POST", CHECK_RUNS).await;
    let updated = github.requests("PATCH", CHECK_RUNS).await;
    let listed = github.requests("GET", CHECKS_OF_SHA).await;
    assert_eq!(
        (created.len(), updated.len(), listed.len()),
        (1, 1, 2),
        "one create, one update, a lookup before each"
    );
    for (requests, operation) in [(&created, "checks/create"), (&updated, "checks/update")] {
        let schema = &description[operation]["requestBody"];
        for request in requests {
            let problems = violations(schema, &json_of(request));
            assert!(problems.is_empty(), "{operation}: {problems:?}");
        }
    }
    assert_eq!(json_of(&created[0])["status"], "in_progress");
    assert_eq!(json_of(&updated[0])["conclusion"], "cancelled");
    assert!(json_of(&updated[0]).get("head_sha").is_none());
    for request in &listed {
        let problems = query_violations(&description["checks/list-for-ref"]["query"], &request.url);
        assert!(problems.is_empty(), "checks/list-for-ref: {problems:?}");
    }
    // The checker itself catches what GitHub would refuse.
    let mut broken = json_of(&updated[0]);
    broken.as_object_mut().unwrap().remove("conclusion");
    broken["completed_at"] = json!("yesterday");
    let problems = violations(&description["checks/update"]["requestBody"], &broken);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn a_token_is_refused_at_load_because_only_apps_write_check_runs() {
    let spec = github_check_run("gh-checks", "https://api.github.com")
        .with("auth", json!({"token": "ghp_secret_token"}));
    let error = config_error(spec);
    assert!(
        error.contains("integrations[0] (gh-checks): `github_check_run` needs a GitHub App"),
        "{error}"
    );
    assert!(error.contains("`checks: write`"), "{error}");
    assert!(!error.contains("ghp_secret_token"), "{error}");
}

#[tokio::test]
async fn a_repository_outside_the_allowlist_is_skipped_before_any_request() {
    let github = FakeChecks::start().await;
    let check_run = build(
        github_check_run("gh-checks", &github.uri()).with("repositories", json!(["acme/api-*"])),
    );

    let receipt = deliver(&check_run, &event()).await.unwrap();

    let Receipt::Skipped(reason) = receipt else {
        panic!("{receipt:?}")
    };
    assert!(reason.contains("acme/web-app"), "{reason}");
    assert!(github.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn when_the_lookup_fails_preview_still_shows_the_check_run_it_would_write() {
    let github = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&github)
        .await;
    let check_run = build(github_check_run("gh-checks", &github.uri()));
    let run = parse(&event());

    let preview = run_notifier::preview::render(&[check_run], &run, chrono::Utc::now()).await;

    let section = preview
        .split("\n== gh-checks (github_check_run): ")
        .nth(1)
        .unwrap();
    assert!(section.starts_with("would fail: "), "{preview}");
    let expected = format!(
        "once that lookup answers, it would POST or PATCH the check run `run-notifier / web-app` on acme/web-app at {SHA} (PATCH, without `head_sha`, updates the run's earlier check run) with this body:\n\n{{\"name\":\"run-notifier / web-app\",\"head_sha\":\"{SHA}\",\"external_id\":\"{}\"",
        run.data.run_id.as_str()
    );
    assert!(section.contains(&expected), "{preview}");
}

#[tokio::test]
async fn a_restart_between_start_and_finish_patches_the_same_check_run() {
    let github = FakeChecks::start().await;
    let mut app = TestApp::new().await;
    let run = event();
    let integration = || github_check_run("gh-checks", &github.uri());

    app.spawn_worker(|config| {
        config.add(integration());
    })
    .await;
    app.publish(&lifecycle(&run, "run.started", "2026-11-21T10:00:00Z"))
        .await;
    wait_until(
        "the check run is in progress",
        Duration::from_secs(20),
        || {
            let runs = github.of_run(run_id(&run));
            async move { runs.first().is_some_and(|r| r["status"] == "in_progress") }
        },
    )
    .await;
    app.stop_worker().await;

    // A fresh worker on the same ledger.
    app.spawn_worker(|config| {
        config.add(integration());
    })
    .await;
    app.publish(&lifecycle(&run, "run.finished", "2026-11-21T10:20:00Z"))
        .await;
    wait_until(
        "the check run is completed",
        Duration::from_secs(20),
        || {
            let runs = github.of_run(run_id(&run));
            async move { runs.first().is_some_and(|r| r["status"] == "completed") }
        },
    )
    .await;
    app.stop_worker().await;

    let runs = github.of_run(run_id(&run));
    assert_eq!(runs.len(), 1, "one check run per run: {runs:?}");
    assert_eq!(
        (&runs[0]["id"], &runs[0]["updates"]),
        (&json!(1000), &json!(1))
    );
    assert_eq!(runs[0]["conclusion"], "failure");
    assert_eq!(github.requests("POST", CHECK_RUNS).await.len(), 1);
    assert_eq!(
        github.requests("GET", CHECKS_OF_SHA).await.len(),
        1,
        "only the first event looked for the check run: the second had its id from the ledger"
    );
}
