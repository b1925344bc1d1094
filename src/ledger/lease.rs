//! Renewing a claim's lease while its delivery runs, so that a delivery longer than one lease
//! (pages of comments, a rate limiter's wait) keeps its row and no other worker takes it over.

use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};

use super::write::WriteError;
use super::{ClaimId, Key, Ledger, now_ms, sql};
use crate::telemetry::metrics;

/// A renewal, owning its values so that it can wait in the SQLite writer's queue.
#[derive(Debug)]
pub(super) struct RenewWrite {
    pub run_id: String,
    pub event_type: String,
    pub integration: String,
    pub claim_id: String,
    pub lease_until: i64,
}

impl RenewWrite {
    /// Runs the renewal on `connection`; the rows it changed (0: the claim is no longer ours).
    async fn run(&self, connection: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(sql::RENEW)
            .bind(self.lease_until)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .bind(self.claim_id.as_str())
            .execute(&mut *connection)
            .await?;
        Ok(result.rows_affected())
    }
}

/// A renewal on PostgreSQL, in its own (implicit) transaction.
async fn renew_alone(pool: &AnyPool, write: &RenewWrite) -> Result<u64, WriteError> {
    let mut connection = pool.acquire().await?;
    Ok(write.run(&mut connection).await?)
}

impl Ledger {
    /// Extends the lease of a claim this process holds to `lease` from now. Returns `false`
    /// when the claim is no longer ours (an operator canceled it, another attempt took it over
    /// after its lease ran out, or it was recorded): nothing is written then.
    pub async fn renew(
        &self,
        key: Key<'_>,
        claim: &ClaimId,
        lease: Duration,
    ) -> Result<bool, WriteError> {
        let started = std::time::Instant::now();
        let write = RenewWrite {
            run_id: key.run_id.as_str().to_owned(),
            event_type: key.event_type.to_owned(),
            integration: key.integration.to_string(),
            claim_id: claim.as_str().to_owned(),
            lease_until: now_ms() + lease.as_millis() as i64,
        };
        let written = match &self.writer {
            Some(writer) => writer.renew(write).await,
            None => renew_alone(&self.pool, &write).await,
        };
        metrics::ledger_time("renew", started.elapsed());
        Ok(written? == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{postgres_config, sqlite_config};
    use crate::event::RunId;
    use crate::integrations::IntegrationName;
    use crate::ledger::{Claim, ClaimId, Key, Ledger, Record, State};

    const TYPE: &str = "run.canceled";
    const LONG: Duration = Duration::from_secs(60);

    async fn claimed(ledger: &Ledger, key: Key<'_>, lease: Duration) -> ClaimId {
        match ledger.claim(key, "evt", 1, lease).await.unwrap() {
            Claim::Claimed(id) => id,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    /// A lease of zero has run out a few milliseconds later (the ledger counts milliseconds).
    async fn let_a_zero_lease_run_out() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    async fn renewal_rules_hold(ledger: Ledger) {
        let run = RunId::parse(&format!("run-{:x}", rand::random::<u64>())).unwrap();
        let key = |integration| Key {
            run_id: &run,
            event_type: TYPE,
            integration: IntegrationName::leaked(integration),
        };

        // Ours: renewed, a claim whose first lease ran out is still busy for everyone else.
        let a = key("a");
        let ours = claimed(&ledger, a, Duration::ZERO).await;
        assert!(ledger.renew(a, &ours, LONG).await.unwrap());
        let_a_zero_lease_run_out().await;
        let Claim::Busy { lease_until_ms } = ledger.claim(a, "evt", 2, LONG).await.unwrap() else {
            panic!("a renewed claim is taken over")
        };
        assert!(
            lease_until_ms > crate::ledger::now_ms() + 30_000,
            "{lease_until_ms}"
        );
        assert!(
            ledger
                .record(
                    a,
                    &ours,
                    &Record {
                        receipt: Some("HTTP 200"),
                        ..Record::new(State::Delivered, 1)
                    }
                )
                .await
                .unwrap(),
            "the renewed claim records its outcome"
        );
        // Recorded: nothing left to renew, and the row stays as recorded.
        assert!(!ledger.renew(a, &ours, LONG).await.unwrap());
        assert_eq!(ledger.state(a).await.unwrap(), Some(State::Delivered));

        // Taken over after its lease ran out: the old owner's renewal changes nothing.
        let b = key("b");
        let old = claimed(&ledger, b, Duration::ZERO).await;
        let_a_zero_lease_run_out().await;
        let new = claimed(&ledger, b, LONG).await;
        assert!(!ledger.renew(b, &old, LONG).await.unwrap());
        assert!(ledger.renew(b, &new, LONG).await.unwrap());
        assert!(
            ledger
                .record(b, &new, &Record::new(State::Delivered, 1))
                .await
                .unwrap(),
            "the new owner still holds the row"
        );

        // Canceled by an operator: not ours any more either.
        let c = key("c");
        let canceled = claimed(&ledger, c, LONG).await;
        ledger
            .cancel(&run, TYPE, &[IntegrationName::leaked("c")])
            .await
            .unwrap();
        assert!(!ledger.renew(c, &canceled, LONG).await.unwrap());
        assert_eq!(ledger.state(c).await.unwrap(), Some(State::Canceled));
    }

    #[tokio::test]
    async fn sqlite_renews_only_a_claim_that_is_still_ours() {
        let dir = tempfile::tempdir().unwrap();
        renewal_rules_hold(Ledger::open(&sqlite_config(&dir)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_renews_only_a_claim_that_is_still_ours() {
        renewal_rules_hold(Ledger::open(&postgres_config().await).await.unwrap()).await;
    }
}
