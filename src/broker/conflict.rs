//! A declaration the broker refused because the queue or exchange already exists with other
//! arguments (`PRECONDITION_FAILED - inequivalent arg …`), told as one sentence that names it,
//! the argument, and the config key that gives this worker a name of its own.

/// Why declaring the topology failed.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// A queue or exchange of the same name exists with other arguments: the sentence says
    /// which, and what to change.
    #[error("{0}")]
    Conflict(String),
    /// Any other failure (connection, channel, permissions).
    #[error("cannot declare the topology")]
    Broker(#[source] lapin::Error),
}

/// What the broker's refusal names: the argument that differs, and the queue or exchange.
#[derive(Debug, PartialEq, Eq)]
pub struct Inequivalent<'a> {
    pub argument: &'a str,
    /// `queue` or `exchange`.
    pub kind: &'a str,
    pub name: &'a str,
}

impl<'a> Inequivalent<'a> {
    /// Reads RabbitMQ's `inequivalent arg 'A' for queue 'Q' in vhost …` out of `message`.
    pub fn parse(message: &'a str) -> Option<Self> {
        let (_, rest) = message.split_once("inequivalent arg '")?;
        let (argument, rest) = rest.split_once("' for ")?;
        let (kind, rest) = rest.split_once(" '")?;
        let (name, _) = rest.split_once('\'')?;
        Some(Self {
            argument,
            kind,
            name,
        })
    }

    /// The sentence, with `key` the config key that names this queue or exchange.
    pub fn explain(&self, key: &str) -> String {
        let Self {
            argument,
            kind,
            name,
        } = self;
        format!(
            "the broker refused to declare the {kind} `{name}`: it exists with another `{argument}` \
             (another deployment on this vhost uses the name, or an earlier version declared it); \
             set `{key}` to a name of this deployment's own, or delete the {kind} once nothing uses it"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brokers_refusal_is_read() {
        let message = "protocol error: AMQP soft error: PRECONDITION-FAILED: PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-routing-key' for queue 'run-notifier.retry.1s' in vhost '/': received the value 'b.events' of type 'longstr' but current is the value 'a.events' of type 'longstr'";
        assert_eq!(
            Inequivalent::parse(message),
            Some(Inequivalent {
                argument: "x-dead-letter-routing-key",
                kind: "queue",
                name: "run-notifier.retry.1s",
            })
        );
        let message = "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'runs' in vhost '/': received 'topic' but current is 'fanout'";
        assert_eq!(
            Inequivalent::parse(message).map(|i| (i.kind, i.name)),
            Some(("exchange", "runs"))
        );
        assert_eq!(Inequivalent::parse("connection refused"), None);
    }
}
