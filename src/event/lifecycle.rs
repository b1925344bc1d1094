//! The four moments of a run's life a producer reports, and what each adds to the event.

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer, Serialize, de};

use super::{Cancellation, rfc3339};

/// The CloudEvents `type` of an event: which moment of the run it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `run.started`: the run began; its results may be unknown.
    Started,
    /// `run.finished`: the run ended on its own; the results are final.
    Finished,
    /// `run.timed_out`: the run hit its time limit.
    TimedOut,
    /// `run.canceled`: someone or something cancelled the run.
    Canceled,
}

/// The types that end a run.
pub const TERMINAL_EVENTS: [EventType; 3] = [
    EventType::Finished,
    EventType::TimedOut,
    EventType::Canceled,
];

impl EventType {
    /// Every type, in the order a run lives them.
    pub const ALL: [EventType; 4] = [
        EventType::Started,
        EventType::Finished,
        EventType::TimedOut,
        EventType::Canceled,
    ];

    /// The CloudEvents `type` (also the broker routing key and the ledger's event type).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Started => "run.started",
            EventType::Finished => "run.finished",
            EventType::TimedOut => "run.timed_out",
            EventType::Canceled => "run.canceled",
        }
    }

    /// The type named `text` (`run.finished`), if it is one of the four.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// True for the three types that end a run: nothing but a later end can follow them.
    pub fn is_terminal(self) -> bool {
        self != EventType::Started
    }

    /// The `event` member of signed webhook bodies (`RUN_TIMED_OUT`).
    pub fn webhook_event(self) -> &'static str {
        match self {
            EventType::Started => "RUN_STARTED",
            EventType::Finished => "RUN_FINISHED",
            EventType::TimedOut => "RUN_TIMED_OUT",
            EventType::Canceled => "RUN_CANCELED",
        }
    }

    /// A short name for templates, metric labels and logs (`timed_out`).
    pub fn short(self) -> &'static str {
        match self {
            EventType::Started => "started",
            EventType::Finished => "finished",
            EventType::TimedOut => "timed_out",
            EventType::Canceled => "canceled",
        }
    }

    /// The four names, for messages that list what is accepted.
    pub fn listed() -> String {
        let names: Vec<_> = Self::ALL
            .iter()
            .map(|kind| format!("`{}`", kind.as_str()))
            .collect();
        names.join(", ")
    }
}

/// Read from config (`events: [run.started, run.finished]`); an unknown name lists the four.
impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown event type `{text}`, expected one of {}",
                Self::listed()
            ))
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the event's type adds to the common `data`: nothing for a start or a finish, the
/// timeout for a timed-out run, the cancellation for a cancelled one.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Started,
    Finished,
    TimedOut(Timeout),
    Canceled(Cancellation),
}

impl Stage {
    /// The event type this stage belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Stage::Started => EventType::Started,
            Stage::Finished => EventType::Finished,
            Stage::TimedOut(_) => EventType::TimedOut,
            Stage::Canceled(_) => EventType::Canceled,
        }
    }

    /// The cancellation, for a cancelled run.
    pub fn cancellation(&self) -> Option<&Cancellation> {
        match self {
            Stage::Canceled(cancellation) => Some(cancellation),
            _ => None,
        }
    }

    /// The timeout, for a timed-out run.
    pub fn timeout(&self) -> Option<&Timeout> {
        match self {
            Stage::TimedOut(timeout) => Some(timeout),
            _ => None,
        }
    }
}

/// When and after how long a run timed out (`data.timeout` of `run.timed_out`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeout {
    /// When the dashboard stopped the run.
    #[serde(serialize_with = "rfc3339")]
    pub timed_out_at: DateTime<FixedOffset>,
    /// The run's time limit in seconds, when the producer says it.
    #[serde(
        default,
        deserialize_with = "positive_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit_seconds: Option<u64>,
}

fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(deserializer)? {
        Some(0) => Err(de::Error::custom(
            "must be a positive number of seconds (or left out)",
        )),
        seconds => Ok(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_started_is_not_terminal() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.is_terminal(), kind != EventType::Started);
        }
        assert_eq!(EventType::parse("run.paused"), None);
        assert_eq!(EventType::TimedOut.webhook_event(), "RUN_TIMED_OUT");
    }
}
