//! What every scenario needs: names and a config unique to one run, a publisher with confirms,
//! the ledger's view, and deleting everything a run declared.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Connection};
use run_notifier::config::Config;
use serde_json::{Value, json};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const EXAMPLE_EVENT: &str = include_str!("../../config/example-event.json");
/// The example config's prefetch: the issue measured with it.
const PREFETCH: u16 = 64;

/// A fresh suffix for one run's names.
pub fn unique() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// The run-id tag of a run: run ids are `<tag><n>`.
pub fn tag(unique: &str) -> String {
    format!("i{unique}n")
}

/// One run of one scenario: its unique names, run-id tag and config.
pub struct Run {
    pub id: String,
    /// Run ids are `<tag><n>`.
    pub tag: String,
    pub admin: String,
    pub yaml: String,
    /// The SQLite ledger file.
    pub db: PathBuf,
    integrations: Vec<String>,
}

impl Run {
    /// `unique` from [`unique`]; `integrations` is YAML list items, `names` their names (each
    /// gets a work queue).
    pub fn new(
        label: &str,
        unique: &str,
        integrations: &str,
        names: &[String],
        dir: &Path,
    ) -> Self {
        let id = format!("bench-iso-{label}-{unique}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let admin = format!("127.0.0.1:{port}");
        let db = dir.join(format!("{id}.db"));
        let yaml = format!(
            "broker:\n  url: {AMQP_URL}\n  exchange: {id}.runs\n  queue: {id}.events\n  routing_key: run.canceled\n  retry_queue_prefix: {id}.retry\n  dead_letter_queue: {id}.dead\n  control_exchange: {id}.control\n  prefetch: {PREFETCH}\nworker:\n  shutdown_grace: 1s\nadmin:\n  listen: {admin}\nledger:\n  path: {}\ntemplates_dir: {}\nintegrations:\n{integrations}",
            db.display(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .display(),
        );
        Self {
            id,
            tag: tag(unique),
            admin,
            yaml,
            db,
            integrations: names.to_vec(),
        }
    }

    pub fn config(&self) -> Config {
        Config::parse(&self.yaml, HashMap::new()).expect("the benchmark's config is valid")
    }

    /// (run id, integration) of every delivery the ledger records as delivered.
    pub async fn delivered(&self) -> HashSet<(String, String)> {
        let url = format!("sqlite://{}?mode=ro", self.db.display());
        let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
            return HashSet::new();
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT run_id, integration FROM deliveries WHERE state = 'delivered'")
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        pool.close().await;
        rows.into_iter().collect()
    }

    pub fn run_id(&self, n: usize) -> String {
        format!("{}{n}", self.tag)
    }

    /// The documented example event for run `n`.
    pub fn event(&self, n: usize) -> Vec<u8> {
        let run = self.run_id(n);
        let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
        event["id"] = json!(format!("evt-{run}"));
        event["data"]["runId"] = json!(run);
        event["data"]["runUrl"] = json!(format!("https://app.example.dev/run/{run}"));
        event.to_string().into_bytes()
    }

    /// Deletes the run's queues (event, dead letters, retry tiers, each integration's) and
    /// exchanges, best effort.
    pub async fn delete(&self, broker: &Broker) {
        let channel = broker.connection.create_channel().await.unwrap();
        let mut queues = vec![format!("{}.events", self.id), format!("{}.dead", self.id)];
        queues.extend((0..16).map(|k| format!("{}.retry.{}s", self.id, 1u64 << k)));
        queues.extend(
            self.integrations
                .iter()
                .map(|name| format!("{}.events.{name}", self.id)),
        );
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [format!("{}.runs", self.id), format!("{}.control", self.id)] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = channel.close(200, "done".into()).await;
    }
}

/// A signed webhook integration.
pub fn webhook(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "  - name: {name}\n    type: webhook\n    url: {url}/{name}\n    timeout: {timeout}\n    secrets: [{SECRET}]\n"
    )
}

/// A Slack integration with its one-a-second rate limit raised out of the way.
pub fn slack(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "  - name: {name}\n    type: slack\n    webhook_url: {url}/{name}\n    timeout: {timeout}\n    rate_limit:\n      per_minute: 6000000\n      burst: 10000\n"
    )
}

pub fn teams(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "  - name: {name}\n    type: teams\n    webhook_url: {url}/{name}\n    timeout: {timeout}\n"
    )
}

/// A connection and a channel in confirm mode.
pub struct Broker {
    pub connection: Connection,
    channel: Channel,
}

impl Broker {
    pub async fn connect() -> Self {
        let connection = run_notifier::broker::connect(AMQP_URL, "bench")
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            connection,
            channel,
        }
    }

    /// Publishes run `n` persistent, as the dashboard does; returns when it was handed to the
    /// broker and the pending confirm.
    pub async fn publish(&self, run: &Run, n: usize) -> (Instant, lapin::PublisherConfirm) {
        let body = run.event(n);
        let properties = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_delivery_mode(2);
        let at = Instant::now();
        let confirm = self
            .channel
            .basic_publish(
                format!("{}.runs", run.id).as_str().into(),
                "run.canceled".into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .unwrap();
        (at, confirm)
    }

    /// Publishes runs `range` back to back, then waits for the confirms; returns publish times.
    pub async fn publish_all(
        &self,
        run: &Run,
        range: std::ops::Range<usize>,
    ) -> HashMap<usize, Instant> {
        let mut times = HashMap::new();
        let mut confirms = Vec::new();
        for n in range {
            let (at, confirm) = self.publish(run, n).await;
            times.insert(n, at);
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
        times
    }
}
