//! The typed configuration: one YAML file, `${VAR}` expansion, validated once at load.

mod as_text;
mod collect;
mod entries;
mod env;
mod lines;
mod rules;
mod tls;
mod tree;
mod warnings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

// Re-exported so existing `config::{Secret, HumanDuration}` paths keep working; the types live
// in leaf modules so that integrations need not import `config`.
pub use crate::duration::HumanDuration;
pub use crate::secret::Secret;
pub use tls::{BrokerTls, ClientIdentity, TlsFileError, TlsFiles};

use crate::event::EventType;
use crate::integrations::IntegrationConfig;

/// Where the config is read from when neither `--config` nor `RUN_NOTIFIER_CONFIG` says.
pub const DEFAULT_PATH: &str = "config/run-notifier.yaml";

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RabbitMQ connection and topology names.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// Concurrency and shutdown of the consumer.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// How transient failures are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The admin HTTP listener (`/healthz`, `/readyz`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// The delivery ledger (SQLite file, or PostgreSQL for several workers).
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Where the default templates live (relative to the config file's folder).
    #[serde(default = "default_templates_dir")]
    pub templates_dir: PathBuf,
    /// Where each event goes.
    pub integrations: Vec<IntegrationConfig>,
}

fn default_templates_dir() -> PathBuf {
    PathBuf::from("templates")
}

/// RabbitMQ connection and the names of everything the worker declares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `amqp://` or `amqps://` URL; it may hold a password, so it is a secret.
    pub url: Secret,
    /// With `amqps://`: a CA file trusted on top of the system roots, and a client certificate
    /// for mutual TLS.
    pub tls: BrokerTls,
    /// Durable topic exchange the dashboard publishes to.
    pub exchange: String,
    /// The worker's durable quorum queue.
    pub queue: String,
    /// Binding keys of `queue` on `exchange`: by default the four event types, which
    /// producers publish with as routing key. `routing_key: <one>` is read as a list of one.
    #[serde(alias = "routing_key", deserialize_with = "one_or_many")]
    pub routing_keys: Vec<String>,
    /// Prefix of the TTL retry queues, one per delay tier (`<prefix>.1s`, `.2s`, …); by default
    /// `<queue>.retry`, so that deployments with queues of their own on one vhost never share
    /// a tier.
    pub retry_queue_prefix: Option<String>,
    /// Where bad input, permanent failures and exhausted retries end up.
    pub dead_letter_queue: String,
    /// Fanout exchange that broadcasts operator commands (`deliveries cancel`) to every worker.
    pub control_exchange: String,
    /// Unacked messages the broker may push to this worker at once (its concurrency).
    pub prefetch: u16,
    /// Larger bodies are dead-lettered unread.
    pub max_message_bytes: usize,
    /// Redeliveries after which the broker itself dead-letters a message (a poison-message guard).
    pub delivery_limit: u32,
    /// Longest wait between reconnection attempts.
    pub reconnect_max_delay: HumanDuration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            tls: BrokerTls::default(),
            exchange: "runs".into(),
            queue: "run-notifier.events".into(),
            routing_keys: EventType::ALL
                .iter()
                .map(|kind| kind.as_str().to_owned())
                .collect(),
            retry_queue_prefix: None,
            dead_letter_queue: "run-notifier.dead".into(),
            control_exchange: "run-notifier.control".into(),
            prefetch: 64,
            max_message_bytes: 1024 * 1024,
            delivery_limit: 20,
            reconnect_max_delay: HumanDuration::secs(30),
        }
    }
}

impl BrokerConfig {
    /// The prefix of the retry tiers: `retry_queue_prefix`, or `<queue>.retry`.
    pub fn retry_prefix(&self) -> String {
        self.retry_queue_prefix
            .clone()
            .unwrap_or_else(|| format!("{}.retry", self.queue))
    }
}

/// Where deliveries are recorded, so that each run reaches each integration once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// The SQLite file (created on first start; relative to the config file's folder), used
    /// unless `url` is set.
    pub path: PathBuf,
    /// A `postgres://` URL, for several workers sharing the work (it may hold a password).
    pub url: Option<Secret>,
    /// Finished deliveries older than this are pruned.
    pub retention: HumanDuration,
    /// How often pruning runs.
    pub prune_interval: HumanDuration,
    /// When the ledger cannot be reached at start: wait for it (not ready meanwhile, as
    /// during an outage at run time), or with `false` exit at once.
    pub wait_at_start: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("run-notifier.db"),
            url: None,
            retention: HumanDuration::secs(30 * 86_400),
            prune_interval: HumanDuration::secs(3_600),
            wait_at_start: true,
        }
    }
}

