//! Only the worker's own retry tiers and integration queues carry retries: a producer's message
//! with `x-run-notifier-integration` or `-attempt` headers is a new event, routed by the
//! filters, and the names in it never become metric label values.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use run_notifier::protocol::{HEADER_ATTEMPT, HEADER_INTEGRATION};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::support::process::{WorkerProcess, sample};
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};

/// A generous fuse: these tests wait for positive signals, never for time to pass.
const FUSE: Duration = Duration::from_secs(60);

/// What a producer sends when it poses as a retry of `integration` at `attempt`.
fn posing_as_retry(event: &Value, integration: &str, attempt: i64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_INTEGRATION.into(),
        AMQPValue::LongString(LongString::from(integration)),
    );
    headers.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(attempt));
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_message_id(event["id"].as_str().unwrap().into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// The runs a receiver was sent, in order.
fn runs_of(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["runId"].as_str().unwrap().to_owned())
        .collect()
}

fn on_branch(run: &str, branch: &str) -> Value {
    let mut event = event_for(run);
    event["data"]["commit"]["branch"] = json!(branch);
    event
}

#[tokio::test]
async fn a_producer_posing_as_a_retry_cannot_pass_a_branch_filter_and_reaches_every_match() {
    let mut app = TestApp::new().await;
    let main_only = Receiver::ok().await;
    let all = Receiver::ok().await;
    let also = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("main-only", &main_only.url("/main")).with("branches", ["main"]));
        config.add(webhook("all", &all.url("/all")));
        config.add(webhook("also", &also.url("/also")));
    })
    .await;

    // The example event is on `feature-A`, which `main-only` excludes.
    let forged = unique("run");
    let event = event_for(&forged);
    app.publish_raw(
        event.to_string().as_bytes(),
        posing_as_retry(&event, "main-only", 1),
    )
    .await;
    // A later event on `main`, for all three: once it is through, the forged one was taken
    // before it, and stopping the worker lets that one finish.
    let later = unique("run");
    app.publish(&on_branch(&later, "main")).await;
    for receiver in [&main_only, &all, &also] {
        wait_until("the later event reached the receiver", FUSE, || async {
            runs_of(receiver).contains(&later)
        })
        .await;
    }
    app.stop_worker().await;

    assert_eq!(
        runs_of(&main_only),
        vec![later.clone()],
        "the branch filter holds whatever the headers say"
    );
    for receiver in [&all, &also] {
        let got: BTreeSet<_> = runs_of(receiver).into_iter().collect();
        assert_eq!(
            got,
            BTreeSet::from([forged.clone(), later.clone()]),
            "routed as a new event to every integration that matches"
        );
        assert_eq!(receiver.count(), 2, "once each");
    }
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_producer_writing_into_an_integrations_queue_cannot_pass_its_branch_filter() {
    let mut app = TestApp::new().await;
    let main_only = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("main-only", &main_only.url("/main")).with("branches", ["main"]));
    })
    .await;
    // Straight into the integration's own queue, as a queued part looks (the broker lets any
    // user who may write to the default exchange do this).
    let queue = format!("{}.main-only", app.names.queue);
    let excluded = unique("run");
    let admitted = unique("run");
    for event in [event_for(&excluded), on_branch(&admitted, "main")] {
        app.channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                Default::default(),
                event.to_string().as_bytes(),
                posing_as_retry(&event, "main-only", 1),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    main_only.wait_for(1).await;
    app.stop_worker().await;
    assert_eq!(runs_of(&main_only), vec![admitted], "the filter decides");
    assert_eq!(app.ready_count(&queue).await, 0, "both were taken");
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_unsealed_part_its_filter_refuses_leaves_no_message_unsettled() {
    let app = TestApp::new().await;
    let main_only = Receiver::ok().await;
    let stall = Duration::from_millis(500);
    let worker = app
        .spawn_process(|config| {
            config.add(webhook("main-only", &main_only.url("/main")).with("branches", ["main"]));
            config.worker.stall_timeout = run_notifier::duration::HumanDuration(stall);
        })
        .await;
    let queue = format!("{}.main-only", app.names.queue);
    let excluded = event_for(&unique("run"));
    app.channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            Default::default(),
            excluded.to_string().as_bytes(),
            posing_as_retry(&excluded, "main-only", 1),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    wait_until("the filter skipped the part", FUSE, || async {
        let page = worker.metrics().await;
        let labels = [("integration", "main-only"), ("outcome", "skipped")];
        sample(&page, "run_notifier_deliveries_total", &labels) == Some(1.0)
    })
    .await;
    assert_eq!(app.ready_count(&queue).await, 0);
    // Nothing is left to settle, so no stall can show, however long the worker idles: wait
    // out the stall bound twice (a stall is only visible once that much time has passed).
    tokio::time::sleep(stall * 2).await;
    let alive = reqwest::get(worker.admin_url("/healthz")).await.unwrap();
    let status = alive.status();
    assert_eq!(status, 200, "{}", alive.text().await.unwrap());
    assert_eq!(main_only.count(), 0);
}

#[tokio::test]
async fn a_forged_attempt_spends_no_retries_and_a_real_retry_goes_through_its_tier() {
    let mut app = TestApp::new().await;
    // Fails once, asking for a second's wait, then succeeds.
    let flaky = Receiver::scripted(
        vec![ResponseTemplate::new(503).insert_header("retry-after", "1")],
        ResponseTemplate::new(200),
    )
    .await;
    app.spawn_worker(|config| {
        config.add(webhook("flaky", &flaky.url("/flaky")));
    })
    .await;

    // Attempt 4 is the last the config allows: trusted, the 503 would be dead-lettered.
    let run = unique("run");
    let event = event_for(&run);
    app.publish_raw(
        event.to_string().as_bytes(),
        posing_as_retry(&event, "flaky", 4),
    )
    .await;

    let retry = app.wait_for_scheduled_retry(1).await;
    assert_eq!(retry.integration, "flaky");
    assert_eq!(
        retry.attempt, 2,
        "the producer's attempt 4 counted as attempt 1"
    );
    assert!(retry.sealed, "the worker seals its own retries");
    let attempts = flaky.wait_for(2).await;
    assert_eq!(
        attempts[0].header("webhook-id"),
        attempts[1].header("webhook-id")
    );
    wait_until("the ledger records the delivery", FUSE, || async {
        app.delivery_states(&run).get("flaky").map(String::as_str) == Some("delivered")
    })
    .await;
    let history: Value =
        serde_json::from_str(&app.cli(&["deliveries", "--run", &run, "--json"])).unwrap();
    assert_eq!(history[0]["attempts"], 2, "{history}");
    app.stop_worker().await;
    assert_eq!(flaky.count(), 2);
    assert!(app.take_dead_letters().await.is_empty());
}

/// Every series of a Prometheus page (name and labels, without the value).
fn series(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// Messages consumed so far, whatever became of them.
fn events_consumed(page: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with("run_notifier_events_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Publishes an event posing as a retry of an integration with a new made-up name.
async fn forge(app: &TestApp) {
    let event = event_for(&unique("run"));
    let name = unique("forged");
    app.publish_raw(
        event.to_string().as_bytes(),
        posing_as_retry(&event, &name, 1),
    )
    .await;
}

/// The worker's `/metrics` page once it has consumed `count` messages.
async fn consumed(worker: &WorkerProcess<'_>, count: u32) -> String {
    wait_until(&format!("{count} messages consumed"), FUSE, || async {
        events_consumed(&worker.metrics().await) >= f64::from(count)
    })
    .await;
    worker.metrics().await
}

#[tokio::test]
async fn forged_integration_names_add_no_metric_series() {
    let app = TestApp::new().await;
    let hook = Receiver::ok().await;
    // A process of its own: its `/metrics` counts only this test's messages. Every event here
    // is on `feature-A`, filtered out for `hook`: each is handled the same way, in one step.
    let mut worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &hook.url("/hook")).with("branches", ["main"]));
        })
        .await;
    // One forged message first, so that every series such a message touches exists.
    forge(&app).await;
    let before = series(&consumed(&worker, 1).await);
    for _ in 0..200 {
        forge(&app).await;
    }
    let page = consumed(&worker, 201).await;
    let after = series(&page);

    println!(
        "200 made-up integration names: {} series before, {} after",
        before.len(),
        after.len()
    );
    let added: Vec<_> = after.difference(&before).collect();
    assert!(
        added.is_empty(),
        "{} series before, {} after; added: {added:#?}",
        before.len(),
        after.len()
    );
    assert!(!page.contains("forged-"), "no forged name is a label value");
    assert_eq!(
        sample(&page, "run_notifier_unsealed_retry_headers_total", &[]),
        Some(201.0)
    );
    assert_eq!(
        sample(
            &page,
            "run_notifier_events_total",
            &[("outcome", "skipped")]
        ),
        Some(201.0),
        "each was a new event, filtered out for `hook`"
    );
    let logs = worker.logs();
    assert!(
        logs.contains("retry headers this worker did not seal"),
        "{logs}"
    );
    assert!(!logs.contains("forged-"), "the names are not logged");
    worker.stop().await;
    assert_eq!(hook.count(), 0);
    assert!(app.take_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_retry_sealed_by_one_replica_is_trusted_by_another_on_the_same_postgresql_ledger() {
    let app = TestApp::with_postgres().await;
    let flaky = Receiver::scripted(
        vec![ResponseTemplate::new(503).insert_header("retry-after", "1")],
        ResponseTemplate::new(200),
    )
    .await;
    let setup = |config: &mut crate::support::Setup| {
        config.add(webhook("flaky", &flaky.url("/flaky")));
    };
    // The first replica fails the event and schedules its retry, then stops before it is due.
    let mut first = app.spawn_process(setup).await;
    let run = unique("run");
    app.publish(&event_for(&run)).await;
    flaky.wait_for(1).await;
    first.stop().await;
    // The second one, started after, reads the same key from the ledger and takes the retry
    // as the second attempt.
    let mut second = app.spawn_process(setup).await;
    flaky.wait_for(2).await;
    wait_until("the ledger records the delivery", FUSE, || async {
        app.delivery_states(&run).get("flaky").map(String::as_str) == Some("delivered")
    })
    .await;
    let history: Value =
        serde_json::from_str(&app.cli(&["deliveries", "--run", &run, "--json"])).unwrap();
    assert_eq!(history[0]["attempts"], 2, "{history}");
    second.stop().await;
    for logs in [first.logs(), second.logs()] {
        assert!(!logs.contains("did not seal"), "{logs}");
    }
    assert!(app.take_dead_letters().await.is_empty());
}
