//! Advice on a config that is valid but risky, as plain sentences: `check-config` prints them
//! and still succeeds, unlike the problems of `rules.rs`, which refuse the config.

use super::Config;

/// Memory the prefetched bodies may hold before `check-config` advises a cap: the peak RSS the
/// benchmark's flood is held to (docs/performance.md).
const HELD_BODIES_LIMIT: u64 = 64 * 1024 * 1024;

impl Config {
    /// Every valid but risky setting, one sentence each (empty when there is none).
    pub fn warnings(&self) -> Vec<String> {
        let broker = &self.broker;
        let held = u64::from(broker.prefetch).saturating_mul(broker.max_message_bytes as u64);
        let mut warnings = Vec::new();
        if held > HELD_BODIES_LIMIT {
            warnings.push(format!(
                "broker.prefetch × broker.max_message_bytes is {:.1} MiB ({} × {} bytes): the \
                 worker may hold that many message bytes at once, more than 64 MiB; lower \
                 broker.prefetch or broker.max_message_bytes, and cap messages at the broker \
                 with `max_message_size = {}` in rabbitmq.conf, because the worker cannot \
                 refuse a body it has already received",
                held as f64 / (1024.0 * 1024.0),
                broker.prefetch,
                broker.max_message_bytes,
                broker.max_message_bytes,
            ));
        }
        warnings
    }
}
