//! Operating the worker: metrics after a known run, logs without secrets, and the dead-letter
//! tools. Each worker here runs as its own process, so metrics are its alone.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{Names, TestBroker, WorkerProcess, event_for, unique, wait_until, webhook};
use lapin::BasicProperties;
use serde_json::json;
use wiremock::ResponseTemplate;

/// The value of one sample line of a Prometheus text page (`name{labels} value`).
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| line.starts_with(name))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let all = labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
            let rest = &series[name.len()..];
            (all && (rest.is_empty() || rest.starts_with('{'))).then(|| value.parse().ok())?
        })
}

fn cli(config: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn metrics_count_a_known_run() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let ok = Receiver::ok().await;
    let strict = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    let integrations = format!(
        "{}{}    projects: [strict-project]\n",
        webhook("ok", &ok.url("/ok")),
        webhook("strict", &strict.url("/strict"))
    );
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &names.config(&integrations)).await;

    broker.publish(&event_for(&unique("run"))).await;
    broker.publish(&event_for(&unique("run"))).await;
    let mut failing = event_for(&unique("run"));
    failing["data"]["projectId"] = json!("strict-project");
    broker.publish(&failing).await;
    broker
        .publish_raw(b"not json", BasicProperties::default())
        .await;
    ok.wait_for(3).await;
    broker.wait_for_dead_letters(2).await;

    let url = names.admin_url("/metrics");
    let counted = |page: &str| {
        ["delivered", "dead_lettered", "invalid"]
            .iter()
            .map(|o| sample(page, "run_notifier_events_total", &[("outcome", o)]).unwrap_or(0.0))
            .sum::<f64>()
    };
    wait_until(
        "all four events are counted",
        Duration::from_secs(10),
        || async { counted(&reqwest::get(&url).await.unwrap().text().await.unwrap()) == 4.0 },
    )
    .await;
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let events = |outcome| sample(&page, "run_notifier_events_total", &[("outcome", outcome)]);
    assert_eq!(events("delivered"), Some(2.0), "{page}");
    assert_eq!(events("dead_lettered"), Some(1.0), "{page}");
    assert_eq!(events("invalid"), Some(1.0), "{page}");
    let deliveries = |integration, outcome| {
        sample(
            &page,
            "run_notifier_deliveries_total",
            &[("integration", integration), ("outcome", outcome)],
        )
    };
    assert_eq!(deliveries("ok", "delivered"), Some(3.0), "{page}");
    assert_eq!(deliveries("strict", "skipped"), Some(2.0), "{page}");
    assert_eq!(
        sample(
            &page,
            "run_notifier_deliveries_total",
            &[
                ("integration", "strict"),
                ("outcome", "dead_lettered"),
                ("reason", "permanent"),
                ("type", "webhook")
            ]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "run_notifier_dead_letters_total",
            &[("kind", "invalid")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            "run_notifier_dead_letters_total",
            &[("kind", "delivery")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            "run_notifier_delivery_duration_seconds_count",
            &[("type", "webhook")]
        ),
        Some(4.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "run_notifier_broker_connected", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "run_notifier_deliveries_in_flight", &[]),
        Some(0.0)
    );
    assert!(
        sample(
            &page,
            "run_notifier_ledger_operation_duration_seconds_count",
            &[("operation", "claim")]
        )
        .unwrap()
            >= 4.0
    );
    assert!(!page.contains("run_id"), "no unbounded labels");

    worker.signal("-TERM");
    assert!(worker.wait_exit(Duration::from_secs(10)).await.0.success());
    broker.cleanup().await;
}

#[tokio::test]
async fn a_full_run_logs_no_configured_secret() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let down = Receiver::scripted(
        vec![],
        ResponseTemplate::new(500).set_body_string("upstream broke"),
    )
    .await;
    let webhook_secret = "whsec_U2VjcmV0U2VjcmV0U2VjcmV0U2VjcmV0MTIzNA==";
    let secrets = [
        webhook_secret,
        "hub-secret-5c1b7e",
        "header-token-9f8e7d",
        "SLACKPATHSECRET4242",
        "TEAMSSIGSECRET4343",
        "ghp_GITHUBTOKENSECRET4444",
        "bitbucket-api-token-4545",
        "glpat-GITLABTOKENSECRET4646",
        "xoxb-SLACKAPPTOKENSECRET4747",
    ];
    let integrations = [
        format!("  - name: hook\n    type: webhook\n    url: {}\n    secrets:\n      - {webhook_secret}\n    hub_secret: {}\n    headers:\n      Authorization: Bearer {}\n", down.url("/hook"), secrets[1], secrets[2]),
        format!("  - name: slack\n    type: slack\n    webhook_url: {}\n", down.url(&format!("/services/T0/B0/{}", secrets[3]))),
        format!("  - name: teams\n    type: teams\n    webhook_url: {}\n", down.url(&format!("/workflows/run?sig={}", secrets[4]))),
        format!("  - name: status\n    type: github_status\n    api_url: {}\n    auth:\n      token: {}\n", down.server.uri(), secrets[5]),
        format!("  - name: bitbucket\n    type: bitbucket_status\n    api_url: {}\n    host: github.com\n    auth:\n      email: bot@example.com\n      api_token: {}\n", down.server.uri(), secrets[6]),
        format!("  - name: gitlab\n    type: gitlab_status\n    api_url: {}/api/v4\n    host: github.com\n    auth:\n      token: {}\n", down.server.uri(), secrets[7]),
        format!("  - name: slackapp\n    type: slack_app\n    token: {}\n    channel: C0123ABCD\n    api_url: {}/api\n", secrets[8], down.server.uri()),
    ]
    .concat();
    let yaml = names.config_with(
        &integrations,
        "max_attempts: 2\n  initial_delay: 300ms\n  jitter: false",
        "shutdown_grace: 5s",
        8,
    );
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;

    broker.publish(&event_for(&unique("run"))).await;
    broker.wait_for_dead_letters(7).await; // every integration failed twice and gave up
    worker.signal("-TERM");
    assert!(worker.wait_exit(Duration::from_secs(10)).await.0.success());

    let logs = worker.logs();
    assert!(logs.contains("delivery failed for good"), "{logs}");
    assert!(
        logs.contains("upstream broke"),
        "errors keep the receiver's answer"
    );
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "the logs contain the secret {secret}:\n{logs}"
        );
    }
    let preview_and_check = cli(&dir.path().join("config.yaml"), &["check-config"]);
    for secret in secrets {
        assert!(!preview_and_check.contains(secret));
    }
    broker.cleanup().await;
}

