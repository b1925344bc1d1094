//! The names the worker declares on the broker: retry tiers named after the event queue, a
//! name taken with other arguments told at `/readyz`, and tiers of the old names drained.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::support::poll::wait_for_status;
use crate::support::{Receiver, TestApp, event, wait_until, webhook};

/// A durable retry tier as the worker declares one, expiring into `into`.
fn tier_arguments(into: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(into)),
    );
    arguments
}

#[tokio::test]
async fn a_tier_taken_by_another_deployment_keeps_readyz_at_503_naming_it_and_the_key() {
    let app = TestApp::new().await;
    // Another deployment's tier of the same name, expiring into that deployment's queue.
    let tier = format!("{}.1s", app.names.retry_prefix);
    app.channel
        .queue_declare(
            tier.as_str().into(),
            QueueDeclareOptions::durable(),
            tier_arguments("another-deployment.events"),
        )
        .await
        .unwrap();
    let receiver = Receiver::ok().await;
    let mut worker = app.launch_process(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    });

    let readyz = worker.admin_url("/readyz");
    let why = || async {
        let answer = reqwest::get(&readyz).await.ok()?;
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.ok()?;
        (status == 503 && body.get("problem").is_some()).then_some(body)
    };
    wait_until(
        "/readyz says why the worker cannot consume",
        Duration::from_secs(30),
        || async { why().await.is_some() },
    )
    .await;
    let body = why().await.expect("the worker still cannot consume");
    assert_eq!(body["ready"], false);
    assert_eq!(body["broker"], "not consuming");
    assert_eq!(
        body["problem"],
        format!(
            "the broker refused to declare the queue `{tier}`: it exists with another `x-dead-letter-routing-key` \
             (another deployment on this vhost uses the name, or an earlier version declared it); \
             set `broker.retry_queue_prefix` to a name of this deployment's own, or delete the queue once nothing uses it"
        )
    );

    // Once the name is free the worker declares its own tier and becomes ready.
    app.channel
        .queue_delete(tier.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    wait_for_status(&readyz, 200).await;
    let body: serde_json::Value = reqwest::get(&readyz).await.unwrap().json().await.unwrap();
    assert_eq!(body.get("problem"), None, "{body}");
    worker.stop().await;
}

#[tokio::test]
async fn retries_waiting_in_a_tier_of_the_old_names_are_still_delivered() {
    let mut app = TestApp::new().await;
    // Before 2026-12 every deployment's tiers were `run-notifier.retry.*`; this test's own
    // stand-in keeps the name apart from other tests.
    let old_tier = format!("{}.old-retry.1s", app.names.queue);
    app.channel
        .queue_declare(
            old_tier.as_str().into(),
            QueueDeclareOptions::durable(),
            tier_arguments(&app.names.queue),
        )
        .await
        .unwrap();
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    // A message left in the old tier by the earlier version: its TTL runs out and the tier's
    // own arguments put it back into the event queue, whoever declares tiers now.
    let body = event().to_string();
    app.channel
        .basic_publish(
            "".into(),
            old_tier.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default()
                .with_content_type("application/cloudevents+json".into())
                .with_delivery_mode(2)
                .with_expiration("1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    receiver.wait_for(1).await;
    app.stop_worker().await;
    app.channel
        .queue_delete(old_tier.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}
