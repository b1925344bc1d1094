//! A delivery's heartbeat: renews its claim's lease in the ledger while it runs, so that a
//! delivery longer than one lease (pages of comments, a rate limiter's wait) is never taken
//! over by another worker, and stops the delivery once the claim can no longer be shown ours.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Holder, Outcome};
use crate::ledger::{ClaimId, Key, Ledger, outage_backoff};

/// How a delivery under its heartbeat ended.
#[derive(Debug)]
pub(super) enum Renewed<T> {
    /// The delivery ran to its end.
    Finished(T),
    /// The delivery was stopped (dropped, its request abandoned if one was in flight) because
    /// its claim is lost or could not be renewed in time.
    Stopped(Lost),
}

/// Why a claim could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// A renewal found the row no longer ours: an operator canceled it, or another worker
    /// took it over after its lease ran out (this process stalled past it, say).
    NotOurs,
    /// The ledger did not take a renewal before the lease was about to run out.
    Unreachable,
}

impl Lost {
    /// What the worker does with a stopped delivery: nothing is recorded (the row is not ours
    /// to write, or cannot be written), and the message looks at the row again later, as for
    /// any delivery another attempt holds. By then the other attempt has delivered it (the
    /// look says "already delivered"), still holds it (busy again), or has left it (taken over).
    pub(super) fn outcome(self, lease: Duration) -> Outcome {
        Outcome::Busy {
            until: (lease / 3).max(Duration::from_secs(1)),
            holder: Holder::Attempt,
        }
    }
}

/// Runs `delivery` while keeping its claim: the lease is renewed a third of a lease after it
/// was last written, so a delivery shorter than that writes nothing more than its claim and
/// record. Each renewal extends the lease to `lease` from then, only while the row is still
/// this claim's.
pub(super) async fn renewing<F: Future>(
    ledger: &Ledger,
    key: Key<'_>,
    claim: &ClaimId,
    lease: Duration,
    delivery: F,
) -> Renewed<F::Output> {
    tokio::select! {
        biased;
        output = delivery => Renewed::Finished(output),
        lost = keep(ledger, key, claim, lease) => Renewed::Stopped(lost),
    }
}

/// Renews the lease every third of it; returns only when the claim is lost.
async fn keep(ledger: &Ledger, key: Key<'_>, claim: &ClaimId, lease: Duration) -> Lost {
    let period = lease / 3;
    // Counted from now, just after the claim wrote its lease: the claim's commit time is
    // well within the margin kept below.
    let mut written = Instant::now();
    loop {
        tokio::time::sleep_until(written + period).await;
        // Stop a sixth of a lease before it runs out: another worker may claim the row then.
        let give_up_at = written + lease - lease / 6;
        match renew_before(ledger, key, claim, lease, give_up_at).await {
            Ok(at) => written = at,
            Err(lost) => return lost,
        }
    }
}

