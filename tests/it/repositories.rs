//! `repositories:` on the Git-host integrations: an event for a repository outside the list is
//! skipped before any request, with its reason in `deliveries --run`, the logs and the metrics;
//! a malformed pattern stops the start with its line.

use std::time::Duration;

use run_notifier::config::Config;
use run_notifier::integrations::Receipt;
use run_notifier::integrations::repositories::Repositories;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::process::sample;
use crate::support::providers::{build, config_error, deliver, requests};
use crate::support::{
    SHA, TestApp, bitbucket_status, event, github_pr_comment, github_status, gitlab_mr_note,
    gitlab_status, wait_until,
};

#[tokio::test]
async fn an_event_for_a_repository_outside_the_list_is_skipped_with_its_reason_and_counted() {
    let github = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/repos/.+/statuses/"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&github)
        .await;
    let app = TestApp::new().await;
    let mut worker = app
        .spawn_process_with_env(&[("RUST_LOG", "info,run_notifier=debug")], |config| {
            config.add(
                github_status("gh-scoped", &github.uri())
                    .with("repositories", ["Acme/*", "platform/web-app"]),
            );
        })
        .await;
    let allowed = event();
    let mut forged = event();
    forged["data"]["commit"]["remoteOrigin"] = json!("git@github.com:evil/web-app.git");
    let run = |event: &serde_json::Value| event["data"]["runId"].as_str().unwrap().to_owned();
    let (allowed_run, forged_run) = (run(&allowed), run(&forged));

    app.publish(&forged).await;
    app.publish(&allowed).await;

    let state = |run: &str| app.delivery_states(run).remove("gh-scoped");
    wait_until(
        "both runs have their outcome in the ledger",
        Duration::from_secs(30),
        || async {
            state(&allowed_run).as_deref() == Some("delivered")
                && state(&forged_run).as_deref() == Some("skipped")
        },
    )
    .await;
    let reason = "repository `evil/web-app` matches none of `repositories`";
    let history = app.cli(&["deliveries", "--run", &forged_run]);
    assert!(
        history.contains("gh-scoped") && history.contains(reason),
        "{history}"
    );
    wait_until(
        "the skip is logged and counted",
        Duration::from_secs(10),
        || async {
            let skipped = [("integration", "gh-scoped"), ("outcome", "skipped")];
            worker.logs().contains(reason)
                && sample(
                    &worker.metrics().await,
                    "run_notifier_deliveries_total",
                    &skipped,
                ) == Some(1.0)
        },
    )
    .await;
    let paths: Vec<String> = github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| request.url.path().to_owned())
        .collect();
    let allowed_status = format!("/repos/acme/web-app/statuses/{SHA}");
    assert_eq!(paths, [allowed_status], "nothing was sent for evil/web-app");
    worker.stop().await;
}

#[tokio::test]
async fn every_git_host_kind_skips_a_repository_outside_its_list_before_any_request() {
    let server = MockServer::start().await;
    let api = server.uri();
    let gitlab_api = format!("{api}/api/v4");
    let on = |remote: &str| {
        let mut run = event();
        run["data"]["commit"]["remoteOrigin"] = json!(remote);
        run
    };
    let elsewhere = ["other/*", "acme/web"];
    let cases = [
        (
            github_status("s", &api),
            elsewhere.as_slice(),
            "https://github.com/acme/web-app.git",
            "acme/web-app",
        ),
        (
            github_pr_comment("c", &api),
            elsewhere.as_slice(),
            "https://github.com/acme/web-app.git",
            "acme/web-app",
        ),
        (
            bitbucket_status("b", &api),
            elsewhere.as_slice(),
            "git@bitbucket.org:acme/web-app.git",
            "acme/web-app",
        ),
        // `*` stays within a segment: a project in a subgroup is not `acme/*`.
        (
            gitlab_status("g", &gitlab_api),
            ["acme/*"].as_slice(),
            "git@gitlab.com:acme/platform/web-app.git",
            "acme/platform/web-app",
        ),
        (
            gitlab_mr_note("n", &gitlab_api),
            ["acme/*"].as_slice(),
            "git@gitlab.com:acme/platform/web-app.git",
            "acme/platform/web-app",
        ),
    ];
    for (spec, allowed, remote, path) in cases {
        let kind = spec.0["type"].clone();
        let integration = build(spec.with("repositories", allowed));
        let receipt = deliver(&integration, &on(remote)).await.unwrap();
        assert_eq!(
            receipt,
            Receipt::Skipped(format!(
                "repository `{path}` matches none of `repositories`"
            )),
            "{kind}"
        );
    }
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing is read or written for a repository outside the list"
    );
}

