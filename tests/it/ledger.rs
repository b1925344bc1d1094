//! One notification per run and integration: duplicates, crashes, several workers, an
//! unreachable ledger, and an operator's cancel.

use crate::support as common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::proxy::Proxy;
use common::receiver::Receiver;
use common::{
    InProcessWorker, Names, TestBroker, WorkerProcess, event_for, postgres_ledger, unique,
    wait_until, webhook,
};
use wiremock::ResponseTemplate;

fn two_hooks(receiver: &Receiver) -> String {
    format!(
        "{}{}",
        webhook("a", &receiver.url("/a")),
        webhook("b", &receiver.url("/b"))
    )
}

/// Requests per (path, run id).
fn tally(receiver: &Receiver) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for request in receiver.received() {
        let run = request.json()["runId"].as_str().unwrap().to_owned();
        *counts.entry((request.path.clone(), run)).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn the_same_event_published_twice_reaches_each_integration_once() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&two_hooks(&receiver))).await;

    let event = event_for(&unique("run"));
    broker.publish(&event).await;
    broker.publish(&event).await;
    receiver.wait_for(2).await;
    wait_until(
        "both copies are consumed",
        Duration::from_secs(10),
        || async { broker.ready_count(&names.queue).await == 0 },
    )
    .await;
    worker.stop().await; // drains whatever is still in flight

    assert_eq!(broker.ready_count(&names.queue).await, 0);
    assert!(
        tally(&receiver).values().all(|&n| n == 1),
        "{:?}",
        tally(&receiver)
    );
    assert_eq!(receiver.count(), 2);
    broker.cleanup().await;
}

#[tokio::test]
async fn two_cancel_events_of_one_run_reach_each_integration_once() {
    let names = Names::new();
    let receiver = Receiver::ok().await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &names.config(&two_hooks(&receiver))).await;

    let run = unique("run");
    broker.publish(&event_for(&run)).await;
    receiver.wait_for(2).await;
    broker.publish(&event_for(&run)).await; // a fresh event id: a parallel CI job canceled too
    wait_until(
        "the second event is consumed",
        Duration::from_secs(10),
        || async { broker.ready_count(&names.queue).await == 0 },
    )
    .await;
    worker.stop().await;

    assert_eq!(receiver.count(), 2, "{:?}", tally(&receiver));
    broker.cleanup().await;
}

#[tokio::test]
async fn a_worker_killed_before_its_ack_does_not_resend_what_it_delivered() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let fast = Receiver::ok().await;
    let slow = Receiver::scripted(
        vec![ResponseTemplate::new(200).set_delay(Duration::from_secs(30))],
        ResponseTemplate::new(200),
    )
    .await;
    let integrations = format!(
        "{}{}",
        webhook("fast", &fast.url("/fast")),
        webhook("slow", &slow.url("/slow")).replace("timeout: 5s", "timeout: 1s")
    );
    let yaml = names.config_with(
        &integrations,
        "max_attempts: 3\n  initial_delay: 300ms",
        "shutdown_grace: 5s",
        4,
    );
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;

    let run = unique("run");
    broker.publish(&event_for(&run)).await;
    fast.wait_for(1).await;
    slow.wait_for(1).await; // in flight: the event is not acked yet
    worker.signal("-KILL");
    worker.wait_exit(Duration::from_secs(5)).await;

    // The broker redelivers; the ledger knows `fast` was delivered. `slow`'s claim is held by
    // the dead worker until its lease (3 × timeout + 5 s) runs out, then taken over.
    let mut restarted = WorkerProcess::start(&names, dir.path(), &yaml).await;
    slow.wait_for(2).await;
    restarted.signal("-TERM");
    let (status, _) = restarted.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success());
    assert_eq!(fast.count(), 1, "the delivered integration was sent again");
    assert_eq!(
        slow.count(),
        2,
        "the unfinished one was retried after the restart"
    );
    let history = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["deliveries", "--run", &run, "--config"])
        .arg(dir.path().join("config.yaml"))
        .output()
        .unwrap();
    let table = String::from_utf8(history.stdout).unwrap();
    assert!(
        table.lines().filter(|l| l.contains("delivered")).count() == 2,
        "{table}"
    );
    broker.cleanup().await;
}

