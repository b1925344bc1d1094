//! The command-line verbs besides `run`: `check-config`, `publish`, `verify`, `deliveries`,
//! `dead-letters`, `trial`.

pub mod banner;
pub mod dead_letters;
pub mod deliveries;
pub mod trial;

use std::path::Path;

use anyhow::{Context as _, bail};
use lapin::BasicProperties;

use crate::broker::{self, Publisher, Topology};
use crate::config::Config;
use crate::event::RunEvent;
use crate::protocol::CLOUDEVENTS_CONTENT_TYPE;
use crate::signature::{self, Received, SigningSecret};

/// A one-paragraph summary of a valid config.
pub fn describe(config: &Config) -> String {
    let names: Vec<_> = config
        .integrations
        .iter()
        .map(|i| format!("{} ({})", i.name(), i.kind()))
        .collect();
    format!(
        "config is valid: {} integration(s): {}",
        names.len(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// Reads an event file; unless `unchecked`, refuses one the worker would dead-letter.
pub fn read_event(path: &Path, unchecked: bool) -> anyhow::Result<Vec<u8>> {
    let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !unchecked && let Err(err) = RunEvent::parse(&body) {
        bail!(
            "{}: the worker would dead-letter this event: {err} (pass --unchecked to publish it anyway)",
            path.display()
        );
    }
    Ok(body)
}

/// Publishes `body` to the configured exchange with its event type as routing key (as a
/// producer does; an unreadable body goes with the first binding key), declaring the topology
/// first so that a first publish before any worker ran is not lost; waits for the broker's
/// confirm. Returns the routing key.
pub async fn publish(config: &Config, body: &[u8]) -> anyhow::Result<String> {
    let broker = &config.broker;
    let connection = broker::connect_to(broker, "cli")
        .await
        .context("cannot connect to the broker")?;
    let publisher = Publisher::open(&connection).await?;
    Topology::of(config).declare(publisher.channel()).await?;
    let mut properties = BasicProperties::default()
        .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
        .with_delivery_mode(2);
    let mut routing_key = broker.routing_keys.first().cloned().unwrap_or_default();
    if let Ok(event) = RunEvent::parse(body) {
        routing_key = event.event_type().as_str().to_owned();
        properties = properties.with_message_id(event.event_id.into());
    }
    publisher
        .publish(&broker.exchange, &routing_key, body, properties)
        .await?;
    let _ = connection.close(200, "published".into()).await;
    Ok(routing_key)
}

/// Checks a captured webhook as a receiver would at Unix time `now`; the error says precisely
/// what is wrong.
pub fn verify(
    secret: &str,
    received: &Received<'_>,
    now: i64,
    tolerance_secs: i64,
) -> anyhow::Result<()> {
    let secret =
        SigningSecret::parse(secret).map_err(|err| anyhow::anyhow!("bad secret: {err}"))?;
    signature::verify(&secret, received, now, tolerance_secs)?;
    Ok(())
}