#[tokio::test]
async fn dead_letters_are_listed_without_being_consumed_and_replayed_once_fixed() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::scripted(
        vec![ResponseTemplate::new(400).set_body_string("bad token")],
        ResponseTemplate::new(200),
    )
    .await;
    let yaml = names.config(&webhook("strict", &receiver.url("/strict")));
    let config = dir.path().join("config.yaml");
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;

    let run = unique("run");
    broker.publish(&event_for(&run)).await;
    broker
        .publish_raw(
            b"{oops",
            BasicProperties::default().with_message_id("bad-1".into()),
        )
        .await;
    wait_until("two dead letters", Duration::from_secs(10), || async {
        broker.ready_count(&names.dead).await == 2
    })
    .await;

    let listed = cli(&config, &["dead-letters", "list"]);
    assert!(listed.contains("2 dead letter(s) shown"), "{listed}");
    assert!(
        listed.contains(&format!("delivery integration=strict attempts=1 run={run}")),
        "{listed}"
    );
    assert!(
        listed.contains("HTTP 400 Bad Request: bad token"),
        "{listed}"
    );
    assert!(
        listed.contains("invalid integration=- attempts=- run=- message=bad-1"),
        "{listed}"
    );
    // A listing only reads: the messages go back (quorum queues requeue asynchronously).
    let both_back = || async { broker.ready_count(&names.dead).await == 2 };
    wait_until(
        "the listed dead letters are back",
        Duration::from_secs(5),
        both_back,
    )
    .await;
    let json: serde_json::Value =
        serde_json::from_str(&cli(&config, &["dead-letters", "list", "--json"])).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        2,
        "listing consumed nothing"
    );
    wait_until(
        "the listed dead letters are back",
        Duration::from_secs(5),
        both_back,
    )
    .await;

    // The receiver is fixed now: replay the failed delivery only.
    let replayed = cli(
        &config,
        &["dead-letters", "replay", "--integration", "strict"],
    );
    assert!(
        replayed.contains("replayed 1 dead letter(s) of `strict`"),
        "{replayed}"
    );
    assert!(
        replayed.contains("1 of other integrations left"),
        "{replayed}"
    );
    receiver.wait_for(2).await;
    assert_eq!(receiver.received()[1].path, "/strict");

    // An invalid event replayed is dead-lettered again, once: no loop.
    let replayed = cli(&config, &["dead-letters", "replay"]);
    assert!(replayed.contains("replayed 1 dead letter(s)"), "{replayed}");
    wait_until(
        "the invalid event is back, once",
        Duration::from_secs(10),
        || async {
            broker.ready_count(&names.dead).await == 1
                && broker.ready_count(&names.queue).await == 0
        },
    )
    .await;
    worker.signal("-TERM");
    assert!(worker.wait_exit(Duration::from_secs(10)).await.0.success());
    assert_eq!(receiver.count(), 2, "delivered exactly once after the fix");
    let letters = broker.take_dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, b"{oops");
    broker.cleanup().await;
}
