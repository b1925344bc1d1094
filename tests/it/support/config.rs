//! Worker configs for tests: a typed change to the real [`Config`], integrations from
//! structured specs, and no YAML text to indent.
//!
//! A test changes the config in the closure it gives `TestApp::spawn_worker`:
//!
//! ```ignore
//! app.spawn_worker(|config| {
//!     config.add(webhook("hook", &receiver.url("/hook")).with("branches", ["main"]));
//!     config.retry.max_attempts = 3;
//!     config.worker.shutdown_grace = HumanDuration::millis(500);
//! })
//! ```
//!
//! The result is written as a config file (JSON, which is YAML), read back through
//! [`Config::parse`] (so every rule of the real loader applies), and compared with the changed
//! struct, so a field the writer does not know yet fails loudly instead of being dropped.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use run_notifier::config::{Config, HumanDuration, Secret};
use serde::Serialize;
use serde_json::{Value, json};

use super::SECRET;

/// One integration as its config file entry: `{"name": …, "type": …, …}`.
#[derive(Debug, Clone)]
pub struct Spec(pub Value);

impl Spec {
    /// Sets (or replaces) one key of the entry: `.with("timeout", "1s")`.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.0[key] = serde_json::to_value(value).unwrap();
        self
    }

    /// The integration's `name`.
    pub fn name(&self) -> &str {
        self.0["name"].as_str().unwrap_or("?")
    }
}

impl From<Value> for Spec {
    fn from(value: Value) -> Self {
        Self(value)
    }
}

/// A `webhook` signed with [`SECRET`], answering within 5 s.
pub fn webhook(name: &str, url: &str) -> Spec {
    Spec(json!({"name": name, "type": "webhook", "url": url, "timeout": "5s", "secrets": [SECRET]}))
}

/// A `slack` incoming webhook.
pub fn slack(name: &str, webhook_url: &str) -> Spec {
    Spec(json!({"name": name, "type": "slack", "webhook_url": webhook_url, "timeout": "5s"}))
}

/// A `teams` Workflows webhook.
pub fn teams(name: &str, webhook_url: &str) -> Spec {
    Spec(json!({"name": name, "type": "teams", "webhook_url": webhook_url, "timeout": "5s"}))
}

/// A `github_status` against `api_url` with a token.
pub fn github_status(name: &str, api_url: &str) -> Spec {
    Spec(
        json!({"name": name, "type": "github_status", "api_url": api_url, "auth": {"token": "ghp_test_token"}}),
    )
}

/// A `github_pr_comment` against `api_url` with a token.
pub fn github_pr_comment(name: &str, api_url: &str) -> Spec {
    Spec(
        json!({"name": name, "type": "github_pr_comment", "api_url": api_url, "auth": {"token": "ghp_test_token"}}),
    )
}

/// A `bitbucket_status` against `api_url` with an Atlassian API token (account e-mail +
/// token, basic auth): `ci-bot@example.com`:`api-token-1`.
pub fn bitbucket_status(name: &str, api_url: &str) -> Spec {
    Spec(
        json!({"name": name, "type": "bitbucket_status", "api_url": api_url, "auth": {"email": "ci-bot@example.com", "api_token": "api-token-1"}}),
    )
}

/// A `gitlab_status` against `api_url` (`…/api/v4`) with an access token.
pub fn gitlab_status(name: &str, api_url: &str) -> Spec {
    Spec(
        json!({"name": name, "type": "gitlab_status", "api_url": api_url, "auth": {"token": "glpat-test-token"}}),
    )
}

/// A `gitlab_mr_note` against `api_url` (`…/api/v4`) with an access token.
pub fn gitlab_mr_note(name: &str, api_url: &str) -> Spec {
    Spec(
        json!({"name": name, "type": "gitlab_mr_note", "api_url": api_url, "auth": {"token": "glpat-test-token"}}),
    )
}

/// A `slack_app` posting to `channel` through `api_url` (`…/api`) with a bot token, paced
/// loosely enough for tests.
pub fn slack_app(name: &str, api_url: &str, channel: &str) -> Spec {
    Spec(json!({
        "name": name, "type": "slack_app", "token": "xoxb-test-token", "channel": channel,
        "api_url": api_url, "rate_limit": {"per_minute": 6000, "burst": 100},
    }))
}

