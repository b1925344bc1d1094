//! `slack_app` against a wiremock Slack that keeps its channel: the post carries the Block Kit
//! message and run metadata; a delivery whose earlier attempt may have posted finds that
//! message on any history page and edits it; Slack's `ok:false` codes are classified; preview
//! sends nothing; and a worker killed between Slack's answer and the ledger record leaves one
//! message per run.

use std::time::Duration;

use run_notifier::failure::{DeliveryError, FailureKind};
use run_notifier::integrations::{Notification, Receipt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fake_slack::{CHANNEL_ID, Channel, TOKEN};
use crate::support::process::sample;
use crate::support::providers::{build, deliver_at, parse, requests};
use crate::support::{Spec, event, slack_app};

/// The `slack_app` entry of the tests, against the wiremock Slack.
fn spec(server: &MockServer, channel: &str) -> Spec {
    slack_app("slack-app", &format!("{}/api", server.uri()), channel)
}

fn run_id(event: &Value) -> &str {
    event["data"]["runId"].as_str().unwrap()
}

#[tokio::test]
async fn a_first_attempt_posts_the_card_with_metadata_naming_the_run() {
    let server = MockServer::start().await;
    let channel = Channel::new(3, 100);
    channel.mount(&server).await;
    let app = build(spec(&server, CHANNEL_ID));
    let event = event();

    let receipt = deliver_at(&app, &event, 1, false).await.unwrap();

    assert_eq!(
        receipt,
        Receipt::Sent(format!("posted message 1800000000.000003 in {CHANNEL_ID}"))
    );
    assert!(
        requests(&server, "GET", "/api/conversations.history")
            .await
            .is_empty(),
        "a first attempt does not look"
    );
    let ours = channel.for_run(run_id(&event));
    assert_eq!(ours.len(), 1);
    let body = &ours[0].body;
    assert_eq!(body["channel"], CHANNEL_ID);
    assert_eq!(
        body["metadata"],
        json!({"event_type": "run_canceled", "event_payload": {"run_id": run_id(&event), "integration": "slack-app"}})
    );
    assert!(
        body["text"].as_str().unwrap().contains("jane.doe"),
        "{body}"
    );
    assert!(
        body["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "the slack template's blocks"
    );
}

#[tokio::test]
async fn a_retry_or_a_takeover_edits_the_message_found_on_a_later_history_page() {
    for (attempt, resumed) in [(2, false), (1, true)] {
        let server = MockServer::start().await;
        let channel = Channel::new(10, 4);
        channel.mount(&server).await;
        let app = build(spec(&server, CHANNEL_ID));
        let event = event();
        deliver_at(&app, &event, 1, false).await.unwrap();
        // Others talk after it: the run's message is on the fourth page of four to a page.
        channel.add_chatter(13);
        let mut again = event.clone();
        again["data"]["cancellation"]["actor"] = json!("second.canceler");

        let receipt = deliver_at(&app, &again, attempt, resumed).await.unwrap();

        let ours = channel.for_run(run_id(&event));
        assert_eq!(ours.len(), 1, "one message for the run");
        assert_eq!(ours[0].edits, 1);
        assert!(
            ours[0].body["text"]
                .as_str()
                .unwrap()
                .contains("second.canceler")
        );
        assert!(
            matches!(&receipt, Receipt::Sent(r) if r.starts_with(&format!("updated message {}", ours[0].ts))),
            "{receipt:?}"
        );
        let pages = requests(&server, "GET", "/api/conversations.history").await;
        assert_eq!(pages.len(), 4, "pages until the message");
        assert!(
            pages
                .iter()
                .all(|p| p.url.query().unwrap().contains("include_all_metadata=true"))
        );
        assert_eq!(
            requests(&server, "POST", "/api/chat.postMessage")
                .await
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn a_retry_that_finds_nothing_posts_and_a_channel_name_is_resolved() {
    let server = MockServer::start().await;
    let channel = Channel::new(9, 4);
    channel.mount(&server).await;
    let app = build(spec(&server, "#deploys"));
    let event = event();

    let receipt = deliver_at(&app, &event, 3, false).await.unwrap();

    assert!(
        matches!(&receipt, Receipt::Sent(r) if r.starts_with("posted message")),
        "{receipt:?}"
    );
    assert_eq!(channel.for_run(run_id(&event)).len(), 1);
    assert_eq!(
        requests(&server, "GET", "/api/conversations.list")
            .await
            .len(),
        1
    );
    assert_eq!(
        requests(&server, "GET", "/api/conversations.history")
            .await
            .len(),
        3,
        "every page of 9 messages"
    );
}

#[tokio::test]
async fn slack_error_codes_are_classified() {
    let cases = [
        (
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
            FailureKind::Permanent,
            "invalid_auth",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "not_in_channel"})),
            FailureKind::Permanent,
            "/invite",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
            FailureKind::Permanent,
            "channel_not_found",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "msg_too_long"})),
            FailureKind::Permanent,
            "msg_too_long",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "internal_error"})),
            FailureKind::Transient,
            "internal_error",
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "9")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
            FailureKind::RateLimited,
            "429",
        ),
        (ResponseTemplate::new(503), FailureKind::Transient, "503"),
    ];
    for (response, kind, says) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/api/chat.postMessage"))
            .respond_with(response)
            .mount(&server)
            .await;
        let app = build(spec(&server, CHANNEL_ID));
        let error = deliver_at(&app, &event(), 1, false).await.unwrap_err();
        assert_eq!(error.kind(), Some(kind), "{error}");
        assert!(error.to_string().contains(says), "{error}");
        assert!(!error.to_string().contains(TOKEN));
        if kind == FailureKind::RateLimited {
            assert!(
                matches!(error, DeliveryError::Retryable { retry_after: Some(wait), .. } if wait == Duration::from_secs(9))
            );
        }
    }
}

