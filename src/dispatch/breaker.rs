//! A circuit breaker per integration: after enough consecutive transient failures the
//! integration pauses (its work waits, durable, in its own queue), probes once after a
//! cool-down, and resumes on success. Unlike breakers that drop traffic, this one only waits.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::telemetry::metrics;

/// What one finished delivery says about the receiver's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The receiver answered (taken, or refused for good: it is up either way).
    Answered,
    /// A transient failure: no answer, a timeout, a 5xx, a rate limit.
    Failed,
    /// Nothing was learned (skipped, canceled, interrupted).
    Nothing,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// One probe is under way after the cool-down.
    Probing,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::Probing => "probing",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

/// One integration's breaker.
#[derive(Debug)]
pub struct Breaker {
    integration: String,
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
    changed: Notify,
}

/// Leave to make one attempt; a probe's result decides whether the breaker closes.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Normal,
    Probe,
}

impl Breaker {
    /// `threshold` consecutive failures open it for `cool_down`; 0 never opens it.
    pub fn new(integration: &str, threshold: u32, cool_down: Duration) -> Self {
        metrics::breaker_state(integration, BreakerState::Closed.as_str());
        Self {
            integration: integration.to_owned(),
            threshold,
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
            changed: Notify::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::Probing => BreakerState::Probing,
        }
    }

    /// Leave to attempt now without waiting: only while closed.
    pub fn admit_now(&self) -> bool {
        matches!(*self.lock(), State::Closed { .. })
    }

    /// Waits until an attempt may start: at once while closed; after the cool-down for the one
    /// probe; after the probe's success for everyone else. `None` when `cancel` fires first.
    pub async fn admit(&self, cancel: &CancellationToken) -> Option<Admission> {
        loop {
            // Registered before the state is read, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait_until = {
                let mut state = self.lock();
                match *state {
                    State::Closed { .. } => return Some(Admission::Normal),
                    State::Open { until } if Instant::now() >= until => {
                        *state = State::Probing;
                        drop(state);
                        self.announce(BreakerState::Probing);
                        return Some(Admission::Probe);
                    }
                    State::Open { until } => Some(until),
                    State::Probing => None,
                }
            };
            let sleep = async {
                match wait_until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = changed => {}
                () = sleep => {}
                () = cancel.cancelled() => return None,
            }
        }
    }

    /// Takes the result of an attempt admitted as `admission`.
    pub fn record(&self, admission: &Admission, signal: Signal) {
        let mut state = self.lock();
        let next = match (&*state, admission, signal) {
            (State::Probing, Admission::Probe, Signal::Answered) => {
                Some(State::Closed { failures: 0 })
            }
            (State::Probing, Admission::Probe, Signal::Failed) => Some(State::Open {
                until: Instant::now() + self.cool_down,
            }),
            // A probe that learned nothing hands the probe on at once.
            (State::Probing, Admission::Probe, Signal::Nothing) => Some(State::Open {
                until: Instant::now(),
            }),
            (State::Closed { .. }, _, Signal::Answered) => Some(State::Closed { failures: 0 }),
            (State::Closed { failures }, _, Signal::Failed) => {
                let failures = failures + 1;
                if self.threshold > 0 && failures >= self.threshold {
                    Some(State::Open {
                        until: Instant::now() + self.cool_down,
                    })
                } else {
                    Some(State::Closed { failures })
                }
            }
            // Results of attempts started before the breaker opened change nothing.
            _ => None,
        };
        let Some(next) = next else { return };
        let announce = match (&*state, &next) {
            (State::Closed { .. }, State::Open { .. }) => Some(BreakerState::Open),
            (State::Probing, State::Open { .. }) => Some(BreakerState::Open),
            (State::Probing, State::Closed { .. }) => Some(BreakerState::Closed),
            _ => None,
        };
        *state = next;
        drop(state);
        if let Some(changed) = announce {
            self.announce(changed);
        }
        self.changed.notify_waiters();
    }

    fn announce(&self, state: BreakerState) {
        metrics::breaker_state(&self.integration, state.as_str());
        let integration = self.integration.as_str();
        match state {
            BreakerState::Open => warn!(
                integration,
                cool_down_ms = self.cool_down.as_millis() as u64,
                "circuit open: the receiver keeps failing; its deliveries wait in its queue"
            ),
            BreakerState::Probing => warn!(integration, "circuit half-open: probing the receiver"),
            BreakerState::Closed => {
                warn!(integration, "circuit closed: the receiver answers again")
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new("test", 3, Duration::from_secs(30))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_of_consecutive_failures() {
        let breaker = breaker();
        for _ in 0..2 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        breaker.record(&Admission::Normal, Signal::Answered);
        for _ in 0..2 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "an answer resets the count"
        );
        breaker.record(&Admission::Normal, Signal::Failed);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.admit_now());
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_one_probe_goes_and_the_rest_wait_for_its_answer() {
        let breaker = std::sync::Arc::new(breaker());
        for _ in 0..3 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        let cancel = CancellationToken::new();
        let probe = breaker.admit(&cancel).await;
        assert_eq!(
            probe,
            Some(Admission::Probe),
            "the first waiter probes after 30 s"
        );
        assert_eq!(breaker.state(), BreakerState::Probing);

        let waiter = {
            let breaker = breaker.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { breaker.admit(&cancel).await })
        };
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        assert!(!waiter.is_finished(), "others wait while the probe is out");
        breaker.record(&Admission::Probe, Signal::Answered);
        assert_eq!(waiter.await.unwrap(), Some(Admission::Normal));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_another_cool_down() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        let cancel = CancellationToken::new();
        let probe = breaker.admit(&cancel).await.unwrap();
        let opened_again = Instant::now();
        breaker.record(&probe, Signal::Failed);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(&cancel).await, Some(Admission::Probe));
        assert!(Instant::now() >= opened_again + Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_of_attempts_started_before_it_opened_change_nothing() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        breaker.record(&Admission::Normal, Signal::Answered);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_when_canceled() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(breaker.admit(&cancel).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_threshold_of_zero_never_opens() {
        let breaker = Breaker::new("test", 0, Duration::from_secs(1));
        for _ in 0..100 {
            breaker.record(&Admission::Normal, Signal::Failed);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
