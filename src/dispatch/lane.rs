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
use super::budget::Flow;
use crate::telemetry::metrics;

/// The concurrency and breaker of one integration.
#[derive(Debug)]
pub struct Lane {
    integration: String,
    permits: Arc<Semaphore>,
    /// When a slot was last freed: a part from the event queue waits briefly for a slot only
    /// while slots are being freed.
    flow: Flow,
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
        self.lane.flow.released();
    }
}

impl Lane {
    pub fn new(integration: &str, concurrency: usize, failures: u32, cool_down: Duration) -> Self {
        Self {
            integration: integration.to_owned(),
            permits: Arc::new(Semaphore::new(concurrency)),
            flow: Flow::default(),
            breaker: Breaker::new(integration, failures, cool_down),
            waiting: Waiting::default(),
        }
    }

    /// Whether new work may be delivered straight from the event queue: the breaker is closed.
    pub fn open_to_new_work(&self) -> bool {
        self.breaker.admit_now()
    }

    /// A slot for a delivery straight from the event queue: a free one, or the next one freed
    /// within [`PATIENCE`](super::budget::PATIENCE) while slots are being freed (after any work
    /// already waiting: the semaphore is fair). `None`: the work belongs in the integration's
    /// queue.
    pub async fn direct_slot(&self) -> Option<Slot<'_>> {
        let permit = self.flow.patiently(&self.permits).await?;
        // Asked again after the wait: a part must not start after the breaker opened meanwhile.
        if !self.breaker.admit_now() {
            return None;
        }
        Some(self.occupy(Admission::Normal, permit))
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
        Some(self.occupy(admission, permit))
    }

    fn occupy(&self, admission: Admission, permit: OwnedSemaphorePermit) -> Slot<'_> {
        Slot {
            lane: self,
            admission,
            signal: Signal::Nothing,
            _permit: permit,
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
    use crate::dispatch::budget::PATIENCE;
    use crate::failure::DeliveryError;

    fn transient() -> Outcome {
        Outcome::RetryIn {
            delay: Duration::from_secs(1),
            error: DeliveryError::transient("HTTP 503"),
        }
    }

    // Paused time: a wait shows as time that passed, and no test waits in real time.

    #[tokio::test(start_paused = true)]
    async fn slots_are_bounded_by_the_concurrency() {
        let lane = Lane::new("a", 2, 5, Duration::from_secs(30));
        let first = lane.direct_slot().await.expect("free");
        let _second = lane.direct_slot().await.expect("free");
        assert!(
            lane.direct_slot().await.is_none(),
            "the third goes to the queue"
        );
        first.finish(&Outcome::Delivered("HTTP 200".into()));
        assert!(lane.direct_slot().await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_lane_whose_slots_are_stuck_is_not_waited_on() {
        let lane = Lane::new("a", 1, 5, Duration::from_secs(30));
        let _hung = lane.direct_slot().await.expect("free");
        tokio::time::sleep(PATIENCE * 2).await;
        let started = tokio::time::Instant::now();
        assert!(lane.direct_slot().await.is_none());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_lane_is_waited_on_while_its_slots_are_freed() {
        let lane = Arc::new(Lane::new("a", 1, 5, Duration::from_secs(30)));
        let busy = lane.direct_slot().await.expect("free");
        let waiter = {
            let lane = Arc::clone(&lane);
            tokio::spawn(async move { lane.direct_slot().await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(busy);
        assert!(
            waiter.await.unwrap(),
            "the freed slot went to the waiting part"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_ends_early_hands_the_probe_on() {
        let lane = Lane::new("a", 2, 1, Duration::from_secs(30));
        lane.direct_slot().await.unwrap().finish(&transient());
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

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_sends_new_work_to_the_queue() {
        let lane = Lane::new("a", 8, 2, Duration::from_secs(30));
        for _ in 0..2 {
            lane.direct_slot().await.unwrap().finish(&transient());
        }
        assert_eq!(lane.breaker_state(), BreakerState::Open);
        assert!(!lane.open_to_new_work());
    }

    #[tokio::test(start_paused = true)]
    async fn work_waiting_for_a_slot_goes_before_new_work() {
        let lane = Arc::new(Lane::new("a", 1, 5, Duration::from_secs(30)));
        let busy = lane.direct_slot().await.unwrap();
        let cancel = CancellationToken::new();
        let (got, mut got_rx) = tokio::sync::mpsc::channel(1);
        let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = {
            let lane = Arc::clone(&lane);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let slot = lane.slot(0, &cancel).await;
                got.send(slot.is_some()).await.unwrap();
                // Holds the slot until the test is done with new work.
                let _ = done_rx.await;
            })
        };
        while lane.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        assert!(
            lane.direct_slot().await.is_none(),
            "the freed slot went to the waiting delivery, not to new work"
        );
        assert_eq!(
            got_rx.recv().await,
            Some(true),
            "the waiting delivery got the slot"
        );
        done.send(()).unwrap();
        waiter.await.unwrap();
    }
}
