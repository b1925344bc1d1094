//! Operating the worker: metrics after a known run, logs without secrets, and the dead-letter
//! tools. Each worker here runs as its own process, so metrics are its alone.

use std::time::Duration;

use lapin::BasicProperties;
use run_notifier::protocol::HEADER_DEAD_KIND;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::support::process::sample;
use crate::support::{
    Receiver, Spec, TestApp, bitbucket_status, event, event_for, github_status, gitlab_status,
    slack, slack_app, teams, unique, wait_until, webhook,
};

#[tokio::test]
async fn metrics_count_a_known_run() {
    let app = TestApp::new().await;
    let ok = Receiver::ok().await;
    let strict = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("ok", &ok.url("/ok")));
            config.add(
                webhook("strict", &strict.url("/strict")).with("projects", ["strict-project"]),
            );
        })
        .await;

    app.publish(&event()).await;
    app.publish(&event()).await;
    let mut failing = event();
    failing["data"]["projectId"] = json!("strict-project");
    app.publish(&failing).await;
    app.publish_raw(b"not json", BasicProperties::default())
        .await;
    ok.wait_for(3).await;
    app.wait_for_dead_letters(2).await;

    let counted = |page: &str| {
        ["delivered", "dead_lettered", "invalid"]
            .iter()
            .map(|o| sample(page, "run_notifier_events_total", &[("outcome", o)]).unwrap_or(0.0))
            .sum::<f64>()
    };
    wait_until(
        "all four events are counted",
        Duration::from_secs(10),
        || async { counted(&worker.metrics().await) == 4.0 },
    )
    .await;
    let page = worker.metrics().await;
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

    worker.stop().await;
}

#[tokio::test]
async fn an_invalid_message_in_an_integrations_queue_is_dead_lettered_and_counted_once() {
    let app = TestApp::new().await;
    let hook = Receiver::ok().await;
    let worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &hook.url("/hook")));
        })
        .await;

    // Only valid events are queued, so this one was changed in the queue.
    let queue = format!("{}.hook", app.names.queue);
    app.channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            Default::default(),
            b"not json",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let letter = app.wait_for_dead_letters(1).await.remove(0);
    assert_eq!(letter.body, b"not json");
    assert_eq!(letter.header(HEADER_DEAD_KIND).as_deref(), Some("invalid"));

    let invalid = |page: &str| {
        sample(
            page,
            "run_notifier_dead_letters_total",
            &[("kind", "invalid")],
        )
    };
    wait_until(
        "the dead letter is counted",
        Duration::from_secs(10),
        || async { invalid(&worker.metrics().await).is_some() },
    )
    .await;
    let page = worker.metrics().await;
    assert_eq!(invalid(&page), Some(1.0), "{page}");
    // It never was an event of the event queue.
    assert_eq!(
        sample(
            &page,
            "run_notifier_events_total",
            &[("outcome", "invalid")]
        ),
        None,
        "{page}"
    );
    assert_eq!(hook.count(), 0);
}

#[tokio::test]
async fn a_full_run_logs_no_configured_secret() {
    let app = TestApp::new().await;
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
    let integrations: [Spec; 7] = [
        webhook("hook", &down.url("/hook"))
            .with("secrets", [webhook_secret])
            .with("hub_secret", secrets[1])
            .with(
                "headers",
                json!({"Authorization": format!("Bearer {}", secrets[2])}),
            ),
        slack(
            "slack",
            &down.url(&format!("/services/T0/B0/{}", secrets[3])),
        ),
        teams(
            "teams",
            &down.url(&format!("/workflows/run?sig={}", secrets[4])),
        ),
        github_status("status", &down.server.uri()).with("auth", json!({"token": secrets[5]})),
        bitbucket_status("bitbucket", &down.server.uri())
            .with("host", "github.com")
            .with(
                "auth",
                json!({"email": "bot@example.com", "api_token": secrets[6]}),
            ),
        gitlab_status("gitlab", &format!("{}/api/v4", down.server.uri()))
            .with("host", "github.com")
            .with("auth", json!({"token": secrets[7]})),
        slack_app(
            "slackapp",
            &format!("{}/api", down.server.uri()),
            "C0123ABCD",
        )
        .with("token", secrets[8]),
    ];
    let mut worker = app
        .spawn_process(|config| {
            for integration in integrations {
                config.add(integration);
            }
            config.retry.max_attempts = 2;
            config.broker.prefetch = 8;
        })
        .await;

    app.publish(&event()).await;
    app.wait_for_dead_letters(7).await; // every integration failed twice and gave up
    worker.stop().await;

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
    let checked = app.cli(&["check-config"]);
    for secret in secrets {
        assert!(!checked.contains(secret));
    }
}

