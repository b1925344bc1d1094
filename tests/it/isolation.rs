//! The integration is the unit of work: a hung or failing receiver holds only its own share of
//! the worker, its work waits durable in its own queue, a breaker pauses it, messages in the old
//! shapes still arrive after an upgrade, and after a crash only the pairs in flight wait.

use std::collections::HashSet;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use run_notifier::protocol::{HEADER_ATTEMPT, HEADER_INTEGRATION};
use wiremock::ResponseTemplate;

use crate::support::process::sample;
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};

/// A generous fuse: these tests wait for positive signals, never for time to pass.
const FUSE: Duration = Duration::from_secs(60);

// The in-process workers of all tests share one metrics registry: the integrations here have
// names no other test uses, and no assertion reads a series without an integration label.

/// The runs a receiver was sent, once each.
fn runs_of(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
        .collect()
}

async fn publish_runs(app: &TestApp, count: usize) -> Vec<String> {
    let mut runs = Vec::new();
    for _ in 0..count {
        let run = unique("run");
        app.publish(&event_for(&run)).await;
        runs.push(run);
    }
    runs
}

async fn metrics(app: &TestApp) -> String {
    reqwest::get(app.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hung_receiver_holds_only_its_own_share_and_the_others_get_every_event() {
    let mut app = TestApp::new().await;
    // Accepts the request and never answers within the test.
    let hung = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3_600)),
    )
    .await;
    let healthy = [Receiver::ok().await, Receiver::ok().await];
    app.spawn_worker(|config| {
        config.add(
            webhook("hung", &hung.url("/hung"))
                .with("timeout", "30m")
                .with("concurrency", 3),
        );
        config.add(webhook("healthy-a", &healthy[0].url("/a")));
        config.add(webhook("healthy-b", &healthy[1].url("/b")));
    })
    .await;

    // More events than the worker's prefetch (16): were the hung receiver holding the events,
    // the healthy ones would stop after the first few until its 30-minute timeout.
    let runs = publish_runs(&app, 40).await;
    app.publish_raw(b"not an event", BasicProperties::default())
        .await;
    for receiver in &healthy {
        receiver.wait_for(runs.len()).await;
    }

    for receiver in &healthy {
        let got: HashSet<_> = runs_of(receiver).into_iter().collect();
        assert_eq!(got, runs.iter().cloned().collect(), "each run exactly once");
        assert_eq!(receiver.count(), runs.len());
    }
    assert_eq!(
        hung.count(),
        3,
        "the hung integration has exactly its concurrency in flight"
    );
    let dead = app.wait_for_dead_letters(1).await;
    assert_eq!(
        dead.len(),
        1,
        "bad input is dead-lettered once, not per integration"
    );

    // The hung integration's other deliveries wait in its own queue, counted in /metrics.
    wait_until(
        "the gauges show the hung integration's backlog",
        FUSE,
        || async {
            let page = metrics(&app).await;
            sample(
                &page,
                "run_notifier_integration_in_flight",
                &[("integration", "hung")],
            ) == Some(3.0)
                && sample(
                    &page,
                    "run_notifier_integration_queued",
                    &[("integration", "hung")],
                ) == Some((runs.len() - 3) as f64)
        },
    )
    .await;
    let page = metrics(&app).await;
    assert_eq!(
        sample(
            &page,
            "run_notifier_integration_in_flight",
            &[("integration", "healthy-a")]
        ),
        Some(0.0)
    );

    // Shutdown hands the hung deliveries back: every one of its runs is still queued, durable.
    app.stop_worker().await;
    let queue = format!("{}.hung", app.names.queue);
    // The broker puts what the worker held back into the queue as it closes the channel, which
    // may finish just after the worker has stopped: poll rather than read once.
    wait_until("every hung delivery is back in its queue", FUSE, || async {
        app.ready_count(&queue).await as usize == runs.len()
    })
    .await;
    assert_eq!(app.ready_count(&app.names.queue).await, 0);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_pauses_its_integration_until_a_probe_gets_an_answer() {
    let mut app = TestApp::new().await;
    // Three failures open the breaker; the probe after the cool-down gets the first 200.
    let failing = Receiver::scripted(
        vec![ResponseTemplate::new(500); 3],
        ResponseTemplate::new(200),
    )
    .await;
    let healthy = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(
            webhook("failing", &failing.url("/failing"))
                .with("concurrency", 1)
                .with(
                    "circuit_breaker",
                    serde_json::json!({"failures": 3, "cool_down": "2s"}),
                ),
        );
        config.add(webhook("healthy", &healthy.url("/healthy")));
    })
    .await;

    let runs = publish_runs(&app, 10).await;
    wait_until("the breaker opens", FUSE, || async {
        let page = metrics(&app).await;
        sample(
            &page,
            "run_notifier_circuit_breaker_state",
            &[("integration", "failing"), ("state", "open")],
        ) == Some(1.0)
    })
    .await;
    healthy.wait_for(runs.len()).await;
    let opened = failing.received()[2].at;

    // Every run reaches the failing receiver once it answers again; nothing is dead-lettered,
    // since attempts wait while the breaker is open instead of being spent.
    wait_until("every run reached the recovered receiver", FUSE, || async {
        let delivered: HashSet<_> = failing.received()[3..]
            .iter()
            .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
            .collect();
        runs.iter().all(|run| delivered.contains(run))
    })
    .await;
    let received = failing.received();
    assert_eq!(
        received.len(),
        3 + runs.len(),
        "three failures, then each run once"
    );
    assert!(
        received[3].at.duration_since(opened) >= Duration::from_secs(2),
        "nothing was sent to it during the cool-down"
    );
    let mut healthy_runs = runs_of(&healthy);
    healthy_runs.sort();
    let mut expected = runs.clone();
    expected.sort();
    assert_eq!(
        healthy_runs, expected,
        "the healthy one got each run exactly once"
    );
    let page = metrics(&app).await;
    assert_eq!(
        sample(
            &page,
            "run_notifier_circuit_breaker_state",
            &[("integration", "failing"), ("state", "closed")]
        ),
        Some(1.0)
    );
    app.stop_worker().await;
    assert!(app.take_dead_letters().await.is_empty());
}