#[tokio::test]
async fn hostile_text_cannot_mention_or_link_in_the_card() {
    let server = MockServer::start().await;
    let channel = Channel::new(0, 10);
    channel.mount(&server).await;
    let app = build(spec(&server, CHANNEL_ID));
    let mut event = event();
    event["data"]["cancellation"]["actor"] = json!("<!channel> <@U123> <http://evil.example|x>");

    deliver_at(&app, &event, 1, false).await.unwrap();

    let body = channel.for_run(run_id(&event)).remove(0).body.to_string();
    for raw in ["<!channel>", "<@U123>", "<http://evil"] {
        assert!(!body.contains(raw), "`{raw}` reached Slack: {body}");
    }
}

#[tokio::test]
async fn preview_shows_the_post_with_the_token_hidden_and_sends_nothing() {
    let server = MockServer::start().await;
    let app = build(spec(&server, CHANNEL_ID));
    let parsed = parse(&event());
    let requests = app
        .preview(&Notification {
            event: &parsed,
            integration: app.name(),
            attempt: 1,
            resumed: false,
            object_id: None,
        })
        .await
        .unwrap()
        .requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/api/chat.postMessage");
    let shown = run_notifier::preview::show(&requests[0]);
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("\"run_canceled\""), "{shown}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn bad_slack_app_config_is_explained_at_load_without_the_token() {
    let base = "  - name: s\n    type: slack_app\n";
    for (extra, expected) in [
        (
            "    token: xoxp-user-secret\n    channel: C0123ABCD\n",
            "bot token (`xoxb-…`)",
        ),
        (
            "    token: xoxb-secret\n    channel: '#'\n",
            "`channel` must be",
        ),
        (
            "    token: xoxb-secret\n    channel: C0123ABCD\n    api_url: ftp://slack.example\n",
            "http or https",
        ),
        ("    token: xoxb-secret\n", "missing field `channel`"),
        (
            "    token: xoxb-secret\n    channel: C1\n    webhook_url: x\n",
            "unknown field `webhook_url`",
        ),
    ] {
        let yaml = format!("integrations:\n{base}{extra}");
        let error = run_notifier::config::Config::parse(&yaml, Default::default()).unwrap_err();
        assert!(error.contains(expected), "{extra}: {error}");
    }
}

