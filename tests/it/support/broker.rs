//! What a test does on the broker: publish events, read dead letters and queue depths, look at
//! a scheduled retry, and delete everything a test declared.

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use run_notifier::broker::message::{number, text};
use run_notifier::protocol::{HEADER_ATTEMPT, HEADER_INTEGRATION, HEADER_SEAL};
use serde_json::Value;

use super::app::{Names, TestApp};
use super::poll::wait_until;
use super::{AMQP_URL, POSTGRES_URL};

/// A dead letter as a test sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub headers: FieldTable,
}

impl DeadLetter {
    /// A text header (`x-run-notifier-error`…).
    pub fn header(&self, name: &str) -> Option<String> {
        text(&self.headers, name)
    }

    /// A number header (`x-run-notifier-attempt`…).
    pub fn number(&self, name: &str) -> Option<i64> {
        number(&self.headers, name)
    }
}

/// A retry waiting in its retry queue, as the worker scheduled it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRetry {
    pub integration: String,
    /// The attempt it will make.
    pub attempt: i64,
    /// How long the worker asked it to wait (the message's TTL).
    pub delay: Duration,
    /// Whether it carries a seal (`x-run-notifier-seal`), as the worker's own retries do.
    pub sealed: bool,
}

impl TestApp {
    /// Publishes raw bytes to the test's exchange with the event routing key.
    pub async fn publish_raw(&self, body: &[u8], properties: BasicProperties) {
        self.channel
            .basic_publish(
                self.names.exchange.as_str().into(),
                "run.canceled".into(),
                Default::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Publishes an event as the dashboard does (persistent, CloudEvents content type).
    pub async fn publish(&self, event: &Value) {
        let properties = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_message_id(event["id"].as_str().unwrap_or("-").into())
            .with_delivery_mode(2);
        self.publish_raw(event.to_string().as_bytes(), properties)
            .await;
    }

    /// Takes (acks) every dead letter present now.
    pub async fn take_dead_letters(&self) -> Vec<DeadLetter> {
        let mut letters = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.names.dead.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            letters.push(DeadLetter {
                body: delivery.data.clone(),
                headers: delivery.properties.headers().clone().unwrap_or_default(),
            });
        }
        letters
    }

    /// Waits until `count` dead letters have arrived, taking them, and returns them.
    pub async fn wait_for_dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let letters = std::sync::Mutex::new(Vec::new());
        wait_until(
            &format!("{count} dead letter(s) arrived"),
            Duration::from_secs(30),
            || async {
                let taken = self.take_dead_letters().await;
                let mut letters = letters.lock().unwrap();
                letters.extend(taken);
                letters.len() >= count
            },
        )
        .await;
        letters.into_inner().unwrap()
    }

    /// Messages ready in `queue` (unacked ones are not counted).
    pub async fn ready_count(&self, queue: &str) -> u32 {
        // A channel of its own: a passive declare of a missing queue closes its channel.
        let channel = self.connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|err| panic!("queue {queue}: {err}"));
        let _ = channel.close(200, "done".into()).await;
        declared.message_count()
    }

    /// Messages ready in the event queue and in every retry tier it has: a retry waiting out
    /// its delay is ready in its tier, so zero means nothing will come back to the workers.
    pub async fn waiting_anywhere(&self) -> u32 {
        let mut total = self.ready_count(&self.names.queue).await;
        // A connection of its own: after a passive declare of a missing queue, lapin fails the
        // next channel it opens on that connection.
        let connection = run_notifier::broker::connect(AMQP_URL, "tests-depth")
            .await
            .unwrap();
        for k in 0..=12 {
            let channel = connection.create_channel().await.unwrap();
            let declared = channel
                .queue_declare(
                    self.retry_queue(1u64 << k).as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            // Tiers are declared from the shortest up: the first missing one ends the list.
            let Ok(declared) = declared else { break };
            total += declared.message_count();
            let _ = channel.close(200, "done".into()).await;
        }
        let _ = connection.close(200, "done".into()).await;
        total
    }

    /// The retry queue of the `secs`-second tier (delays from `secs` up to twice that).
    pub fn retry_queue(&self, secs: u64) -> String {
        format!("{}.{secs}s", self.names.retry_prefix)
    }

    /// Waits until a retry waits in the `secs`-second tier, and reads it without taking it
    /// (it goes back to the queue at once).
    pub async fn wait_for_scheduled_retry(&self, secs: u64) -> ScheduledRetry {
        let queue = self.retry_queue(secs);
        let found = std::sync::Mutex::new(None);
        wait_until(
            &format!("a retry waits in {queue}"),
            Duration::from_secs(30),
            || async {
                let Some(message) = self
                    .channel
                    .basic_get(queue.as_str().into(), BasicGetOptions::default())
                    .await
                    .unwrap()
                else {
                    return false;
                };
                let delivery = message.delivery;
                let headers = delivery.properties.headers().clone().unwrap_or_default();
                let ttl = delivery
                    .properties
                    .expiration()
                    .as_ref()
                    .map(|e| e.to_string());
                *found.lock().unwrap() = Some(ScheduledRetry {
                    integration: text(&headers, HEADER_INTEGRATION).unwrap_or_default(),
                    attempt: number(&headers, HEADER_ATTEMPT).unwrap_or(0),
                    delay: Duration::from_millis(ttl.and_then(|t| t.parse().ok()).unwrap_or(0)),
                    sealed: headers.contains_key(HEADER_SEAL),
                });
                let back = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                delivery.acker.nack(back).await.unwrap();
                true
            },
        )
        .await;
        found.into_inner().unwrap().unwrap()
    }
}

/// Deletes the queues and exchanges of `names` (and the PostgreSQL `schema`), from a
/// connection of its own. Deleting what does not exist is fine: RabbitMQ treats it as done.
pub(super) async fn delete_everything(names: &Names, schema: Option<&str>) -> Result<(), String> {
    let connection = run_notifier::broker::connect(AMQP_URL, "tests-cleanup")
        .await
        .map_err(|err| err.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|err| err.to_string())?;
    let mut queues = vec![names.queue.clone(), names.dead.clone()];
    // Retry tiers are powers of two up to the longest delay; 2^12 s is more than any test's.
    queues.extend((0..=12).map(|k| format!("{}.{}s", names.retry_prefix, 1u64 << k)));
    let integrations = names.integrations.lock().unwrap().clone();
    queues.extend(
        integrations
            .iter()
            .map(|name| format!("{}.{name}", names.queue)),
    );
    let result = delete(&channel, &queues, &[&names.exchange, &names.control]).await;
    let _ = connection.close(200, "done".into()).await;
    if let Some(schema) = schema {
        let pool = sqlx::AnyPool::connect(POSTGRES_URL)
            .await
            .map_err(|err| err.to_string())?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await
        .map_err(|err| err.to_string())?;
        pool.close().await;
    }
    result
}

async fn delete(channel: &Channel, queues: &[String], exchanges: &[&str]) -> Result<(), String> {
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|err| format!("delete queue {queue}: {err}"))?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete((*exchange).into(), Default::default())
            .await
            .map_err(|err| format!("delete exchange {exchange}: {err}"))?;
    }
    Ok(())
}
