//! The event's identifiers as types that can only hold valid values: run ids, commit ids and
//! pull request numbers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

/// The dashboard's run id: non-empty, at most 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RunId(String);

impl RunId {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if text.len() > 200 || text.chars().any(char::is_control) {
            return Err("must be at most 200 characters without control characters".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RunId::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

/// A git commit id: 7 to 64 hexadecimal digits (SHA-1 or SHA-256), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CommitSha(String);

impl CommitSha {
    pub fn parse(text: &str) -> Result<Self, String> {
        if (7..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err("must be a git commit id of 7 to 64 hexadecimal digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CommitSha {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CommitSha::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

/// A pull request number (positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PullRequestNumber(pub u64);

impl<'de> Deserialize<'de> for PullRequestNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            0 => Err(de::Error::custom("must be a positive integer")),
            n => Ok(Self(n)),
        }
    }
}