/// The crash drill: a worker process posts to Slack, Slack answers, and the worker is killed
/// (SIGKILL) before it can record the delivery in the ledger. The hook that makes this
/// deterministic runs inside the fake Slack when the post arrives: it cuts the worker off
/// from its PostgreSQL ledger (a proxy), so the record cannot land; the test waits until the
/// worker says so, then kills it. A second worker takes the redelivered event over once the
/// first one's lease has expired, finds the message by its metadata, and edits it.
#[tokio::test]
async fn a_worker_killed_between_slacks_answer_and_the_record_leaves_one_message() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::support::proxy::Proxy;
    use crate::support::{TestApp, event_for, unique, wait_until};

    let proxy = Arc::new(Proxy::start("127.0.0.1:5432").await);
    let app = TestApp::with_postgres_through(proxy.port).await;
    let server = MockServer::start().await;
    let cut_once = Arc::new(AtomicBool::new(false));
    let channel = Channel::new(6, 4).on_post({
        let proxy = Arc::clone(&proxy);
        Arc::new(move || {
            if !cut_once.swap(true, Ordering::SeqCst) {
                proxy.cut();
            }
        })
    });
    channel.mount(&server).await;
    // A short timeout keeps the lease (3 × timeout + 5 s) the second worker waits out short.
    let integration = || spec(&server, CHANNEL_ID).with("timeout", "1s");
    let run_id = unique("run");

    let mut first = app
        .spawn_process(|config| {
            config.add(integration());
        })
        .await;
    app.publish(&event_for(&run_id)).await;
    wait_until(
        "the worker has Slack's answer but cannot record it",
        Duration::from_secs(20),
        || async { first.logs().contains("cannot record the outcome yet") },
    )
    .await;
    assert_eq!(channel.for_run(&run_id).len(), 1, "Slack took the post");
    first.signal("-KILL");
    first.wait_exit().await;
    proxy.restore();

    let mut second = app
        .spawn_process(|config| {
            config.add(integration());
        })
        .await;
    wait_until(
        "the second worker edits the message",
        Duration::from_secs(40),
        || async {
            channel
                .for_run(&run_id)
                .first()
                .is_some_and(|m| m.edits == 1)
        },
    )
    .await;
    wait_until(
        "the delivery is recorded",
        Duration::from_secs(20),
        || async {
            let page = second.metrics().await;
            sample(
                &page,
                "run_notifier_deliveries_total",
                &[("outcome", "delivered")],
            ) == Some(1.0)
        },
    )
    .await;
    second.stop().await;

    let ours = channel.for_run(&run_id);
    assert_eq!(
        ours.len(),
        1,
        "the channel has one message for the run: {ours:?}"
    );
    assert_eq!(
        requests(&server, "POST", "/api/chat.postMessage")
            .await
            .len(),
        1
    );
    assert_eq!(requests(&server, "POST", "/api/chat.update").await.len(), 1);
    assert!(app.take_dead_letters().await.is_empty());
}

/// `preview` prints the plan; the delivery sends the same request, byte for byte.
#[tokio::test]
async fn the_previewed_post_is_the_one_a_delivery_sends() {
    let server = MockServer::start().await;
    let channel = Channel::new(0, 10);
    channel.mount(&server).await;
    let app = build(spec(&server, CHANNEL_ID));
    let parsed = parse(&event());
    let notification = Notification {
        event: &parsed,
        integration: app.name(),
        attempt: 1,
        resumed: false,
        object_id: None,
    };

    let planned = app.preview(&notification).await.unwrap().requests();
    app.deliver(&notification, &CancellationToken::new())
        .await
        .unwrap();

    let sent = requests(&server, "POST", "/api/chat.postMessage").await;
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].url.path(), "/api/chat.postMessage");
    assert_eq!(planned[0].body, sent[0].body);
}
