//! Leases that cover the real work: a delivery that outlives one lease keeps its claim while it
//! runs, so another worker sharing the ledger never takes it over and sends a second time.

use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::support::process::{WorkerProcess, sample};
use crate::support::{Receiver, Setup, TestApp, event_for, slack, unique, wait_until};

const INTEGRATIONS: [&str; 2] = ["first", "second"];

/// Deliveries of `worker` that reached their end (delivered, or skipped as already delivered).
async fn ended(worker: &WorkerProcess<'_>) -> f64 {
    let page = worker.metrics().await;
    let mut ended = 0.0;
    for integration in INTEGRATIONS {
        for outcome in ["delivered", "skipped"] {
            ended += sample(
                &page,
                "run_notifier_deliveries_total",
                &[("integration", integration), ("outcome", outcome)],
            )
            .unwrap_or(0.0);
        }
    }
    ended
}

/// Lease renewals `worker` wrote.
async fn renewals(worker: &WorkerProcess<'_>) -> f64 {
    sample(
        &worker.metrics().await,
        "run_notifier_ledger_operation_duration_seconds_count",
        &[("operation", "renew")],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_delivery_longer_than_its_lease_is_sent_once_by_two_workers_on_postgres() {
    let app = TestApp::with_postgres().await;
    let slack_hook =
        Receiver::scripted(vec![], ResponseTemplate::new(200).set_body_string("ok")).await;
    let url = slack_hook.url("/services/T0/B0/shared");
    // Two integrations posting to one Slack webhook share its rate limit: one message at once,
    // the next 10 s later (6 a minute, a burst of 1). The one that waits holds its claim for
    // 10 s, longer than its lease of 3 × 500 ms + 5 s = 6.5 s.
    let setup = |config: &mut Setup| {
        for name in INTEGRATIONS {
            config.add(
                slack(name, &url)
                    .with("timeout", "500ms")
                    .with("rate_limit", json!({"per_minute": 6, "burst": 1})),
            );
        }
    };
    let mut one = app.spawn_process(setup).await;
    let mut two = app.spawn_process(setup).await;

    // One worker takes the event: one integration's message goes at once, the other's claim
    // waits for the permit.
    let run = unique("run");
    let event = event_for(&run);
    app.publish(&event).await;
    slack_hook.wait_for(1).await;
    wait_until(
        "one integration delivered, the other waiting in flight",
        Duration::from_secs(30),
        || async {
            let mut states: Vec<String> = app.delivery_states(&run).into_values().collect();
            states.sort();
            states == ["delivered", "in_flight"]
        },
    )
    .await;
    // The same event again (a producer that published twice): the copy finds the waiting
    // delivery held and looks again when its lease ends. Without renewals that is while the
    // first worker still waits for its permit: the copy takes the row over and sends again.
    app.publish(&event).await;

    wait_until(
        "both copies ended for both integrations",
        Duration::from_secs(90),
        || async { ended(&one).await + ended(&two).await >= 4.0 },
    )
    .await;
    let renewed = renewals(&one).await + renewals(&two).await;
    one.stop().await;
    two.stop().await;
    println!(
        "a delivery of 10 s under a lease of 6.5 s, two workers: {} messages for 2 integrations, {renewed} lease renewals",
        slack_hook.count()
    );

    assert_eq!(
        slack_hook.count(),
        2,
        "one message per integration, whatever the copies and the wait"
    );
    assert!(renewed >= 1.0, "the waiting delivery renewed its lease");
    let states = app.delivery_states(&run);
    assert_eq!(states["first"], "delivered", "{states:?}");
    assert_eq!(states["second"], "delivered", "{states:?}");
    assert!(app.take_dead_letters().await.is_empty());
}
