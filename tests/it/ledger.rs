//! One notification per run and integration: duplicates, crashes, several workers, an
//! unreachable ledger, and an operator's cancel.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use run_notifier::config::HumanDuration;
use wiremock::ResponseTemplate;

use crate::support::poll::wait_for_status;
use crate::support::process::sample;
use crate::support::proxy::Proxy;
use crate::support::{Receiver, Setup, TestApp, event_for, unique, wait_until, webhook};

/// Two webhooks, `a` and `b`, on one receiver.
fn two_hooks(config: &mut Setup, receiver: &Receiver) {
    config.add(webhook("a", &receiver.url("/a")));
    config.add(webhook("b", &receiver.url("/b")));
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
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| two_hooks(config, &receiver))
        .await;

    let event = event_for(&unique("run"));
    app.publish(&event).await;
    app.publish(&event).await;
    receiver.wait_for(2).await;
    wait_until(
        "both copies are consumed",
        Duration::from_secs(10),
        || async { app.ready_count(&app.names.queue).await == 0 },
    )
    .await;
    app.stop_worker().await; // drains whatever is still in flight

    assert_eq!(app.ready_count(&app.names.queue).await, 0);
    assert!(
        tally(&receiver).values().all(|&n| n == 1),
        "{:?}",
        tally(&receiver)
    );
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn two_cancel_events_of_one_run_reach_each_integration_once() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| two_hooks(config, &receiver))
        .await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    receiver.wait_for(2).await;
    app.publish(&event_for(&run)).await; // a fresh event id: a parallel CI job canceled too
    wait_until(
        "the second event is consumed",
        Duration::from_secs(10),
        || async { app.ready_count(&app.names.queue).await == 0 },
    )
    .await;
    app.stop_worker().await;

    assert_eq!(receiver.count(), 2, "{:?}", tally(&receiver));
}

#[tokio::test]
async fn a_worker_killed_before_its_ack_does_not_resend_what_it_delivered() {
    let app = TestApp::new().await;
    let fast = Receiver::ok().await;
    let slow = Receiver::scripted(
        vec![ResponseTemplate::new(200).set_delay(Duration::from_secs(30))],
        ResponseTemplate::new(200),
    )
    .await;
    let setup = |config: &mut Setup| {
        config.add(webhook("fast", &fast.url("/fast")));
        config.add(webhook("slow", &slow.url("/slow")).with("timeout", "1s"));
        config.retry.max_attempts = 3;
        config.broker.prefetch = 4;
    };
    let mut worker = app.spawn_process(setup).await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    fast.wait_for(1).await;
    slow.wait_for(1).await; // in flight: the event is not acked yet
    // Killed only once `fast` is recorded: a delivery killed before its record is sent again
    // (at least once), which is not what this test is about.
    wait_until(
        "fast is recorded as delivered",
        Duration::from_secs(30),
        || async { app.delivery_states(&run).get("fast").map(String::as_str) == Some("delivered") },
    )
    .await;
    assert_eq!(app.delivery_states(&run)["slow"], "in_flight");
    worker.signal("-KILL");
    worker.wait_exit().await;

    // The broker redelivers; the ledger knows `fast` was delivered. `slow`'s claim is held by
    // the dead worker until its lease (3 × timeout + 5 s) runs out, then taken over.
    let mut restarted = app.spawn_process(setup).await;
    slow.wait_for(2).await;
    restarted.stop().await;
    assert_eq!(fast.count(), 1, "the delivered integration was sent again");
    assert_eq!(
        slow.count(),
        2,
        "the unfinished one was retried after the restart"
    );
    let table = app.cli(&["deliveries", "--run", &run]);
    assert!(
        table.lines().filter(|l| l.contains("delivered")).count() == 2,
        "{table}"
    );
}

#[tokio::test]
async fn two_workers_sharing_a_postgres_ledger_deliver_every_run_once() {
    const RUNS: usize = 500;
    const REPEATED: usize = 100;
    let app = TestApp::with_postgres().await;
    let receiver = Receiver::ok().await;
    let setup = |config: &mut Setup| {
        two_hooks(config, &receiver);
        config.retry.max_attempts = 3;
        config.broker.prefetch = 32;
    };
    // Each gets an admin port of its own; everything else is shared.
    let mut one = app.spawn_process(setup).await;
    let mut two = app.spawn_process(setup).await;

    let runs: Vec<String> = (0..RUNS).map(|_| unique("run")).collect();
    for (index, run) in runs.iter().enumerate() {
        let event = event_for(run);
        app.publish(&event).await;
        if index < REPEATED {
            app.publish(&event).await;
        }
    }
    wait_until(
        "every run reached both integrations",
        Duration::from_secs(120),
        || async { tally(&receiver).len() == RUNS * 2 },
    )
    .await;
    // A copy that found its run claimed by the other worker waits out that claim's lease in a
    // retry tier (20 s here) before it comes back and is skipped as done: wait for those too,
    // or they return while the workers stop.
    wait_until(
        "the queue and its retry tiers are drained",
        Duration::from_secs(60),
        || async { app.waiting_anywhere().await == 0 },
    )
    .await;
    one.stop().await;
    two.stop().await;

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
    assert_eq!(app.ready_count(&app.names.queue).await, 0);
}