/// Parses one integration entry with the real loader, or says why it was rejected.
pub fn parse_spec(spec: &Spec) -> Result<run_notifier::integrations::IntegrationConfig, String> {
    let document = json!({ "integrations": [spec.0] });
    Config::parse(&document.to_string(), Default::default())
        .map(|mut config| config.integrations.remove(0))
}

/// The config a test changes before its worker starts: the real [`Config`] (through `Deref`)
/// plus the specs of its integrations, which the config file is written from.
pub struct Setup {
    config: Config,
    specs: Vec<Spec>,
}

impl Setup {
    /// A config with no integration: defaults, then what `change` sets.
    pub fn new(change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::parse(r#"{"integrations": []}"#, Default::default()).unwrap();
        change(&mut config);
        Self {
            config,
            specs: Vec::new(),
        }
    }

    /// Adds an integration; panics with the loader's message if the entry is invalid.
    pub fn add(&mut self, spec: Spec) -> &mut Self {
        let integration = parse_spec(&spec)
            .unwrap_or_else(|err| panic!("integration {}: {err}\n{}", spec.name(), spec.0));
        self.config.integrations.push(integration);
        self.specs.push(spec);
        self
    }

    /// The config file's text, and the config the worker reads from it. Panics when the file
    /// would not say what the test set (see the module docs).
    pub fn finish(self) -> (String, Config) {
        let text = serde_json::to_string_pretty(&document(&self.config, &self.specs)).unwrap();
        let read = Config::parse(&text, Default::default())
            .unwrap_or_else(|err| panic!("the test config is invalid: {err}\n{text}"));
        assert_eq!(
            format!("{read:?}"),
            format!("{:?}", self.config),
            "the config file does not carry every change: add the field to `document` in \
             tests/it/support/config.rs, or add integrations with `config.add(spec)`"
        );
        (text, read)
    }
}

impl Deref for Setup {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

impl DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut Config {
        &mut self.config
    }
}

/// `500ms` for 500 ms: the loader's own notation.
fn duration(value: &HumanDuration) -> String {
    let value: Duration = **value;
    format!("{}ms", value.as_millis())
}

fn secret(value: &Secret) -> &str {
    value.expose()
}

/// The config file for `config`, section by section, field by field.
fn document(config: &Config, specs: &[Spec]) -> Value {
    let broker = &config.broker;
    let mut ledger = json!({
        "path": config.ledger.path,
        "retention": duration(&config.ledger.retention),
        "prune_interval": duration(&config.ledger.prune_interval),
        "wait_at_start": config.ledger.wait_at_start,
    });
    if let Some(url) = &config.ledger.url {
        ledger["url"] = json!(secret(url));
    }
    json!({
        "broker": {
            "url": secret(&broker.url),
            "exchange": broker.exchange,
            "queue": broker.queue,
            "routing_key": broker.routing_key,
            "retry_queue_prefix": broker.retry_queue_prefix,
            "dead_letter_queue": broker.dead_letter_queue,
            "control_exchange": broker.control_exchange,
            "prefetch": broker.prefetch,
            "max_message_bytes": broker.max_message_bytes,
            "delivery_limit": broker.delivery_limit,
            "reconnect_max_delay": duration(&broker.reconnect_max_delay),
            "tls": {
                "ca_file": broker.tls.ca_file,
                "client_cert_file": broker.tls.client_cert_file,
                "client_key_file": broker.tls.client_key_file,
            },
        },
        "worker": {
            "shutdown_grace": duration(&config.worker.shutdown_grace),
            "stall_timeout": duration(&config.worker.stall_timeout),
        },
        "retry": {
            "max_attempts": config.retry.max_attempts,
            "initial_delay": duration(&config.retry.initial_delay),
            "multiplier": config.retry.multiplier,
            "max_delay": duration(&config.retry.max_delay),
            "jitter": config.retry.jitter,
            "max_retry_after": duration(&config.retry.max_retry_after),
        },
        "admin": { "listen": config.admin.listen.to_string() },
        "ledger": ledger,
        "templates_dir": config.templates_dir,
        "integrations": specs.iter().map(|spec| &spec.0).collect::<Vec<_>>(),
    })
}
