//! Helpers shared by the integration tests: unique broker names per test, an in-process worker,
//! a process worker, event fixtures, and polling instead of sleeping.
#![allow(dead_code)]

pub mod proxy;
pub mod receiver;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use run_notifier::broker::message::{number, text};
use run_notifier::config::Config;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const EXAMPLE_EVENT: &str = include_str!("../../config/example-event.json");

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// A free TCP port on 127.0.0.1 for an admin listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker part of a config, with names unique to one test.
#[derive(Debug, Clone)]
pub struct Names {
    pub exchange: String,
    pub queue: String,
    pub retry_prefix: String,
    pub dead: String,
    pub control: String,
    pub admin_port: u16,
    /// The `ledger:` section: a SQLite file of this test's own by default.
    pub ledger: String,
}

impl Names {
    pub fn new() -> Self {
        let id = unique("t");
        Self {
            exchange: format!("{id}.runs"),
            queue: format!("{id}.events"),
            retry_prefix: format!("{id}.retry"),
            dead: format!("{id}.dead"),
            control: format!("{id}.control"),
            admin_port: free_port(),
            ledger: format!(
                "path: {}",
                std::env::temp_dir().join(format!("{id}.db")).display()
            ),
        }
    }

    /// The same names with a PostgreSQL ledger at `url`.
    pub fn with_ledger_url(mut self, url: &str) -> Self {
        self.ledger = format!("url: {url}");
        self
    }

    /// A complete config: these names, fast retries, and `integrations` (YAML list items).
    pub fn config(&self, integrations: &str) -> String {
        self.config_with(
            integrations,
            "max_attempts: 4\n  initial_delay: 300ms\n  max_delay: 1s\n  jitter: false",
            "shutdown_grace: 5s",
            16,
        )
    }

    pub fn config_with(
        &self,
        integrations: &str,
        retry: &str,
        worker: &str,
        prefetch: u16,
    ) -> String {
        format!(
            "broker:\n  url: {AMQP_URL}\n  exchange: {}\n  queue: {}\n  routing_key: run.canceled\n  retry_queue_prefix: {}\n  dead_letter_queue: {}\n  control_exchange: {}\n  prefetch: {prefetch}\n  reconnect_max_delay: 1s\nworker:\n  {worker}\nretry:\n  {retry}\n  max_retry_after: 10s\nadmin:\n  listen: 127.0.0.1:{}\nledger:\n  {}\ntemplates_dir: {}\nintegrations:\n{integrations}",
            self.exchange,
            self.queue,
            self.retry_prefix,
            self.dead,
            self.control,
            self.admin_port,
            self.ledger,
            // Absolute: a config file's relative paths are relative to its (temporary) folder.
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        )
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }
}

/// YAML for one webhook integration.
pub fn webhook(name: &str, url: &str) -> String {
    format!(
        "  - name: {name}\n    type: webhook\n    url: {url}\n    timeout: 5s\n    secrets: [{SECRET}]\n"
    )
}

pub fn parse_config(yaml: &str) -> Config {
    Config::parse(yaml, HashMap::new()).unwrap_or_else(|err| panic!("{err}\n{yaml}"))
}

/// The documented example event with a fresh run id and event id.
pub fn event_for(run_id: &str) -> Value {
    let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
    event["id"] = json!(unique("evt"));
    event["data"]["runId"] = json!(run_id);
    event["data"]["runUrl"] = json!(format!("https://app.example.dev/run/{run_id}"));
    event
}

/// A worker running in this process; stops when dropped or `stop`ped.
pub struct InProcessWorker {
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcessWorker {
    /// Starts the worker and waits until it is ready (consuming).
    pub async fn start(names: &Names, yaml: &str) -> Self {
        let config = parse_config(yaml);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_notifier::worker::run(config, shutdown.clone()));
        let worker = Self {
            shutdown,
            task: Some(task),
        };
        wait_for_ready(names).await;
        worker
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the worker stops")
            .unwrap()
            .unwrap();
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_for_ready(names: &Names) {
    let url = names.admin_url("/readyz");
    wait_until("the worker is ready", Duration::from_secs(20), || async {
        matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
    })
    .await;
}

/// Polls `condition` every 25 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A dead letter as a test sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub headers: FieldTable,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<String> {
        text(&self.headers, name)
    }

    pub fn number(&self, name: &str) -> Option<i64> {
        number(&self.headers, name)
    }
}

/// A test's own connection to the broker.
pub struct TestBroker {
    pub connection: Connection,
    pub channel: lapin::Channel,
    names: Names,
}

impl TestBroker {
    pub async fn connect(names: &Names) -> Self {
        let connection = run_notifier::broker::connect(AMQP_URL, "tests")
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        Self {
            connection,
            channel,
            names: names.clone(),
        }
    }

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
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            letters.push(DeadLetter {
                body: message.delivery.data.clone(),
                headers: message
                    .delivery
                    .properties
                    .headers()
                    .clone()
                    .unwrap_or_default(),
            });
        }
        letters
    }

    /// Waits until `count` dead letters have arrived (taking them) and returns them.
    pub async fn wait_for_dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let mut letters = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while letters.len() < count {
            letters.extend(self.take_dead_letters().await);
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} dead letters arrived: {letters:?}",
                letters.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        letters
    }

    /// Messages ready in `queue` (unacked ones are not counted).
    pub async fn ready_count(&self, queue: &str) -> u32 {
        let channel = self.connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = channel.close(200, "done".into()).await;
        declared.message_count()
    }

    /// Deletes the test's queues and exchange (best effort: the worker may still hold them).
    pub async fn cleanup(self) {
        let mut queues = vec![self.names.queue.clone(), self.names.dead.clone()];
        queues.extend((0..8).map(|k| format!("{}.{}s", self.names.retry_prefix, 1u64 << k)));
        for queue in queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(self.names.exchange.as_str().into(), Default::default())
            .await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// The `run-notifier` binary running `run` as its own process, logs kept in a file.
pub struct WorkerProcess {
    pub child: tokio::process::Child,
    pub log: std::path::PathBuf,
}

impl WorkerProcess {
    /// Writes `yaml` into `dir` and starts `run-notifier run` on it; waits until ready.
    pub async fn start(names: &Names, dir: &std::path::Path, yaml: &str) -> Self {
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{}.log", unique("worker")));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_for_ready(names).await;
        Self { child, log }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and how long that took.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, Duration) {
        let started = tokio::time::Instant::now();
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the worker did not exit within {timeout:?}"))
            .unwrap();
        (status, started.elapsed())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A PostgreSQL ledger URL in a fresh schema of its own, reached through `port` (5432 or a proxy).
pub async fn postgres_ledger(port: u16) -> String {
    let schema = unique("ledger").replace('-', "_");
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 with database `test`");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    format!("postgres://postgres@127.0.0.1:{port}/test?options=-c%20search_path%3D{schema}")
}
