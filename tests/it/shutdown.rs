//! SIGTERM: stop consuming at once, let in-flight deliveries finish within the grace period,
//! hand back the rest, exit 0; after a restart every event is delivered.

use std::collections::HashSet;
use std::time::Duration;

use run_notifier::config::HumanDuration;
use wiremock::ResponseTemplate;

use crate::support::{Receiver, Setup, TestApp, event_for, unique, wait_until, webhook};

const EVENTS: usize = 12;

async fn publish_runs(app: &TestApp) -> HashSet<String> {
    let mut runs = HashSet::new();
    for _ in 0..EVENTS {
        let run = unique("run");
        app.publish(&event_for(&run)).await;
        runs.insert(run);
    }
    runs
}

fn delivered_runs(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
        .collect()
}

/// Restarts the worker and waits until every published run reached the receiver; returns how
/// many runs the receiver got more than once.
async fn restart_and_count_duplicates(
    app: &TestApp,
    setup: impl FnOnce(&mut Setup),
    receiver: &Receiver,
    runs: &HashSet<String>,
) -> usize {
    let mut worker = app.spawn_process(setup).await;
    wait_until(
        "every run is delivered after the restart",
        Duration::from_secs(30),
        || async {
            let delivered: HashSet<_> = delivered_runs(receiver).into_iter().collect();
            runs.iter().all(|run| delivered.contains(run))
        },
    )
    .await;
    worker.stop().await;
    let delivered = delivered_runs(receiver);
    let unique_runs: HashSet<_> = delivered.iter().collect();
    assert_eq!(
        unique_runs.len(),
        runs.len(),
        "only the published runs were delivered"
    );
    delivered.len() - unique_runs.len()
}

#[tokio::test]
async fn sigterm_lets_slow_deliveries_finish_within_the_grace_period_and_loses_nothing() {
    let app = TestApp::new().await;
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_millis(1_500)),
    )
    .await;
    let setup = |config: &mut Setup| {
        // Four at a time: consumption must stop at SIGTERM with runs still waiting.
        config.add(webhook("slow", &receiver.url("/slow")).with("concurrency", 4));
        config.retry.max_attempts = 3;
        config.broker.prefetch = 4;
    };
    let mut worker = app.spawn_process(setup).await;

    let runs = publish_runs(&app).await;
    receiver.wait_for(4).await;
    worker.stop().await;
    // The 1.5 s answers fit the 5 s grace: nothing was cut short.
    assert!(
        !worker.logs().contains("grace period over"),
        "{}",
        worker.logs()
    );
    let before_restart = receiver.count();
    assert!(
        before_restart < EVENTS,
        "consumption stopped at SIGTERM ({before_restart} delivered)"
    );

    let duplicates = restart_and_count_duplicates(&app, setup, &receiver, &runs).await;
    println!(
        "graceful: {before_restart} delivered before SIGTERM completed, {duplicates} of {EVENTS} runs delivered twice"
    );
    assert_eq!(
        duplicates, 0,
        "deliveries that finished within the grace period are not repeated"
    );
}

#[tokio::test]
async fn deliveries_still_running_after_the_grace_period_are_aborted_and_handed_back() {
    let app = TestApp::new().await;
    // Not answered within the grace period: the abort at its end cuts these four short.
    let stuck = ResponseTemplate::new(200).set_delay(Duration::from_secs(600));
    let receiver = Receiver::scripted(vec![stuck; 4], ResponseTemplate::new(200)).await;
    let setup = |config: &mut Setup| {
        config.add(webhook("stuck", &receiver.url("/stuck")));
        config.retry.max_attempts = 3;
        config.broker.prefetch = 4;
        config.worker.shutdown_grace = HumanDuration::millis(500);
    };
    let mut worker = app.spawn_process(setup).await;

    let runs = publish_runs(&app).await;
    receiver.wait_for(4).await;
    worker.stop().await;
    assert!(
        worker.logs().contains("grace period over"),
        "{}",
        worker.logs()
    );

    let duplicates = restart_and_count_duplicates(&app, setup, &receiver, &runs).await;
    // The receiver saw the aborted requests but never answered them: at-least-once means they
    // are sent again, with the same webhook-id so the receiver can drop the repeat.
    println!(
        "aborted: {duplicates} of {EVENTS} runs delivered twice (the 4 requests aborted at the grace period)"
    );
    assert_eq!(duplicates, 4);
    assert!(app.take_dead_letters().await.is_empty());
}
