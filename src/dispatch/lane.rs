//! One integration's lane: its own concurrency and its circuit breaker, so that a slow, hung
//! or failing receiver holds only its own share of the worker and never another's.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Outcome;
use super::breaker::{Admission, Breaker, BreakerState, Signal};
use crate::telemetry::metrics;

/// The concurrency and breaker of one integration.
#[derive(Debug)]
pub struct Lane {
    integration: String,
    permits: Arc<Semaphore>,
    /// Deliveries made straight from the event queue hold their event message until they end:
    /// these permits bound how many a hung receiver can hold (see [`Lane::new`]).
    direct: Arc<Semaphore>,
    breaker: Breaker,
    waiting: Waiting,
}

/// Leave to deliver to the lane's integration; the slot is freed when it drops.
#[derive(Debug)]
pub struct Slot<'a> {
    lane: &'a Lane,
    admission: Admission,
    /// What the delivery learned, once it has finished; a slot dropped without it (its task
    /// ended early) tells the breaker nothing was learned, so a probe is never left hanging.
    signal: Signal,
    _permit: OwnedSemaphorePermit,
    _direct: Option<OwnedSemaphorePermit>,
    _in_flight: metrics::IntegrationInFlight,
}

impl Slot<'_> {
    /// Tells the breaker what the delivery made in this slot learned about the receiver.
    pub fn finish(mut self, outcome: &Outcome) {
        self.signal = outcome.signal();
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.lane.breaker.record(&self.admission, self.signal);
    }
}

impl Lane {
    /// `direct`: how many of the `concurrency` slots may go to deliveries made straight from the
    /// event queue (the rest only to work from the integration's own queue).
    pub fn new(
        integration: &str,
        concurrency: usize,
        direct: usize,
        failures: u32,
        cool_down: Duration,
    ) -> Self {
        Self {
            integration: integration.to_owned(),
            permits: Arc::new(Semaphore::new(concurrency)),
            direct: Arc::new(Semaphore::new(direct.clamp(1, concurrency.max(1)))),
            breaker: Breaker::new(integration, failures, cool_down),
            waiting: Waiting::default(),
        }
    }

    /// A slot for a delivery straight from the event queue, if one is free, the breaker is
    /// closed and nothing waits before it; otherwise `None` and the work belongs in the
    /// integration's queue.
    pub fn try_slot(&self) -> Option<Slot<'_>> {
        if !self.breaker.admit_now() || self.waiting() > 0 {
            return None;
        }
        let direct = Arc::clone(&self.direct).try_acquire_owned().ok()?;
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        Some(self.occupy(Admission::Normal, permit, Some(direct)))
    }

    /// Waits for a slot (the breaker's leave, then a free permit); `queued_at_ms` is when the
    /// work was queued, for the age of the oldest waiting delivery. `None` when `cancel` fires.
    pub async fn slot(&self, queued_at_ms: i64, cancel: &CancellationToken) -> Option<Slot<'_>> {
        let _waiting = self.waiting.enter(queued_at_ms);
        // The permit first, then the breaker's leave: asked the other way round, a delivery
        // admitted while the breaker was closed could start after it had opened meanwhile.
        let permit = tokio::select! {
            permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("never closed"),
            () = cancel.cancelled() => return None,
        };
        let admission = self.breaker.admit(cancel).await?;
        Some(self.occupy(admission, permit, None))
    }

    fn occupy(
        &self,
        admission: Admission,
        permit: OwnedSemaphorePermit,
        direct: Option<OwnedSemaphorePermit>,
    ) -> Slot<'_> {
        Slot {
            lane: self,
            admission,
            signal: Signal::Nothing,
            _permit: permit,
            _direct: direct,
            _in_flight: metrics::IntegrationInFlight::start(&self.integration),
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// How many deliveries wait in this process for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().len()
    }

    /// When the oldest delivery waiting for a slot was queued (Unix ms).
    pub fn oldest_waiting_ms(&self) -> Option<i64> {
        self.waiting.lock().first().map(|&(at, _)| at)
    }
}

/// Deliveries taken from the integration's queue that wait for a slot, by when they were
/// queued: the oldest is the age operators alert on.
#[derive(Debug, Default)]
struct Waiting {
    since: Mutex<BTreeSet<(i64, u64)>>,
    next: AtomicU64,
}

/// Removes its delivery from the waiting set however the wait ends.
struct WaitingGuard<'a> {
    waiting: &'a Waiting,
    key: (i64, u64),
}

impl Waiting {
    fn enter(&self, queued_at_ms: i64) -> WaitingGuard<'_> {
        let key = (queued_at_ms, self.next.fetch_add(1, Ordering::Relaxed));
        self.lock().insert(key);
        WaitingGuard { waiting: self, key }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(i64, u64)>> {
        self.since.lock().expect("not poisoned")
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::DeliveryError;

    fn transient() -> Outcome {
        Outcome::RetryIn {
            delay: Duration::from_secs(1),
            error: DeliveryError::transient("HTTP 503"),
        }
    }

    #[tokio::test]
    async fn slots_are_bounded_by_the_concurrency() {
        let lane = Lane::new("a", 2, 2, 5, Duration::from_secs(30));
        let first = lane.try_slot().expect("free");
        let _second = lane.try_slot().expect("free");
        assert!(lane.try_slot().is_none(), "the third waits in the queue");
        first.finish(&Outcome::Delivered("HTTP 200".into()));
        assert!(lane.try_slot().is_some());
    }

    #[tokio::test]
    async fn direct_deliveries_get_only_their_share_of_the_slots() {
        let lane = Lane::new("a", 4, 1, 5, Duration::from_secs(30));
        let _direct = lane.try_slot().expect("free");
        assert!(lane.try_slot().is_none(), "one direct delivery at a time");
        let cancel = CancellationToken::new();
        let _queued = lane
            .slot(0, &cancel)
            .await
            .expect("queued work still gets a slot");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_ends_early_hands_the_probe_on() {
        let lane = Lane::new("a", 2, 2, 1, Duration::from_secs(30));
        lane.try_slot().unwrap().finish(&transient());
        let cancel = CancellationToken::new();
        let probe = lane
            .slot(0, &cancel)
            .await
            .expect("the probe after the cool-down");
        assert_eq!(lane.breaker_state(), BreakerState::Probing);
        drop(probe); // its task ended before the delivery did
        let next = lane.slot(0, &cancel).await.expect("another probe at once");
        next.finish(&Outcome::Delivered("HTTP 200".into()));
        assert_eq!(lane.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn an_open_breaker_sends_new_work_to_the_queue() {
        let lane = Lane::new("a", 8, 8, 2, Duration::from_secs(30));
        for _ in 0..2 {
            lane.try_slot().unwrap().finish(&transient());
        }
        assert_eq!(lane.breaker_state(), BreakerState::Open);
        assert!(lane.try_slot().is_none());
    }

    #[tokio::test]
    async fn work_waiting_for_a_slot_goes_before_new_work() {
        let lane = Arc::new(Lane::new("a", 1, 1, 5, Duration::from_secs(30)));
        let busy = lane.try_slot().unwrap();
        let cancel = CancellationToken::new();
        let waiter = {
            let lane = Arc::clone(&lane);
            let cancel = cancel.clone();
            tokio::spawn(async move { lane.slot(0, &cancel).await.is_some() })
        };
        while lane.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            lane.try_slot().is_none(),
            "new work queues behind the waiting one"
        );
        drop(busy);
        assert!(
            lane.try_slot().is_none(),
            "the freed slot went to the waiting delivery"
        );
        assert!(waiter.await.unwrap(), "the waiting delivery got the slot");
    }
}