/// A retry as a version before seals wrote it: the event with the integration and attempt in
/// its headers, routed back through the event queue.
fn old_retry(integration: &str, attempt: i64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_INTEGRATION.into(),
        AMQPValue::LongString(LongString::from(integration)),
    );
    headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(attempt));
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

#[tokio::test]
async fn retries_left_in_the_queues_by_the_previous_version_are_delivered_after_an_upgrade() {
    let mut app = TestApp::new().await;
    let hook = Receiver::ok().await;
    let other = Receiver::ok().await;
    let in_events = unique("run");
    let in_tier = unique("run");
    // Before the upgrade, `other` had both runs; `hook` failed them and waits for its retries.
    app.spawn_worker(|config| {
        config.add(webhook("other", &other.url("/other")));
    })
    .await;
    for run in [&in_events, &in_tier] {
        app.publish(&event_for(run)).await;
    }
    other.wait_for(2).await;
    app.stop_worker().await;

    // One retry already back in the event queue, one still waiting in a retry tier.
    let tier = format!("{}.1s", app.names.retry_prefix);
    for (run, queue, properties) in [
        (&in_events, app.names.queue.clone(), old_retry("hook", 2)),
        (
            &in_tier,
            tier,
            old_retry("hook", 3).with_expiration("100".into()),
        ),
    ] {
        app.channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                event_for(run).to_string().as_bytes(),
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    app.spawn_worker(|config| {
        config.add(webhook("hook", &hook.url("/hook")));
        config.add(webhook("other", &other.url("/other")));
    })
    .await;
    hook.wait_for(2).await;
    let got: HashSet<_> = runs_of(&hook).into_iter().collect();
    assert_eq!(got, HashSet::from([in_events.clone(), in_tier.clone()]));
    // Without this version's seal they come back as new events: the ledger keeps `other`,
    // which had them, from a second send. Later work proves the worker went past them.
    let later = unique("run");
    app.publish(&event_for(&later)).await;
    other.wait_for(3).await;
    let got: HashSet<_> = runs_of(&other).into_iter().collect();
    assert_eq!(got, HashSet::from([in_events, in_tier, later]));
    hook.wait_for(3).await;
    app.stop_worker().await;
    assert_eq!(hook.count(), 3);
    assert_eq!(other.count(), 3);
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn after_a_crash_only_the_pairs_that_were_in_flight_wait_for_their_lease() {
    let app = TestApp::new().await;
    // Slow enough to be killed mid-delivery; the lease (3 × 20 s + 5 s) outlasts the test.
    let slow = Receiver::scripted(
        vec![],
        ResponseTemplate::new(200).set_delay(Duration::from_millis(1_500)),
    )
    .await;
    let fast = Receiver::ok().await;
    let setup = |config: &mut crate::support::Setup| {
        config.add(
            webhook("slow", &slow.url("/slow"))
                .with("timeout", "20s")
                .with("concurrency", 4),
        );
        config.add(webhook("fast", &fast.url("/fast")));
        // As many events as the worker takes at once: before, the redelivered ones held every
        // slot while they waited for the dead worker's leases.
        config.broker.prefetch = 4;
    };
    let mut worker = app.spawn_process(setup).await;
    let before = publish_runs(&app, 4).await;
    slow.wait_for(4).await;
    // Killed once `fast` is recorded and `slow` is in flight for every run: a delivery killed
    // before its record is sent again (at least once), which is not what this test is about.
    wait_until("fast is recorded and slow in flight", FUSE, || async {
        before.iter().all(|run| {
            let states = app.delivery_states(run);
            states.get("fast").map(String::as_str) == Some("delivered")
                && states.get("slow").map(String::as_str) == Some("in_flight")
        })
    })
    .await;
    worker.signal("-KILL");
    worker.wait_exit().await;

    let _restarted = app.spawn_process(setup).await;
    let after = publish_runs(&app, 6).await;
    wait_until("the new runs reach both receivers", FUSE, || async {
        let slow_runs: HashSet<_> = runs_of(&slow).into_iter().collect();
        let fast_runs: HashSet<_> = runs_of(&fast).into_iter().collect();
        after
            .iter()
            .all(|run| slow_runs.contains(run) && fast_runs.contains(run))
    })
    .await;
    assert_eq!(
        fast.count(),
        before.len() + after.len(),
        "the fast deliveries that were done are not repeated"
    );
    assert_eq!(
        slow.count(),
        before.len() + after.len(),
        "the pairs in flight at the crash wait for their lease; nothing else waits"
    );
}