/// One renewal, tried again while the ledger is unreachable, until `give_up_at`; the instant
/// the renewed lease counts from.
async fn renew_before(
    ledger: &Ledger,
    key: Key<'_>,
    claim: &ClaimId,
    lease: Duration,
    give_up_at: Instant,
) -> Result<Instant, Lost> {
    let mut backoff = outage_backoff();
    loop {
        // The ledger computes the new lease after this instant: counting from here is safe.
        let started = Instant::now();
        if started >= give_up_at {
            warn!(
                lease_ms = lease.as_millis() as u64,
                "the ledger is unreachable and the delivery's lease is running out: stopping the \
                 delivery, so that no other worker can send while this one does; it is tried \
                 again once the lease has run out"
            );
            return Err(Lost::Unreachable);
        }
        let error = match tokio::time::timeout_at(give_up_at, ledger.renew(key, claim, lease)).await
        {
            Ok(Ok(true)) => {
                debug!(
                    lease_ms = lease.as_millis() as u64,
                    "renewed the delivery's lease"
                );
                return Ok(started);
            }
            Ok(Ok(false)) => {
                warn!(
                    "the delivery's claim in the ledger is no longer ours (an operator canceled \
                     it, or another worker took it over after its lease ran out): stopping this \
                     attempt without recording it; if its request had already reached the \
                     receiver, the other attempt's is a second one"
                );
                return Err(Lost::NotOurs);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        let wait = backoff.next().unwrap_or(Duration::from_secs(5));
        warn!(
            error,
            retry_ms = wait.as_millis() as u64,
            "cannot renew the delivery's lease yet: the ledger is unreachable"
        );
        tokio::time::sleep_until((Instant::now() + wait).min(give_up_at)).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::event::RunId;
    use crate::integrations::IntegrationName;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::config::LedgerConfig;
    use crate::ledger::{Claim, Ledger, now_ms};
    use crate::protocol::EVENT_TYPE;

    /// A third of it is half a second.
    const LEASE: Duration = Duration::from_millis(1_500);

    struct Fixture {
        ledger: Ledger,
        run_id: RunId,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let ledger = Ledger::open(&LedgerConfig {
                path: dir.path().join("ledger.db"),
                ..LedgerConfig::default()
            })
            .await
            .unwrap();
            Self {
                ledger,
                run_id: RunId::parse(&format!("run-{:x}", rand::random::<u64>())).unwrap(),
                _dir: dir,
            }
        }

        fn key(&self) -> Key<'_> {
            Key {
                run_id: &self.run_id,
                event_type: EVENT_TYPE,
                integration: IntegrationName::leaked("hook"),
            }
        }

        async fn claim(&self, lease: Duration) -> ClaimId {
            match self
                .ledger
                .claim(self.key(), "evt", 1, lease)
                .await
                .unwrap()
            {
                Claim::Claimed(id) => id,
                other => panic!("expected a claim, got {other:?}"),
            }
        }

        /// The row's lease as stored, in Unix milliseconds.
        async fn lease_until(&self) -> i64 {
            sqlx::query_scalar("SELECT lease_until FROM deliveries WHERE run_id = $1")
                .bind(self.run_id.as_str())
                .fetch_one(self.ledger.pool())
                .await
                .unwrap()
        }

        /// A delivery that never ends by itself; the time it was dropped goes to `dropped_ms`.
        fn endless_delivery(&self, dropped_ms: &Arc<AtomicI64>) -> impl Future<Output = ()> {
            let guard = DropTime(Arc::clone(dropped_ms));
            async move {
                let _guard = guard;
                std::future::pending::<()>().await
            }
        }
    }

    /// Notes when it is dropped.
    struct DropTime(Arc<AtomicI64>);

    impl Drop for DropTime {
        fn drop(&mut self) {
            self.0.store(now_ms(), Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_delivery_shorter_than_a_third_of_its_lease_writes_no_renewal() {
        let fixture = Fixture::new().await;
        let claim = fixture.claim(LEASE).await;
        let claimed_until = fixture.lease_until().await;
        let ended = renewing(&fixture.ledger, fixture.key(), &claim, LEASE, async { 42 }).await;
        assert!(matches!(ended, Renewed::Finished(42)), "{ended:?}");
        assert_eq!(
            fixture.lease_until().await,
            claimed_until,
            "the lease was written again"
        );
    }

    #[tokio::test]
    async fn a_delivery_longer_than_its_lease_keeps_its_claim_from_other_workers() {
        let fixture = Fixture::new().await;
        let claim = fixture.claim(LEASE).await;
        let claimed_until = fixture.lease_until().await;
        // The delivery runs past its first lease, then another worker tries to claim the row.
        let delivery = async {
            tokio::time::sleep(LEASE + LEASE / 3).await;
            fixture.ledger.claim(fixture.key(), "evt", 1, LEASE).await
        };
        let ended = renewing(&fixture.ledger, fixture.key(), &claim, LEASE, delivery).await;
        let Renewed::Finished(Ok(Claim::Busy { lease_until_ms })) = ended else {
            panic!("another worker took a live delivery over: {ended:?}")
        };
        assert!(lease_until_ms > claimed_until, "the lease was renewed");
        assert!(
            fixture
                .ledger
                .record(
                    fixture.key(),
                    &claim,
                    &crate::ledger::Record::new(crate::ledger::State::Delivered, 1)
                )
                .await
                .unwrap(),
            "the claim is still this delivery's"
        );
    }

    #[tokio::test]
    async fn a_claim_taken_over_stops_its_delivery() {
        let fixture = Fixture::new().await;
        let claim = fixture.claim(LEASE).await;
        // Another worker owns the row now (as after this one stalled past its lease).
        sqlx::query("UPDATE deliveries SET claim_id = 'another worker' WHERE run_id = $1")
            .bind(fixture.run_id.as_str())
            .execute(fixture.ledger.pool())
            .await
            .unwrap();
        let dropped_ms = Arc::new(AtomicI64::new(0));
        let delivery = fixture.endless_delivery(&dropped_ms);
        let ended = renewing(&fixture.ledger, fixture.key(), &claim, LEASE, delivery).await;
        assert!(
            matches!(ended, Renewed::Stopped(Lost::NotOurs)),
            "{ended:?}"
        );
        assert_ne!(dropped_ms.load(Ordering::SeqCst), 0, "the delivery goes on");
        let owner: String = sqlx::query_scalar("SELECT claim_id FROM deliveries WHERE run_id = $1")
            .bind(fixture.run_id.as_str())
            .fetch_one(fixture.ledger.pool())
            .await
            .unwrap();
        assert_eq!(owner, "another worker");
    }

    #[tokio::test]
    async fn an_unreachable_ledger_stops_the_delivery_before_its_lease_runs_out() {
        let fixture = Fixture::new().await;
        let lease = LEASE * 2;
        let claim = fixture.claim(lease).await;
        let lease_until = fixture.lease_until().await;
        // Every renewal fails, as when the database cannot be reached.
        sqlx::raw_sql(
            "CREATE TRIGGER unreachable BEFORE UPDATE ON deliveries
             BEGIN SELECT RAISE(ABORT, 'the ledger is unreachable'); END;",
        )
        .execute(fixture.ledger.pool())
        .await
        .unwrap();
        let dropped_ms = Arc::new(AtomicI64::new(0));
        let delivery = fixture.endless_delivery(&dropped_ms);
        let ended = renewing(&fixture.ledger, fixture.key(), &claim, lease, delivery).await;
        assert!(
            matches!(ended, Renewed::Stopped(Lost::Unreachable)),
            "{ended:?}"
        );
        let dropped_ms = dropped_ms.load(Ordering::SeqCst);
        assert!(
            dropped_ms > 0 && dropped_ms < lease_until,
            "stopped at {dropped_ms}, the lease ran out at {lease_until}"
        );
    }
}
