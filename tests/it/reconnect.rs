//! The broker closes the worker's connection: not ready, then ready again, nothing lost.
//! Its own test binary, so the only worker connection of this process is the one it closes.

use crate::support as common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::{InProcessWorker, Names, TestBroker, event_for, unique, wait_until, webhook};

/// Closes, from the broker's side, every connection named `run-notifier worker <our pid>`.
fn close_worker_connections() -> usize {
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl is installed with RabbitMQ");
    let listing = String::from_utf8(output.stdout).unwrap();
    // The name is followed by the closing quote, so pid 12 does not match pid 123.
    let ours = format!("run-notifier worker {}\"", std::process::id());
    let mut closed = 0;
    for line in listing.lines().filter(|line| line.contains(&ours)) {
        let pid = line.split_whitespace().next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: broker-side close", "-q"])
            .status()
            .unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_is_reestablished_and_nothing_is_lost() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(
        &names,
        &names.config(&webhook("hook", &receiver.url("/hook"))),
    )
    .await;

    let mut runs = HashSet::new();
    for _ in 0..5 {
        let run = unique("run");
        broker.publish(&event_for(&run)).await;
        runs.insert(run);
    }
    assert_eq!(close_worker_connections(), 1);
    let readyz = names.admin_url("/readyz");
    wait_until(
        "readyz reports the broker down",
        Duration::from_secs(5),
        || async { matches!(reqwest::get(&readyz).await, Ok(r) if r.status() == 503) },
    )
    .await;
    let cut = std::time::Instant::now();
    common::wait_for_ready(&names).await;
    let recovered = cut.elapsed();
    assert!(
        recovered < Duration::from_secs(5),
        "took {recovered:?} to be ready again"
    );

    let after = unique("run");
    broker.publish(&event_for(&after)).await;
    runs.insert(after);
    wait_until(
        "every run is delivered",
        Duration::from_secs(20),
        || async {
            let got: HashSet<String> = receiver
                .received()
                .iter()
                .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
                .collect();
            runs.iter().all(|run| got.contains(run))
        },
    )
    .await;
    worker.stop().await;
    println!(
        "reconnect: ready again {recovered:?} after the broker closed the connection; {} requests for {} runs",
        receiver.count(),
        runs.len()
    );
    assert_eq!(
        receiver.count(),
        runs.len(),
        "the ledger kept redelivered events from repeating"
    );
    broker.cleanup().await;
}