/// The consumer's shutdown behaviour.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// After SIGTERM, how long in-flight deliveries may still finish before they are aborted.
    pub shutdown_grace: HumanDuration,
    /// `/healthz` fails when messages wait this long with none settled (a stuck consumer).
    pub stall_timeout: HumanDuration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: HumanDuration::secs(10),
            stall_timeout: HumanDuration::secs(600),
        }
    }
}

/// Retry schedule of transient failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: HumanDuration,
    /// Each further delay is the previous one times this.
    pub multiplier: f32,
    /// Longest delay the schedule computes (jitter may add up to as much again).
    pub max_delay: HumanDuration,
    /// Random extra delay, so that many failures do not come back at once.
    pub jitter: bool,
    /// A receiver's `Retry-After` is honoured up to this long.
    pub max_retry_after: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_delay: HumanDuration::secs(10),
            multiplier: 2.0,
            max_delay: HumanDuration::secs(600),
            jitter: true,
            max_retry_after: HumanDuration::secs(3_600),
        }
    }
}

/// The admin HTTP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of `/healthz` and `/readyz`.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// A config that could not be loaded: the file and every problem found, each with its line
/// and column where it has one.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(path, problems))]
pub struct ConfigError {
    pub path: PathBuf,
    /// One line each, `{path}:{line}:{column}: {sentence}` (or `{path}: {sentence}`).
    pub problems: Vec<String>,
}

fn render(path: &Path, problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!(
            "{} has {} problems:\n{}",
            path.display(),
            many.len(),
            many.join("\n")
        ),
    }
}

impl Config {
    /// Reads, expands and validates the file at `path` against the process environment;
    /// relative paths in it are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let fail = |problems| ConfigError {
            path: path.to_owned(),
            problems,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| fail(vec![format!("{name}: cannot read the config file: {err}")]))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let config = Self::parse_problems(&text, &std::env::vars().collect(), base)
            .map_err(|problems| fail(problems.iter().map(|p| p.render(&name)).collect()))?;
        // Files are checked once their paths are resolved: the same paths the worker opens.
        if let Err(err) = config.broker.tls.read() {
            return Err(fail(vec![format!("{name}: {err}")]));
        }
        Ok(config)
    }

    /// Parses YAML text with `${VAR}` taken from `env`, then validates it; every problem is a
    /// line of the error, `line L column C: sentence` where it has a place. Relative paths stay
    /// relative to the working directory.
    pub fn parse(text: &str, env: HashMap<String, String>) -> Result<Self, String> {
        Self::parse_problems(text, &env, Path::new("")).map_err(|problems| {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| match p.line {
                    Some(line) => format!("line {line} column {}: {}", p.column, p.message),
                    None => p.message.clone(),
                })
                .collect();
            lines.join("\n")
        })
    }

    /// Parses, resolves relative paths against `base` (so that the checks read the files the
    /// worker will), and validates.
    fn parse_problems(
        text: &str,
        env: &HashMap<String, String>,
        base: &Path,
    ) -> Result<Self, Vec<collect::Problem>> {
        let mut config: Config = collect::parse(text, env, entries::unknown_keys)?;
        config.resolve_paths(base);
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems
                .into_iter()
                .map(|message| collect::Problem {
                    line: None,
                    column: 0,
                    message,
                })
                .collect())
        }
    }

    /// Every relative path in the file (`ledger.path`, `templates_dir`, and each integration's
    /// templates and key files, and `broker.tls`'s files) is relative to the config file's folder, so every command
    /// finds the same files whatever its working directory.
    fn resolve_paths(&mut self, base: &Path) {
        let own = [&mut self.ledger.path, &mut self.templates_dir];
        let integrations = self
            .integrations
            .iter_mut()
            .flat_map(IntegrationConfig::paths_mut);
        for path in own.into_iter().chain(integrations) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        self.broker.tls.resolve(base);
    }

    /// The integration called `name`, if configured.
    pub fn integration(&self, name: &str) -> Option<&IntegrationConfig> {
        self.integrations.iter().find(|i| i.name() == name)
    }
}

/// A list, or one value read as a list of one.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
