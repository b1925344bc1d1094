//! The broker closes the worker's connection: not ready, then ready again, nothing lost.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::support::poll::wait_for_status;
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl is installed with RabbitMQ");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Closes, from the broker's side, the connection whose channel consumes `queue`; returns how
/// many connections it closed. Other tests' workers in this process are left alone.
fn close_the_consumers_connection(queue: &str) -> usize {
    let consumers = rabbitmqctl(&[
        "list_consumers",
        "--no-table-headers",
        "queue_name",
        "channel_pid",
    ]);
    let channels: HashSet<&str> = consumers
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| *name == queue)
        .map(|(_, channel)| channel.trim())
        .collect();
    let listing = rabbitmqctl(&["list_channels", "--no-table-headers", "pid", "connection"]);
    let connections: HashSet<&str> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(channel, _)| channels.contains(channel.trim()))
        .map(|(_, connection)| connection.trim())
        .collect();
    for connection in &connections {
        rabbitmqctl(&["close_connection", connection, "test: broker-side close"]);
    }
    connections.len()
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_is_reestablished_and_nothing_is_lost() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    let mut runs = HashSet::new();
    for _ in 0..5 {
        let run = unique("run");
        app.publish(&event_for(&run)).await;
        runs.insert(run);
    }
    assert_eq!(close_the_consumers_connection(&app.names.queue), 1);
    let readyz = app.admin_url("/readyz");
    wait_for_status(&readyz, 503).await;
    wait_for_status(&readyz, 200).await;

    let after = unique("run");
    app.publish(&event_for(&after)).await;
    runs.insert(after);
    wait_until(
        "every run is delivered",
        Duration::from_secs(30),
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
    app.stop_worker().await;
    assert_eq!(
        receiver.count(),
        runs.len(),
        "the ledger kept redelivered events from repeating"
    );
}