#[tokio::test]
async fn a_double_star_lets_a_gitlab_group_and_its_subgroups_through() {
    let server = MockServer::start().await;
    let status = format!("/api/v4/projects/acme%2Fplatform%2Fweb-app/statuses/{SHA}");
    Mock::given(method("POST"))
        .and(path(status.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let integration = build(
        gitlab_status("g", &format!("{}/api/v4", server.uri())).with("repositories", ["ACME/**"]),
    );
    let mut run = event();
    run["data"]["commit"]["remoteOrigin"] = json!("git@gitlab.com:acme/platform/web-app.git");

    let receipt = deliver(&integration, &run).await.unwrap();

    assert!(matches!(receipt, Receipt::Sent(_)), "{receipt:?}");
    assert_eq!(requests(&server, "POST", &status).await.len(), 1);
}

#[test]
fn a_malformed_pattern_stops_the_start_with_its_line_and_why() {
    let yaml = "integrations:
  - name: gh
    type: github_status
    auth: {token: ghp_x}
    repositories:
      - acme/*
      - acme/[web
";
    let error = Config::parse(yaml, Default::default()).unwrap_err();
    assert!(error.contains("line 7"), "{error}");
    assert!(
        error.contains("`acme/[web` is not a repository pattern: unclosed character class"),
        "{error}"
    );
}

#[test]
fn patterns_that_could_never_match_and_empty_lists_are_refused() {
    let error = config_error(
        github_status("gh", "https://api.github.com").with("repositories", ["github.com/acme/*"]),
    );
    assert!(
        error.contains("integrations[0] (gh): `repositories`: `github.com/acme/*` can never match: repositories here are `owner/repo`"),
        "{error}"
    );
    let error = config_error(
        bitbucket_status("bb", "https://api.bitbucket.org")
            .with("repositories", ["https://bitbucket.org/acme/web-app"]),
    );
    assert!(
        error.contains("write the repository's path, such as `acme/web-app`, not a git remote"),
        "{error}"
    );
    let empty: [&str; 0] = [];
    let error =
        config_error(gitlab_status("gl", "https://gitlab.com/api/v4").with("repositories", empty));
    assert!(
        error.contains(
            "`repositories` is empty: list at least one repository, or leave the key out"
        ),
        "{error}"
    );
}

#[test]
fn chat_and_webhook_kinds_have_no_repository_list() {
    let error = config_error(
        crate::support::slack("chat", "https://hooks.slack.com/services/T/B/x")
            .with("repositories", ["acme/*"]),
    );
    assert!(error.contains("unknown field `repositories`"), "{error}");
}

#[test]
fn the_example_configs_repository_lists_are_valid() {
    let example = include_str!("../../config/run-notifier.yaml");
    let lists: Vec<&str> = example
        .lines()
        .filter_map(|line| line.trim().strip_prefix("# repositories:"))
        .map(|rest| rest.split(" #").next().unwrap().trim())
        .collect();
    assert_eq!(lists.len(), 5, "one per Git-host integration");
    for list in lists {
        serde_saphyr::from_str::<Repositories>(list).unwrap_or_else(|err| panic!("{list}: {err}"));
    }
}