#[tokio::test]
async fn two_workers_sharing_a_postgres_ledger_deliver_every_run_once() {
    const RUNS: usize = 500;
    const REPEATED: usize = 100;
    let names = Names::new().with_ledger_url(&postgres_ledger(5432).await);
    let dir_one = tempfile::tempdir().unwrap();
    let dir_two = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let yaml = names.config_with(
        &two_hooks(&receiver),
        "max_attempts: 3\n  initial_delay: 300ms",
        "shutdown_grace: 5s",
        32,
    );
    let broker = TestBroker::connect(&names).await;
    let mut one = WorkerProcess::start(&names, dir_one.path(), &yaml).await;
    let second_names = Names {
        admin_port: common::free_port(),
        ..names.clone()
    };
    let mut two = WorkerProcess::start(
        &second_names,
        dir_two.path(),
        &second_names.config_with(
            &two_hooks(&receiver),
            "max_attempts: 3\n  initial_delay: 300ms",
            "shutdown_grace: 5s",
            32,
        ),
    )
    .await;

    let runs: Vec<String> = (0..RUNS).map(|_| unique("run")).collect();
    for (index, run) in runs.iter().enumerate() {
        let event = event_for(run);
        broker.publish(&event).await;
        if index < REPEATED {
            broker.publish(&event).await;
        }
    }
    wait_until(
        "every run reached both integrations",
        Duration::from_secs(60),
        || async { tally(&receiver).len() == RUNS * 2 },
    )
    .await;
    wait_until("the queue is drained", Duration::from_secs(20), || async {
        broker.ready_count(&names.queue).await == 0
    })
    .await;
    for worker in [&mut one, &mut two] {
        worker.signal("-TERM");
        assert!(worker.wait_exit(Duration::from_secs(15)).await.0.success());
    }

    let counts = tally(&receiver);
    let requests: usize = counts.values().sum();
    let repeated = counts.values().filter(|&&n| n > 1).count();
    println!(
        "two workers, PostgreSQL ledger: {} messages ({RUNS} runs, {REPEATED} published twice) -> {requests} requests for {} (run, integration) pairs, {repeated} delivered more than once",
        RUNS + REPEATED,
        counts.len()
    );
    assert_eq!(counts.len(), RUNS * 2);
    assert_eq!(repeated, 0);
    assert_eq!(requests, RUNS * 2);
    assert_eq!(broker.ready_count(&names.queue).await, 0);
    broker.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_ledger_makes_the_worker_not_ready_and_holds_messages_until_it_returns() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let names = Names::new().with_ledger_url(&postgres_ledger(proxy.port).await);
    let receiver = Receiver::ok().await;
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(
        &names,
        &names.config(&webhook("hook", &receiver.url("/hook"))),
    )
    .await;

    proxy.cut();
    let readyz = names.admin_url("/readyz");
    wait_until(
        "readyz reports the ledger down",
        Duration::from_secs(10),
        || async { matches!(reqwest::get(&readyz).await, Ok(r) if r.status() == 503) },
    )
    .await;
    let body: serde_json::Value = reqwest::get(&readyz).await.unwrap().json().await.unwrap();
    assert_eq!(body["ledger"], "unreachable");

    broker.publish(&event_for(&unique("run"))).await;
    wait_until(
        "the worker took the message",
        Duration::from_secs(10),
        || async { broker.ready_count(&names.queue).await == 0 },
    )
    .await;
    // Held, not delivered and not dead-lettered, for as long as the ledger is away.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 0, "delivered without the ledger");
    assert!(broker.take_dead_letters().await.is_empty());

    proxy.restore();
    common::wait_for_ready(&names).await;
    receiver.wait_for(1).await;
    worker.stop().await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(broker.ready_count(&names.queue).await, 0);
    broker.cleanup().await;
}

#[tokio::test]
async fn deliveries_cancel_aborts_in_flight_drops_pending_retries_and_says_so() {
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap();
    let slow = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    let integrations = format!(
        "{}{}",
        webhook("slow", &slow.url("/slow")),
        webhook("flaky", &flaky.url("/flaky"))
    );
    let yaml = names.config_with(
        &integrations,
        "max_attempts: 3\n  initial_delay: 2s\n  jitter: false",
        "shutdown_grace: 5s",
        4,
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let broker = TestBroker::connect(&names).await;
    let worker = InProcessWorker::start(&names, &yaml).await;

    let run = unique("run");
    broker.publish(&event_for(&run)).await;
    slow.wait_for(1).await;
    flaky.wait_for(1).await;
    let retry_queue = format!("{}.2s", names.retry_prefix);
    wait_until(
        "flaky's retry waits in its retry queue",
        Duration::from_secs(10),
        || async { broker.ready_count(&retry_queue).await == 1 },
    )
    .await;

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let said = cli(&["deliveries", "cancel", "--run", &run]);
    assert!(said.contains("canceled 2 deliveries"), "{said}");
    assert!(
        said.contains("slow (was in_flight)") && said.contains("flaky (was failed)"),
        "{said}"
    );

    // The in-flight request is aborted: the event message is acked without a hand-back.
    wait_until("the event is settled", Duration::from_secs(10), || async {
        broker.ready_count(&names.queue).await == 0
    })
    .await;
    // The retry comes back after 2 s and is dropped.
    let retry_queue = format!("{}.2s", names.retry_prefix);
    wait_until("the retry came back", Duration::from_secs(10), || async {
        broker.ready_count(&retry_queue).await == 0
    })
    .await;
    worker.stop().await;
    assert_eq!(slow.count(), 1);
    assert_eq!(flaky.count(), 1, "a canceled retry was sent");
    assert!(broker.take_dead_letters().await.is_empty());

    let history: serde_json::Value =
        serde_json::from_str(&cli(&["deliveries", "--run", &run, "--json"])).unwrap();
    let states: HashSet<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["integration"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        HashSet::from([
            ("slow".into(), "canceled".into()),
            ("flaky".into(), "canceled".into())
        ])
    );
    let again = cli(&["deliveries", "cancel", "--run", &run]);
    assert!(
        again.contains("canceled 0 deliveries") && again.contains("nothing was pending"),
        "{again}"
    );
    broker.cleanup().await;
}
