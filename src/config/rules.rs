//! The rules a well-formed config file can still break (checked once it parses), as plain
//! sentences.

use std::collections::HashMap;

use super::Config;

impl Config {
    /// Every rule that a well-formed file can still break, as plain sentences.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let broker = &self.broker;
        let url = broker.url.expose();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            problems.push("broker.url must start with amqp:// or amqps://".to_owned());
        }
        problems.extend(broker.tls.problems(url));
        let retry_prefix = broker.retry_prefix();
        for (field, value) in [
            ("broker.exchange", &broker.exchange),
            ("broker.queue", &broker.queue),
            ("broker.routing_key", &broker.routing_key),
            ("broker.retry_queue_prefix", &retry_prefix),
            ("broker.dead_letter_queue", &broker.dead_letter_queue),
            ("broker.control_exchange", &broker.control_exchange),
        ] {
            if value.is_empty() || value.len() > 200 {
                problems.push(format!("{field} must be 1 to 200 characters long"));
            }
        }
        if broker.prefetch == 0 {
            problems.push("broker.prefetch must be at least 1".to_owned());
        }
        if broker.max_message_bytes == 0 {
            problems.push("broker.max_message_bytes must be at least 1".to_owned());
        }
        if let Some(url) = &self.ledger.url {
            let url = url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems.push("ledger.url must be a postgres:// URL (leave it out to use the SQLite file at ledger.path)".to_owned());
            }
        }
        if self.ledger.prune_interval.is_zero() {
            problems.push("ledger.prune_interval must be longer than 0ms".to_owned());
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 {
            problems.push(
                "retry.max_attempts must be at least 1 (the first attempt counts)".to_owned(),
            );
        }
        if !(retry.multiplier >= 1.0 && retry.multiplier <= 100.0) {
            problems.push("retry.multiplier must be between 1 and 100".to_owned());
        }
        if retry.initial_delay > retry.max_delay {
            problems.push("retry.initial_delay must not be longer than retry.max_delay".to_owned());
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, integration) in self.integrations.iter().enumerate() {
            let name = integration.name();
            // Each integration's queue is `<queue>.<name>`; the tiers may share that prefix.
            if format!("{}.{name}", broker.queue).starts_with(&format!("{retry_prefix}.")) {
                problems.push(format!(
                    "integrations[{index}]: the name `{name}` would give its queue a retry tier's name (`{retry_prefix}.…`); choose another name"
                ));
            }
            if let Some(first) = seen.insert(name, index) {
                problems.push(format!(
                    "integrations[{index}]: the name `{name}` is already used by integrations[{first}]; names must be unique because retries and the ledger refer to them"
                ));
            }
            problems.extend(
                integration
                    .problems()
                    .into_iter()
                    .map(|problem| format!("integrations[{index}] ({name}): {problem}")),
            );
        }
        problems
    }
}
