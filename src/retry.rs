//! The retry schedule: a pure function from the attempt and its failure to the next delay.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::RetryConfig;
use crate::failure::DeliveryError;

/// When to try again, from the configured schedule.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig) -> Self {
        Self { config }
    }

    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    /// After attempt `attempt` (1-based) failed with `error`: how long to wait before the next
    /// one, or `None` to give up (a permanent failure, or no attempts left).
    ///
    /// A receiver's own wait (`Retry-After`, rate-limit reset) wins over the schedule, clamped
    /// to `max_retry_after`; otherwise exponential backoff with jitter.
    pub fn next_delay(&self, attempt: u32, error: &DeliveryError) -> Option<Duration> {
        let DeliveryError::Retryable { retry_after, .. } = error else {
            return None;
        };
        if attempt >= self.config.max_attempts {
            return None;
        }
        if let Some(wait) = retry_after {
            return Some((*wait).min(*self.config.max_retry_after));
        }
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(*self.config.initial_delay)
            .with_max_delay(*self.config.max_delay)
            .with_factor(self.config.multiplier)
            .without_max_times();
        if self.config.jitter {
            builder = builder.with_jitter();
        }
        builder.build().nth(attempt.saturating_sub(1) as usize)
    }

    /// The longest delay `next_delay` can return (jitter adds up to the delay again).
    pub fn longest_delay(&self) -> Duration {
        let backoff = self
            .config
            .max_delay
            .saturating_mul(if self.config.jitter { 2 } else { 1 });
        backoff.max(*self.config.max_retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use crate::failure::FailureKind;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            max_attempts: 5,
            initial_delay: HumanDuration::secs(1),
            multiplier: 2.0,
            max_delay: HumanDuration::secs(5),
            jitter,
            max_retry_after: HumanDuration::secs(60),
        })
    }

    fn transient(retry_after: Option<Duration>) -> DeliveryError {
        DeliveryError::Retryable {
            kind: FailureKind::Transient,
            message: "HTTP 503".into(),
            retry_after,
        }
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_maximum() {
        let policy = policy(false);
        let delays: Vec<_> = (1..=4)
            .map(|attempt| {
                policy
                    .next_delay(attempt, &transient(None))
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 5]);
    }

    #[test]
    fn no_retry_after_the_last_attempt() {
        assert_eq!(policy(false).next_delay(5, &transient(None)), None);
    }

    #[test]
    fn permanent_failures_and_cancellations_are_never_retried() {
        let policy = policy(false);
        assert_eq!(
            policy.next_delay(1, &DeliveryError::permanent("HTTP 400")),
            None
        );
        assert_eq!(policy.next_delay(1, &DeliveryError::Canceled), None);
    }

    #[test]
    fn jitter_stays_between_the_delay_and_twice_it() {
        let policy = policy(true);
        for _ in 0..200 {
            let delay = policy.next_delay(2, &transient(None)).unwrap();
            assert!(
                delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let policy = policy(true);
        let wait = |secs| policy.next_delay(1, &transient(Some(Duration::from_secs(secs))));
        assert_eq!(wait(2), Some(Duration::from_secs(2)));
        assert_eq!(wait(30), Some(Duration::from_secs(30)));
        assert_eq!(wait(86_400), Some(Duration::from_secs(60)));
        assert_eq!(policy.longest_delay(), Duration::from_secs(60));
    }
}