#[tokio::test]
async fn dead_letters_are_listed_without_being_consumed_and_replayed_once_fixed() {
    let app = TestApp::new().await;
    let receiver = Receiver::scripted(
        vec![ResponseTemplate::new(400).set_body_string("bad token")],
        ResponseTemplate::new(200),
    )
    .await;
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("strict", &receiver.url("/strict")));
        })
        .await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    app.publish_raw(
        b"{oops",
        BasicProperties::default().with_message_id("bad-1".into()),
    )
    .await;
    wait_until("two dead letters", Duration::from_secs(10), || async {
        app.ready_count(&app.names.dead).await == 2
    })
    .await;

    let listed = app.cli(&["dead-letters", "list"]);
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
    let both_back = || async { app.ready_count(&app.names.dead).await == 2 };
    wait_until(
        "the listed dead letters are back",
        Duration::from_secs(5),
        both_back,
    )
    .await;
    let json: serde_json::Value =
        serde_json::from_str(&app.cli(&["dead-letters", "list", "--json"])).unwrap();
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
    let replayed = app.cli(&["dead-letters", "replay", "--integration", "strict"]);
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
    // The dead letter carried the seal of its replay: taken as a retry of `strict`.
    let logs = worker.logs();
    assert!(!logs.contains("did not seal"), "{logs}");

    // An invalid event replayed is dead-lettered again, once: no loop.
    let replayed = app.cli(&["dead-letters", "replay"]);
    assert!(replayed.contains("replayed 1 dead letter(s)"), "{replayed}");
    wait_until(
        "the invalid event is back, once",
        Duration::from_secs(10),
        || async {
            app.ready_count(&app.names.dead).await == 1
                && app.ready_count(&app.names.queue).await == 0
        },
    )
    .await;
    worker.stop().await;
    assert_eq!(receiver.count(), 2, "delivered exactly once after the fix");
    let letters = app.take_dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, b"{oops");
}

#[tokio::test]
async fn dead_letters_list_escapes_terminal_control_characters() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    // The worker declares the dead-letter queue; anyone who may publish can put a letter there.
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;
    let hostile = "\u{1b}[2J\u{1b}[31mall good\r\u{1b}]0;owned\u{7}\u{9b}1m";
    let escaped = "\\u{1b}[2J\\u{1b}[31mall good\\r\\u{1b}]0;owned\\u{7}\\u{9b}1m";
    let mut headers = lapin::types::FieldTable::default();
    for name in [
        run_notifier::protocol::HEADER_ERROR,
        run_notifier::protocol::HEADER_INTEGRATION,
        run_notifier::protocol::HEADER_RUN_ID,
    ] {
        headers.insert(
            name.into(),
            lapin::types::AMQPValue::LongString(hostile.into()),
        );
    }
    app.channel
        .basic_publish(
            "".into(),
            app.names.dead.as_str().into(),
            Default::default(),
            b"{}",
            BasicProperties::default()
                .with_headers(headers)
                .with_message_id(hostile.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    wait_until("the letter is there", Duration::from_secs(10), || async {
        app.ready_count(&app.names.dead).await == 1
    })
    .await;

    let listed = app.cli(&["dead-letters", "list"]);
    assert!(
        !listed.chars().any(|c| c.is_control() && c != '\n'),
        "{listed:?}"
    );
    assert!(
        listed.contains(&format!(
            "integration={escaped} attempts=- run={escaped} message={escaped}\n  {escaped}"
        )),
        "{listed}"
    );
    wait_until("the letter is back", Duration::from_secs(5), || async {
        app.ready_count(&app.names.dead).await == 1
    })
    .await;
    // Piped from JSON through `jq -r`, the text is just as inert.
    let json: serde_json::Value =
        serde_json::from_str(&app.cli(&["dead-letters", "list", "--json"])).unwrap();
    for key in ["error", "integration", "runId", "messageId"] {
        assert_eq!(json[0][key], escaped, "{key}");
    }
    app.stop_worker().await;
}
