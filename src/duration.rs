//! Durations as operators write them: `500ms`, `30s`, `5m`, `2h` (and `30d` for retention).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration read from the config; `Deref`s to [`std::time::Duration`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }
}

impl std::ops::Deref for HumanDuration {
    type Target = Duration;
    fn deref(&self) -> &Duration {
        &self.0
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || {
            format!(
                "`{text}` is not a duration: write a whole number and a unit, such as 500ms, 30s, 5m or 2h"
            )
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        let millis = match unit {
            "ms" => Some(number),
            "s" => number.checked_mul(1_000),
            "m" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            "d" => number.checked_mul(86_400_000),
            _ => return Err(bad()),
        };
        millis.map(Self::millis).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_unit_parses() {
        assert_eq!("500ms".parse(), Ok(HumanDuration::millis(500)));
        assert_eq!("30s".parse(), Ok(HumanDuration::secs(30)));
        assert_eq!("5m".parse(), Ok(HumanDuration::secs(300)));
        assert_eq!("2h".parse(), Ok(HumanDuration::secs(7_200)));
        assert_eq!("30d".parse(), Ok(HumanDuration::secs(30 * 86_400)));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "10 days",
            "5M",
            "99999999999999999999h",
        ] {
            let err = bad.parse::<HumanDuration>().unwrap_err();
            assert!(err.contains("such as 500ms, 30s, 5m or 2h"), "{bad}: {err}");
        }
    }
}
