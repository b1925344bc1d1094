//! Everything the worker declares at start, idempotently, and the retry tier of a delay.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use super::conflict::{DeclareError, Inequivalent};
use crate::config::{BrokerConfig, Config};
use crate::retry::RetryPolicy;

/// Exchange, queues and bindings. Queue arguments depend only on names and on
/// `broker.delivery_limit`, so only a change of that limit, or another deployment using the
/// same names on the vhost, can make a re-declaration fail with `PRECONDITION_FAILED`
/// (RabbitMQ refuses changed arguments on an existing queue); [`Topology::declare`] then says
/// which name and which config key.
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    /// The event queue's binding keys on the exchange.
    pub routing_keys: Vec<String>,
    pub dead_letter_queue: String,
    pub control_exchange: String,
    retry_queue_prefix: String,
    /// The integrations that get a work queue.
    integrations: Vec<String>,
    delivery_limit: u32,
    /// Retry tiers in seconds: 1, 2, 4, … up to the longest delay.
    tiers: Vec<u64>,
}

impl Topology {
    /// The topology a config asks for: its names, retry tiers and integrations' queues.
    pub fn of(config: &Config) -> Self {
        let longest = RetryPolicy::new(config.retry.clone()).longest_delay();
        let integrations = config
            .integrations
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        Self::new(&config.broker, longest, integrations)
    }

    pub fn new(broker: &BrokerConfig, longest_delay: Duration, integrations: Vec<String>) -> Self {
        let mut tiers = vec![1u64];
        while tiers
            .last()
            .is_some_and(|&t| t * 2 <= longest_delay.as_secs())
        {
            tiers.push(tiers.last().unwrap() * 2);
        }
        Self {
            exchange: broker.exchange.clone(),
            queue: broker.queue.clone(),
            routing_keys: broker.routing_keys.clone(),
            dead_letter_queue: broker.dead_letter_queue.clone(),
            control_exchange: broker.control_exchange.clone(),
            retry_queue_prefix: broker.retry_prefix(),
            integrations,
            delivery_limit: broker.delivery_limit,
            tiers,
        }
    }

    /// The retry queue for `delay`: the tier `[2^k s, 2^(k+1) s)` holding it. Each message
    /// carries its exact delay as per-message TTL; since TTL only expires at a queue's head,
    /// sharing a queue only with delays of the same tier bounds the extra wait to that tier.
    pub fn retry_queue(&self, delay: Duration) -> String {
        let tier = self
            .tiers
            .iter()
            .rev()
            .find(|&&t| t <= delay.as_secs())
            .unwrap_or(&self.tiers[0]);
        self.tier_queue(*tier)
    }

    /// The integration's own queue, `<queue>.<integration>`: its share of the events waits
    /// there while it is busy or paused.
    pub fn work_queue(&self, integration: &str) -> String {
        format!("{}.{integration}", self.queue)
    }

    fn tier_queue(&self, secs: u64) -> String {
        format!("{}.{secs}s", self.retry_queue_prefix)
    }

    /// Declares the exchanges, event queue, binding, retry queues and dead-letter queue. A
    /// name taken on the broker with other arguments is a [`DeclareError::Conflict`] saying
    /// which config key to change.
    pub async fn declare(&self, channel: &Channel) -> Result<(), DeclareError> {
        self.declare_all(channel).await.map_err(|err| {
            let message = err.to_string();
            match Inequivalent::parse(&message) {
                Some(found) => {
                    DeclareError::Conflict(found.explain(self.config_key_of(found.name)))
                }
                None => DeclareError::Broker(err),
            }
        })
    }

