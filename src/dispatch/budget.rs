//! The direct half of the prefetch: how many event messages deliveries made straight from the
//! event queue may hold at once. A message that has parts to deliver now holds one permit
//! until they end, so hung receivers, however many and however the events fan out, hold at
//! most half the prefetch; the other half always reaches the integrations' own queues.
//!
//! Waiting is allowed only while the direct path moves: a message (or a part waiting for its
//! integration's slot) waits at most [`PATIENCE`], and not at all when nothing was released
//! for that long. A busy worker then delivers instead of republishing what it holds to the
//! integrations' queues; a stuck one hands work to those queues at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The longest a message waits for a permit, or a part for its integration's slot, before it
/// goes to the integration's queue instead.
pub const PATIENCE: Duration = Duration::from_millis(100);

/// When something was last released, to tell a busy path (wait a little) from a stuck one
/// (do not wait).
#[derive(Debug, Clone)]
pub struct Flow {
    epoch: Instant,
    /// Microseconds since `epoch` of the last release.
    released_us: Arc<AtomicU64>,
}

impl Default for Flow {
    /// A new path counts as moving.
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            released_us: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Flow {
    /// Something was released now.
    pub fn released(&self) {
        let now = self.epoch.elapsed().as_micros() as u64;
        self.released_us.store(now, Ordering::Relaxed);
    }

    /// Whether something was released within `PATIENCE`.
    pub fn moving(&self) -> bool {
        let now = self.epoch.elapsed().as_micros() as u64;
        now.saturating_sub(self.released_us.load(Ordering::Relaxed)) < PATIENCE.as_micros() as u64
    }

    /// Waits up to `PATIENCE` for a permit of `semaphore`, and only while the path moves.
    pub async fn patiently(&self, semaphore: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(semaphore).try_acquire_owned() {
            return Some(permit);
        }
        if !self.moving() {
            return None;
        }
        tokio::time::timeout(PATIENCE, Arc::clone(semaphore).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// The permits of the direct half.
#[derive(Debug)]
pub struct Budget {
    permits: Arc<Semaphore>,
    flow: Flow,
}

/// One event message's share of the direct half; released when it drops.
#[derive(Debug)]
pub struct Held {
    _permit: OwnedSemaphorePermit,
    flow: Flow,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.flow.released();
    }
}

impl Budget {
    /// Half of `prefetch` (at least one) messages.
    pub fn half_of(prefetch: u16) -> Self {
        Self {
            permits: Arc::new(Semaphore::new((usize::from(prefetch) / 2).max(1))),
            flow: Flow::default(),
        }
    }

    /// A permit for one message, or `None`: its parts then go to their integrations' queues.
    pub async fn take(&self) -> Option<Held> {
        let permit = self.flow.patiently(&self.permits).await?;
        Some(Held {
            _permit: permit,
            flow: self.flow.clone(),
        })
    }

    /// Permits free now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: a wait shows as time that passed, and no test waits in real time.

    #[tokio::test(start_paused = true)]
    async fn at_most_half_the_prefetch_is_held() {
        let budget = Budget::half_of(8);
        let mut held = Vec::new();
        while let Some(permit) = budget.take().await {
            held.push(permit);
            assert!(held.len() <= 4, "more than half of 8 held");
        }
        assert_eq!(held.len(), 4);
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_budget_sends_the_message_on_at_once() {
        let budget = Budget::half_of(2);
        let _stuck = budget.take().await.expect("one free");
        // Nothing released for longer than the patience: no wait at all.
        tokio::time::sleep(PATIENCE * 2).await;
        let started = Instant::now();
        assert!(budget.take().await.is_none());
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a stuck budget is not waited on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_budget_is_waited_on_briefly() {
        let budget = Arc::new(Budget::half_of(2));
        let first = budget.take().await.expect("one free");
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.take().await.is_some() })
        };
        // Released while the waiter waits: the path moves, the waiter gets it.
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(first);
        assert!(
            waiter.await.unwrap(),
            "the released permit went to the waiter"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_budget_that_stays_full_is_left_after_the_patience() {
        let budget = Budget::half_of(2);
        let first = budget.take().await.expect("one free");
        drop(first);
        let _second = budget.take().await.expect("the released one");
        // Just released, so the path moves: the next message waits, then goes on without one.
        let started = Instant::now();
        assert!(budget.take().await.is_none());
        assert_eq!(started.elapsed(), PATIENCE);
    }
}
