//! [`IntegrationName`]: the configured name that retries, dead letters, the ledger and metrics
//! use to refer to an integration, as a type of its own so it is not mixed up with the run id,
//! the event type or a name read off the wire.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// An integration's `name:`. Its rule (1 to 64 letters, digits, `-`, `_` and `.`, so that it can
/// be part of a queue name) is checked with the integration's other settings
/// ([`IntegrationName::problem`]), so every problem of a config is reported at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntegrationName(String);

impl IntegrationName {
    /// A name that follows the rule, or the rule as a sentence.
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = Self(text.to_owned());
        match name.problem() {
            Some(problem) => Err(problem),
            None => Ok(name),
        }
    }

    /// The rule, when this name breaks it.
    pub fn problem(&self) -> Option<String> {
        let name = &self.0;
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        (!ok).then(|| {
            "`name` must be 1 to 64 characters of letters, digits, `-`, `_` and `.`".to_owned()
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A valid name that lives as long as the test (keys borrow their name).
    #[cfg(test)]
    pub fn leaked(text: &str) -> &'static Self {
        Box::leak(Box::new(Self::parse(text).expect("a valid name")))
    }
}

impl Deref for IntegrationName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for IntegrationName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_what_a_queue_name_can_carry() {
        for good in ["a", "audit-webhook", "team_a.slack", &"x".repeat(64)] {
            assert!(IntegrationName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "ünïcode", "a/b", &"x".repeat(65)] {
            assert_eq!(
                IntegrationName::parse(bad).unwrap_err(),
                "`name` must be 1 to 64 characters of letters, digits, `-`, `_` and `.`",
                "{bad}"
            );
        }
    }
}
