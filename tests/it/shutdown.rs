//! SIGTERM: stop consuming at once, let in-flight deliveries finish within the grace period,
//! hand back the rest, exit 0; after a restart every event is delivered.

use crate::support as common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::{Names, TestBroker, WorkerProcess, event_for, unique, webhook};
use wiremock::ResponseTemplate;

const EVENTS: usize = 12;

async fn publish_runs(broker: &TestBroker) -> HashSet<String> {
    let mut runs = HashSet::new();
    for _ in 0..EVENTS {
        let run = unique("run");
        broker.publish(&event_for(&run)).await;
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
    names: &Names,
    dir: &std::path::Path,
    yaml: &str,
    receiver: &Receiver,
    runs: &HashSet<String>,
) -> usize {
    let mut worker = WorkerProcess::start(names, dir, yaml).await;
    common::wait_until(
        "every run is delivered after the restart",
        Duration::from_secs(30),
        || async {
            let delivered: HashSet<_> = delivered_runs(receiver).into_iter().collect();
            runs.iter().all(|run| delivered.contains(run))
        },
    )
    .await;
    worker.signal("-TERM");
    let (status, _) = worker.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success());
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
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_millis(1_500)),
    )
    .await;
    let yaml = names.config_with(
        &webhook("slow", &receiver.url("/slow")),
        "max_attempts: 3\n  initial_delay: 300ms",
        "shutdown_grace: 5s",
        4,
    );
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;

    let runs = publish_runs(&broker).await;
    receiver.wait_for(4).await;
    worker.signal("-TERM");
    let (status, took) = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        worker.logs()
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}, longer than the grace period"
    );
    let before_restart = receiver.count();
    assert!(
        before_restart < EVENTS,
        "consumption stopped at SIGTERM ({before_restart} delivered)"
    );

    let duplicates =
        restart_and_count_duplicates(&names, dir.path(), &yaml, &receiver, &runs).await;
    println!(
        "graceful: {before_restart} delivered before SIGTERM completed, {duplicates} of {EVENTS} runs delivered twice"
    );
    assert_eq!(
        duplicates, 0,
        "deliveries that finished within the grace period are not repeated"
    );
    broker.cleanup().await;
}

#[tokio::test]
async fn deliveries_still_running_after_the_grace_period_are_aborted_and_handed_back() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let stuck = ResponseTemplate::new(200).set_delay(Duration::from_secs(30));
    let receiver = Receiver::scripted(vec![stuck; 4], ResponseTemplate::new(200)).await;
    let yaml = names.config_with(
        &webhook("stuck", &receiver.url("/stuck")),
        "max_attempts: 3\n  initial_delay: 300ms",
        "shutdown_grace: 500ms",
        4,
    );
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;

    let runs = publish_runs(&broker).await;
    receiver.wait_for(4).await;
    worker.signal("-TERM");
    let (status, took) = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        worker.logs()
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        worker.logs().contains("grace period over"),
        "{}",
        worker.logs()
    );

    let duplicates =
        restart_and_count_duplicates(&names, dir.path(), &yaml, &receiver, &runs).await;
    // The receiver saw the aborted requests but never answered them: at-least-once means they
    // are sent again, with the same webhook-id so the receiver can drop the repeat.
    println!(
        "aborted: {duplicates} of {EVENTS} runs delivered twice (the 4 requests aborted at the grace period)"
    );
    assert_eq!(duplicates, 4);
    assert!(broker.take_dead_letters().await.is_empty());
    broker.cleanup().await;
}