#[tokio::test]
async fn an_unreachable_ledger_makes_the_worker_not_ready_and_holds_messages_until_it_returns() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let app = TestApp::with_postgres_through(proxy.port).await;
    let receiver = Receiver::ok().await;
    // A process of its own, so the claim count on its metrics page is this test's alone.
    let worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &receiver.url("/hook")));
        })
        .await;

    proxy.cut();
    let readyz = worker.admin_url("/readyz");
    wait_for_status(&readyz, 503).await;
    let body: serde_json::Value = reqwest::get(&readyz).await.unwrap().json().await.unwrap();
    assert_eq!(body["ledger"], "unreachable");

    app.publish(&event_for(&unique("run"))).await;
    // The worker took the event, tried to claim it, failed, and tried again: it is past the
    // point where it would deliver or dead-letter, and holds the event instead.
    wait_until(
        "the worker tried the ledger twice for the event",
        Duration::from_secs(30),
        || async {
            let claims = sample(
                &worker.metrics().await,
                "run_notifier_ledger_operation_duration_seconds_count",
                &[("operation", "claim")],
            );
            claims.unwrap_or(0.0) >= 2.0
        },
    )
    .await;
    assert_eq!(app.ready_count(&app.names.queue).await, 0, "taken, unacked");
    assert_eq!(receiver.count(), 0, "delivered without the ledger");
    assert!(app.take_dead_letters().await.is_empty());

    proxy.restore();
    wait_for_status(&readyz, 200).await;
    receiver.wait_for(1).await;
    let mut worker = worker;
    worker.stop().await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(app.ready_count(&app.names.queue).await, 0);
}

#[tokio::test]
async fn deliveries_cancel_aborts_in_flight_drops_pending_retries_and_says_so() {
    let mut app = TestApp::new().await;
    let slow = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    app.spawn_worker(|config| {
        config.add(webhook("slow", &slow.url("/slow")));
        config.add(webhook("flaky", &flaky.url("/flaky")));
        config.retry.max_attempts = 3;
        config.retry.initial_delay = HumanDuration::secs(2);
        config.retry.max_delay = HumanDuration::secs(2);
        config.broker.prefetch = 4;
    })
    .await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    slow.wait_for(1).await;
    flaky.wait_for(1).await;
    let retry_queue = app.retry_queue(2);
    wait_until(
        "flaky's retry waits in its retry queue",
        Duration::from_secs(10),
        || async { app.ready_count(&retry_queue).await == 1 },
    )
    .await;

    let said = app.cli(&["deliveries", "cancel", "--run", &run]);
    assert!(said.contains("canceled 2 deliveries"), "{said}");
    assert!(
        said.contains("slow (was in_flight)") && said.contains("flaky (was failed)"),
        "{said}"
    );

    // The in-flight request is aborted: the event message is acked without a hand-back.
    wait_until("the event is settled", Duration::from_secs(10), || async {
        app.ready_count(&app.names.queue).await == 0
    })
    .await;
    // The retry comes back after 2 s and is dropped.
    wait_until("the retry came back", Duration::from_secs(10), || async {
        app.ready_count(&retry_queue).await == 0
    })
    .await;
    app.stop_worker().await;
    assert_eq!(slow.count(), 1);
    assert_eq!(flaky.count(), 1, "a canceled retry was sent");
    assert!(app.take_dead_letters().await.is_empty());

    let history: serde_json::Value =
        serde_json::from_str(&app.cli(&["deliveries", "--run", &run, "--json"])).unwrap();
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
    let again = app.cli(&["deliveries", "cancel", "--run", &run]);
    assert!(
        again.contains("canceled 0 deliveries") && again.contains("nothing was pending"),
        "{again}"
    );
}

#[tokio::test]
async fn a_ledger_unreachable_at_start_is_waited_for_and_the_worker_is_not_ready_meanwhile() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let app = TestApp::with_postgres_through(proxy.port).await;
    let receiver = Receiver::ok().await;
    proxy.cut();
    let mut worker = app.launch_process(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    });
    let readyz = worker.admin_url("/readyz");
    wait_for_status(&readyz, 503).await;
    let body: serde_json::Value = reqwest::get(&readyz).await.unwrap().json().await.unwrap();
    assert_eq!(body["ledger"], "unreachable");
    // It says why, and keeps trying: a second attempt proves it did not give up.
    wait_until(
        "the worker retried the ledger",
        Duration::from_secs(30),
        || async { worker.logs().matches("cannot open the ledger yet").count() >= 2 },
    )
    .await;
    let alive = reqwest::get(worker.admin_url("/healthz")).await.unwrap();
    assert_eq!(
        alive.status(),
        200,
        "waiting is not a reason to be restarted"
    );

    proxy.restore();
    wait_for_status(&readyz, 200).await;
    let run = unique("run");
    app.publish(&event_for(&run)).await;
    assert_eq!(receiver.wait_for(1).await[0].json()["runId"], run.as_str());
    worker.stop().await;
}

#[tokio::test]
async fn with_wait_at_start_off_an_unreachable_ledger_stops_the_start_with_the_reason() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let app = TestApp::with_postgres_through(proxy.port).await;
    proxy.cut();
    let (config, _) = app.config(|config| {
        config.ledger.wait_at_start = false;
    });
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the ledger"), "{stderr}");
}
