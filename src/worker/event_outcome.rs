//! What became of an event-queue message, as one metric label.

use super::settle::Disposition;
use crate::dispatch::Outcome;

/// What became of an event-queue message, as one metric label: the outcome that matters most
/// to an operator among its deliveries wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventOutcome {
    // Ordered from least to most pressing.
    Skipped,
    Canceled,
    Delivered,
    /// Some part waits in its integration's queue (busy or paused).
    Queued,
    Retrying,
    DeadLettered,
    /// Not a valid event: dead-lettered unread.
    Invalid,
    /// Handed back to the broker whole (a republish failed).
    Requeued,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Skipped => "skipped",
            EventOutcome::Canceled => "canceled",
            EventOutcome::Delivered => "delivered",
            EventOutcome::Queued => "queued",
            EventOutcome::Retrying => "retrying",
            EventOutcome::DeadLettered => "dead_lettered",
            EventOutcome::Invalid => "invalid",
            EventOutcome::Requeued => "requeued",
        }
    }

    /// The label one delivery gives its message.
    pub(super) fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Delivered(_) => EventOutcome::Delivered,
            Outcome::Skipped(_) => EventOutcome::Skipped,
            Outcome::RetryIn { .. } | Outcome::Busy { .. } => EventOutcome::Retrying,
            Outcome::GiveUp(_) => EventOutcome::DeadLettered,
            Outcome::Interrupted | Outcome::Queue(_) => EventOutcome::Queued,
            Outcome::Canceled => EventOutcome::Canceled,
        }
    }

    /// The label once the message is settled: a requeued message is requeued, whatever its
    /// parts came to.
    pub(super) fn settled(self, disposition: Disposition) -> Self {
        match disposition {
            Disposition::Ack => self,
            Disposition::Requeue => EventOutcome::Requeued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Disposition;
    use super::EventOutcome::*;

    #[test]
    fn the_most_pressing_delivery_outcome_names_the_event() {
        assert_eq!(
            [Delivered, DeadLettered, Retrying].into_iter().max(),
            Some(DeadLettered)
        );
        assert_eq!(Delivered.max(Retrying).as_str(), "retrying");
        assert_eq!(Skipped.max(Delivered), Delivered);
        assert_eq!(Skipped.max(Canceled), Canceled);
        assert_eq!(Delivered.max(Queued), Queued);
        assert_eq!(Skipped.as_str(), "skipped");
    }

    #[test]
    fn a_requeued_message_is_counted_as_requeued() {
        assert_eq!(Delivered.settled(Disposition::Ack), Delivered);
        assert_eq!(Invalid.settled(Disposition::Requeue), Requeued);
        assert_eq!(
            Disposition::Ack.max(Disposition::Requeue),
            Disposition::Requeue
        );
    }
}
