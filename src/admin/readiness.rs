//! `/readyz`'s view of the ledger, asked of the ledger at most once per [`REFRESH`] however
//! often probes come: a burst of requests costs the ledger one round trip, not one each.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long an answer about the ledger stands before it is asked again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The last answer of a yes/no check, reused while it is younger than `every`.
#[derive(Debug)]
pub struct Refreshed {
    every: Duration,
    last: Mutex<Option<(Instant, bool)>>,
}

impl Refreshed {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// The last answer while it is fresh, else `check`'s. Callers that come while a check runs
    /// wait for it and share its answer, so checks never overlap.
    pub async fn get<F: Future<Output = bool>>(&self, check: impl FnOnce() -> F) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < self.every
        {
            return answer;
        }
        let answer = check().await;
        *last = Some((Instant::now(), answer));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A check that counts its calls and answers `answer`.
    fn counting(calls: &Arc<AtomicUsize>, answer: bool) -> impl Future<Output = bool> + use<> {
        let calls = Arc::clone(calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            answer
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_check_until_it_is_older_than_the_refresh() {
        let refreshed = Arc::new(Refreshed::new(REFRESH));
        let calls = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (refreshed, calls) = (Arc::clone(&refreshed), Arc::clone(&calls));
                tokio::spawn(async move { refreshed.get(|| counting(&calls, true)).await })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(REFRESH / 2).await;
        assert!(
            refreshed.get(|| counting(&calls, false)).await,
            "still fresh"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(REFRESH).await;
        assert!(
            !refreshed.get(|| counting(&calls, false)).await,
            "asked again"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