    /// The config key that names the queue or exchange `name`.
    fn config_key_of(&self, name: &str) -> &'static str {
        if name == self.exchange {
            "broker.exchange"
        } else if name == self.control_exchange {
            "broker.control_exchange"
        } else if name == self.dead_letter_queue {
            "broker.dead_letter_queue"
        } else if self.tiers.iter().any(|&tier| self.tier_queue(tier) == name) {
            "broker.retry_queue_prefix"
        } else {
            // The event queue, and each integration's queue named after it.
            "broker.queue"
        }
    }

    async fn declare_all(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions::durable();
        for (exchange, kind) in [
            (&self.exchange, ExchangeKind::Topic),
            (&self.control_exchange, ExchangeKind::Fanout),
        ] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .queue_declare(self.dead_letter_queue.as_str().into(), durable, quorum())
            .await?;
        channel
            .queue_declare(self.queue.as_str().into(), durable, self.work_arguments())
            .await?;
        for routing_key in &self.routing_keys {
            channel
                .queue_bind(
                    self.queue.as_str().into(),
                    self.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for integration in &self.integrations {
            let queue = self.work_queue(integration);
            channel
                .queue_declare(queue.as_str().into(), durable, self.work_arguments())
                .await?;
        }
        for &tier in &self.tiers {
            // Expired retries go straight back to the event queue through the default exchange,
            // not through the topic exchange, so no other subscriber sees them again.
            let mut retry = FieldTable::default();
            retry.insert("x-dead-letter-exchange".into(), text(""));
            retry.insert("x-dead-letter-routing-key".into(), text(&self.queue));
            channel
                .queue_declare(self.tier_queue(tier).as_str().into(), durable, retry)
                .await?;
        }
        Ok(())
    }

    /// Arguments of the event queue and the integrations' queues: quorum, and dead-lettered
    /// by the broker when redelivered too often (a crash loop on one message).
    fn work_arguments(&self) -> FieldTable {
        let mut arguments = quorum();
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit as i32),
        );
        arguments.insert("x-dead-letter-exchange".into(), text(""));
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            text(&self.dead_letter_queue),
        );
        arguments
    }
}

fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(longest: u64) -> Topology {
        Topology::new(
            &BrokerConfig::default(),
            Duration::from_secs(longest),
            vec![],
        )
    }

    #[test]
    fn tiers_are_powers_of_two_up_to_the_longest_delay() {
        assert_eq!(topology(1).tiers, [1]);
        assert_eq!(topology(40).tiers, [1, 2, 4, 8, 16, 32]);
        assert_eq!(topology(3_600).tiers.last(), Some(&2_048));
    }

    #[test]
    fn a_delay_goes_to_the_tier_at_or_below_it() {
        let topology = topology(60);
        let queue = |ms| topology.retry_queue(Duration::from_millis(ms));
        assert_eq!(queue(0), "run-notifier.events.retry.1s");
        assert_eq!(queue(1_999), "run-notifier.events.retry.1s");
        assert_eq!(queue(2_000), "run-notifier.events.retry.2s");
        assert_eq!(queue(45_000), "run-notifier.events.retry.32s");
        assert_eq!(queue(3_600_000), "run-notifier.events.retry.32s");
    }

    #[test]
    fn tiers_are_named_after_the_event_queue_unless_a_prefix_is_set() {
        let broker = BrokerConfig {
            queue: "staging.events".into(),
            ..BrokerConfig::default()
        };
        let topology = Topology::new(&broker, Duration::from_secs(1), vec![]);
        assert_eq!(
            topology.retry_queue(Duration::ZERO),
            "staging.events.retry.1s"
        );
        let broker = BrokerConfig {
            retry_queue_prefix: Some("run-notifier.retry".into()),
            ..broker
        };
        let topology = Topology::new(&broker, Duration::from_secs(1), vec![]);
        assert_eq!(
            topology.retry_queue(Duration::ZERO),
            "run-notifier.retry.1s"
        );
    }

    #[test]
    fn a_conflict_names_the_key_of_the_queue_or_exchange() {
        let topology = topology(4);
        assert_eq!(
            topology.config_key_of("run-notifier.events.retry.4s"),
            "broker.retry_queue_prefix"
        );
        assert_eq!(
            topology.config_key_of("run-notifier.events"),
            "broker.queue"
        );
        assert_eq!(topology.config_key_of("runs"), "broker.exchange");
        assert_eq!(
            topology.config_key_of("run-notifier.dead"),
            "broker.dead_letter_queue"
        );
    }
}
