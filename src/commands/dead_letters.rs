//! `dead-letters list` and `dead-letters replay`: inspect the dead-letter queue without
//! consuming it, and put dead letters back for a fresh set of attempts.

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;

use crate::broker::message::{DeadLetter, replayed, text};
use crate::broker::{self, Publisher};
use crate::config::Config;
use crate::echo;
use crate::protocol::HEADER_INTEGRATION;

/// One dead letter as an operator reads it. Every text in it may come from a producer (the
/// reason quotes it, and anyone who can publish may have set these headers), so each is bounded
/// and has its control characters escaped ([`echo`]): listing never lets a message move or
/// clear the operator's terminal, whether printed or piped from `--json` through `jq -r`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub dead_at: Option<String>,
    /// `invalid`, `delivery`, or `broker` (dead-lettered by RabbitMQ's delivery limit).
    pub kind: &'static str,
    pub integration: Option<String>,
    pub attempts: Option<u32>,
    pub run_id: Option<String>,
    pub message_id: Option<String>,
    pub error: String,
}

impl DeadLetterView {
    fn of(message: &BasicGetMessage) -> Self {
        let properties = &message.delivery.properties;
        let dead = DeadLetter::read(&properties.headers().clone().unwrap_or_default());
        let value = |text: &str| echo::value(text).to_string();
        Self {
            dead_at: dead
                .dead_at
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            kind: dead.kind.as_str(),
            integration: dead.integration.as_deref().map(value),
            attempts: dead.attempts,
            run_id: dead.run_id.as_deref().map(value),
            message_id: properties
                .message_id()
                .as_ref()
                .map(|id| value(id.as_str())),
            error: echo::message(&dead.error).to_string(),
        }
    }
}

/// Shows up to `limit` dead letters. They are read without acknowledging them and go back to
/// the queue when the channel closes: listing never consumes.
pub async fn list(config: &Config, limit: usize, json: bool) -> anyhow::Result<String> {
    let connection = broker::connect_to(&config.broker, "cli")
        .await
        .context("cannot connect to the broker")?;
    let channel = connection.create_channel().await?;
    let queue = config.broker.dead_letter_queue.as_str();
    let mut views = Vec::new();
    let mut remaining = 0;
    while views.len() < limit {
        let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .with_context(|| {
                format!("cannot read the dead-letter queue `{queue}` (has the worker run once?)")
            })?
        else {
            break;
        };
        remaining = message.message_count;
        views.push(DeadLetterView::of(&message));
    }
    let _ = channel.close(200, "listed".into()).await;
    let _ = connection.close(200, "listed".into()).await;
    if json {
        return Ok(serde_json::to_string_pretty(&views)?);
    }
    if views.is_empty() {
        return Ok(format!("no dead letters in `{queue}`"));
    }
    let mut lines = vec![format!(
        "{} dead letter(s) shown{}",
        views.len(),
        if remaining > 0 {
            format!(", {remaining} more in `{queue}`")
        } else {
            String::new()
        }
    )];
    for view in &views {
        lines.push(format!(
            "- {} {} integration={} attempts={} run={} message={}\n  {}",
            view.dead_at.as_deref().unwrap_or("-"),
            view.kind,
            view.integration.as_deref().unwrap_or("-"),
            view.attempts.map_or("-".to_owned(), |a| a.to_string()),
            view.run_id.as_deref().unwrap_or("-"),
            view.message_id.as_deref().unwrap_or("-"),
            view.error,
        ));
    }
    Ok(lines.join("\n"))
}

/// Puts up to `limit` dead letters (of one integration, or all) back on the event queue for a
/// fresh set of attempts; each is removed from the dead-letter queue only once the broker has
/// confirmed its replay. The ledger still keeps a run from reaching an integration twice.
pub async fn replay(
    config: &Config,
    integration: Option<&str>,
    limit: usize,
) -> anyhow::Result<String> {
    let connection = broker::connect_to(&config.broker, "cli")
        .await
        .context("cannot connect to the broker")?;
    let publisher = Publisher::open(&connection).await?;
    let channel = connection.create_channel().await?;
    let dead_queue = config.broker.dead_letter_queue.as_str();
    // Only what is there now: a replayed event that fails again comes back to this queue, and
    // must not be picked up and replayed again by this same command.
    let present = channel
        .queue_declare(
            dead_queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| {
            format!("there is no dead-letter queue `{dead_queue}` (has the worker run once?)")
        })?
        .message_count();
    let (mut replayed_count, mut kept, mut read) = (0, 0, 0);
    while replayed_count < limit && read < present {
        read += 1;
        let Some(message) = channel
            .basic_get(dead_queue.into(), BasicGetOptions::default())
            .await
            .with_context(|| format!("cannot read the dead-letter queue `{dead_queue}`"))?
        else {
            break;
        };
        let properties = &message.delivery.properties;
        let of = properties
            .headers()
            .as_ref()
            .and_then(|h| text(h, HEADER_INTEGRATION));
        if integration.is_some_and(|wanted| of.as_deref() != Some(wanted)) {
            kept += 1; // left unacked: back in the queue when the channel closes
            continue;
        }
        publisher
            .publish(
                "",
                &config.broker.queue,
                &message.delivery.data,
                replayed(properties),
            )
            .await
            .context("cannot put the dead letter back on the event queue")?;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        replayed_count += 1;
    }
    let _ = channel.close(200, "replayed".into()).await;
    let _ = connection.close(200, "replayed".into()).await;
    let scope = integration.map_or(String::new(), |name| format!(" of `{name}`"));
    Ok(format!(
        "replayed {replayed_count} dead letter(s){scope} onto `{}`{}",
        config.broker.queue,
        if kept > 0 {
            format!("; {kept} of other integrations left in `{dead_queue}`")
        } else {
            String::new()
        }
    ))
}
