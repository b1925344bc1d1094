//! One delivery at a time per run and integration in this process, so that the order check
//! (the latest event wins) and the delivery it allows are not interleaved with another event
//! of the same run: a start handled beside its run's end could otherwise be applied last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A (run id, integration) pair.
type Pair = (String, String);

/// The locks of the (run, integration) pairs being delivered.
#[derive(Debug, Default)]
pub struct RunOrder {
    locks: Mutex<HashMap<Pair, Arc<AsyncMutex<()>>>>,
}

/// Held while one event of a run is checked and delivered to one integration; forgets the
/// pair when nobody else waits for it.
pub struct Turn<'a> {
    order: &'a RunOrder,
    key: Pair,
    guard: Option<OwnedMutexGuard<()>>,
}

impl RunOrder {
    /// Waits for the pair's turn.
    pub async fn turn(&self, run_id: &str, integration: &str) -> Turn<'_> {
        let key = (run_id.to_owned(), integration.to_owned());
        let lock = Arc::clone(
            self.locks
                .lock()
                .expect("not poisoned")
                .entry(key.clone())
                .or_default(),
        );
        let guard = lock.lock_owned().await;
        Turn {
            order: self,
            key,
            guard: Some(guard),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.order.locks.lock().expect("not poisoned");
        // Only the map holds it: nobody waits for this pair.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_at_a_time_per_pair_and_forgotten_after() {
        let order = RunOrder::default();
        let first = order.turn("r1", "a").await;
        let other = order.turn("r1", "b").await;
        let waiting = tokio::time::timeout(std::time::Duration::ZERO, order.turn("r1", "a"));
        assert!(waiting.await.is_err(), "the pair is taken");
        drop(first);
        drop(order.turn("r1", "a").await);
        drop(other);
        assert!(order.locks.lock().unwrap().is_empty());
    }
}
