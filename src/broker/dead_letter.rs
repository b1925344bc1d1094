//! Why a message went to the dead-letter queue, as headers on it: the one type that writes them
//! (the worker) and reads them back (`dead-letters list`).

use lapin::types::{AMQPValue, FieldTable};

use super::message::{long, number, text};
use crate::echo;
use crate::protocol::{
    HEADER_ATTEMPT, HEADER_DEAD_AT, HEADER_DEAD_KIND, HEADER_ERROR, HEADER_INTEGRATION,
    HEADER_RUN_ID,
};

/// Why a message went to the dead-letter queue: written onto it by the worker, read back by
/// `dead-letters list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub kind: DeadKind,
    pub error: String,
    /// The integration that gave up, for a failed delivery.
    pub integration: Option<String>,
    /// Attempts made, for a failed delivery.
    pub attempts: Option<u32>,
    pub run_id: Option<String>,
    /// Unix seconds at which it was dead-lettered.
    pub dead_at: Option<i64>,
}

/// What kind of dead letter it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadKind {
    /// Bad input: not a valid run-canceled event.
    Invalid,
    /// An integration gave up (a permanent failure or no attempts left).
    Delivery,
    /// Dead-lettered by RabbitMQ itself (the queue's delivery limit).
    Broker,
    /// No reason recorded.
    Unknown,
}

impl DeadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadKind::Invalid => "invalid",
            DeadKind::Delivery => "delivery",
            DeadKind::Broker => "broker",
            DeadKind::Unknown => "unknown",
        }
    }
}

impl DeadLetter {
    /// Bad input.
    pub fn invalid(reason: String) -> Self {
        Self {
            kind: DeadKind::Invalid,
            error: reason,
            integration: None,
            attempts: None,
            run_id: None,
            dead_at: None,
        }
    }

    /// A delivery that gave up after `attempts`.
    pub fn delivery(integration: &str, attempts: u32, run_id: &str, error: String) -> Self {
        Self {
            kind: DeadKind::Delivery,
            error,
            integration: Some(integration.to_owned()),
            attempts: Some(attempts),
            run_id: Some(run_id.to_owned()),
            dead_at: None,
        }
    }

    /// Writes the headers. Every text is bounded and escaped ([`echo`]) whatever its source, as
    /// a last line of defence: the broker closes a connection whose header frame exceeds its
    /// frame limit, so one oversized reason would churn every in-flight message.
    pub(super) fn write(&self, headers: &mut FieldTable) {
        let bounded = |text: &str| long(&echo::message(text).to_string());
        headers.insert(HEADER_ERROR.into(), bounded(&self.error));
        headers.insert(HEADER_DEAD_KIND.into(), long(self.kind.as_str()));
        let dead_at = self
            .dead_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        headers.insert(HEADER_DEAD_AT.into(), AMQPValue::LongLongInt(dead_at));
        if let Some(integration) = &self.integration {
            headers.insert(HEADER_INTEGRATION.into(), bounded(integration));
        }
        if let Some(attempts) = self.attempts {
            headers.insert(
                HEADER_ATTEMPT.into(),
                AMQPValue::LongLongInt(attempts.into()),
            );
        }
        if let Some(run_id) = &self.run_id {
            headers.insert(HEADER_RUN_ID.into(), bounded(run_id));
        }
    }

    /// Reads a dead letter's headers back, whoever dead-lettered it.
    pub fn read(headers: &FieldTable) -> Self {
        let from_broker = headers.contains_key("x-death");
        let kind = match text(headers, HEADER_DEAD_KIND).as_deref() {
            Some("invalid") => DeadKind::Invalid,
            Some("delivery") => DeadKind::Delivery,
            _ if from_broker => DeadKind::Broker,
            _ => DeadKind::Unknown,
        };
        Self {
            kind,
            error: text(headers, HEADER_ERROR).unwrap_or_else(|| {
                if from_broker {
                    "redelivered too often (the queue's delivery limit)".to_owned()
                } else {
                    "no reason recorded".to_owned()
                }
            }),
            integration: text(headers, HEADER_INTEGRATION),
            attempts: number(headers, HEADER_ATTEMPT).and_then(|n| u32::try_from(n).ok()),
            run_id: text(headers, HEADER_RUN_ID),
            dead_at: number(headers, HEADER_DEAD_AT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_reason_is_cut_and_escaped_in_the_header() {
        let reason = format!("upstream said: {}\u{1b}[2J", "x".repeat(600_000));
        let mut headers = FieldTable::default();
        DeadLetter::invalid(reason).write(&mut headers);
        let written = text(&headers, HEADER_ERROR).unwrap();
        assert!(
            written.len() <= echo::MESSAGE_CHARS + 40,
            "{}",
            written.len()
        );
        assert!(written.starts_with("upstream said: xxx"), "{written}");
        assert!(written.ends_with("xxx\\u{1b}[2J"), "{written}");
    }
}
