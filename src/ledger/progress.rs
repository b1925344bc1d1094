//! How far each run got at each integration: the latest event applied (an older one is then
//! superseded, and a start never follows an end) and the provider's object for the run.

use sqlx::Row as _;

use super::Ledger;
use crate::event::{EventType, RunEvent};

pub(super) const READ: &str = "
SELECT event_time, event_rank, event_type, object_id FROM run_progress
WHERE run_id = $1 AND integration = $2";

/// Moves the row forward only: a later event, or an end after a start at the same time. An
/// object id, once known, is kept when a later write has none.
pub(super) const ADVANCE: &str = "
INSERT INTO run_progress (run_id, integration, event_time, event_rank, event_type, object_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (run_id, integration) DO UPDATE SET
    event_type = CASE WHEN excluded.event_rank > run_progress.event_rank
        OR (excluded.event_rank = run_progress.event_rank AND excluded.event_time >= run_progress.event_time)
        THEN excluded.event_type ELSE run_progress.event_type END,
    event_time = CASE WHEN excluded.event_rank > run_progress.event_rank
        OR (excluded.event_rank = run_progress.event_rank AND excluded.event_time >= run_progress.event_time)
        THEN excluded.event_time ELSE run_progress.event_time END,
    event_rank = CASE WHEN excluded.event_rank > run_progress.event_rank
        THEN excluded.event_rank ELSE run_progress.event_rank END,
    object_id = COALESCE(excluded.object_id, run_progress.object_id),
    updated_at = excluded.updated_at";

const PRUNE: &str = "DELETE FROM run_progress WHERE updated_at < $1";

/// That an event was applied at an integration, with the provider's object when the delivery
/// made or found one: written with the delivery's record.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub event: &'a RunEvent,
    pub object_id: Option<&'a str>,
}

/// [`Applied`] as the ledger writes it, owning its values so that it can wait in the queue.
#[derive(Debug)]
pub(super) struct AdvanceWrite {
    pub run_id: String,
    pub integration: String,
    pub event_time: i64,
    pub event_rank: i64,
    pub event_type: &'static str,
    pub object_id: Option<String>,
    pub now: i64,
}

impl AdvanceWrite {
    pub(super) fn new(
        event: &RunEvent,
        integration: &str,
        object_id: Option<&str>,
        now: i64,
    ) -> Self {
        Self {
            run_id: event.data.run_id.as_str().to_owned(),
            integration: integration.to_owned(),
            event_time: event.time.timestamp_millis(),
            event_rank: i64::from(event.event_type().is_terminal()),
            event_type: event.event_type().as_str(),
            object_id: object_id.map(str::to_owned),
            now,
        }
    }

    /// Runs it on `connection` (PostgreSQL, or SQLite through sqlx; the SQLite writer binds
    /// the same values itself).
    pub(super) async fn run(
        &self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(ADVANCE)
            .bind(self.run_id.as_str())
            .bind(self.integration.as_str())
            .bind(self.event_time)
            .bind(self.event_rank)
            .bind(self.event_type)
            .bind(self.object_id.as_deref())
            .bind(self.now)
            .execute(connection)
            .await?;
        Ok(())
    }
}

/// The latest event applied for a run at an integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Its CloudEvents `time`, Unix ms.
    pub event_time_ms: i64,
    /// Whether an end of the run was applied.
    pub ended: bool,
    /// Its type, as the event named it.
    pub event_type: String,
    /// The provider's object for the run, when the integration keeps one.
    pub object_id: Option<String>,
}

impl Progress {
    /// The row as READ returns it: event time, rank, type, object id.
    pub(super) fn from_columns(
        event_time_ms: i64,
        event_rank: i64,
        event_type: String,
        object_id: Option<String>,
    ) -> Self {
        Self {
            event_time_ms,
            ended: event_rank > 0,
            event_type,
            object_id,
        }
    }

    /// The run's progress at `integration` on `connection` (PostgreSQL, or SQLite through sqlx;
    /// the SQLite writer reads it itself).
    pub(super) async fn read(
        connection: &mut sqlx::AnyConnection,
        run_id: &str,
        integration: &str,
    ) -> Result<Option<Self>, sqlx::Error> {
        let row = sqlx::query(READ)
            .bind(run_id)
            .bind(integration)
            .fetch_optional(connection)
            .await?;
        row.map(|row| {
            Ok(Self::from_columns(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })
        .transpose()
    }

    /// Why `event` must not be applied after this, if it must not: it is older than the
    /// event applied, or a start after an end.
    pub fn supersedes(&self, event: &RunEvent) -> Option<String> {
        let applied = &self.event_type;
        if self.ended && event.event_type() == EventType::Started {
            return Some(format!(
                "superseded: the run already ended (`{applied}` applied)"
            ));
        }
        (event.time.timestamp_millis() < self.event_time_ms)
            .then(|| format!("superseded: a later event (`{applied}`) was applied"))
    }
}

impl Ledger {
    /// Forgets progress not moved since `before_ms`, with the deliveries of the same age.
    pub(super) async fn prune_progress(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(PRUNE)
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::now_ms;
    use crate::ledger::tests::{postgres_config, sqlite_config};
    use serde_json::{Value, json};

    /// The progress a delivery reads with its claim, and the advance it writes with its record,
    /// on their own.
    impl Ledger {
        /// How far the run got at `integration`, if anything was applied. (A delivery reads it
        /// with its claim: [`crate::ledger::ClaimId::progress`].)
        pub async fn progress(
            &self,
            run_id: &str,
            integration: &str,
        ) -> Result<Option<Progress>, sqlx::Error> {
            let mut connection = self.pool.acquire().await?;
            Progress::read(&mut connection, run_id, integration).await
        }

        /// Notes that `event` was applied at `integration` (with the provider's object, when the
        /// delivery made or found one); never moves the run back. (A delivery notes it with its
        /// record: [`crate::ledger::Record::applied`].)
        pub async fn advance(
            &self,
            event: &RunEvent,
            integration: &str,
            object_id: Option<&str>,
        ) -> Result<(), sqlx::Error> {
            let mut connection = self.pool.acquire().await?;
            AdvanceWrite::new(event, integration, object_id, now_ms())
                .run(&mut connection)
                .await?;
            Ok(())
        }
    }

    /// An event of `run` of type `kind` at `time`.
    fn event(run: &str, kind: &str, time: &str) -> RunEvent {
        let mut event: Value =
            serde_json::from_str(include_str!("../../config/example-event.json")).unwrap();
        event["type"] = json!(kind);
        event["time"] = json!(time);
        event["data"]["runId"] = json!(run);
        if kind != "run.canceled" {
            event["data"]
                .as_object_mut()
                .unwrap()
                .remove("cancellation");
        }
        RunEvent::parse(event.to_string().as_bytes()).unwrap()
    }

    async fn progress_moves_forward_only(ledger: Ledger) {
        let run = format!("run-{:x}", rand::random::<u64>());
        let started = event(&run, "run.started", "2026-11-21T10:00:00Z");
        let finished = event(&run, "run.finished", "2026-11-21T10:05:00Z");
        let canceled_earlier = event(&run, "run.canceled", "2026-11-21T10:01:00Z");
        assert_eq!(ledger.progress(&run, "a").await.unwrap(), None);

        ledger.advance(&started, "a", Some("C1 1.0")).await.unwrap();
        let after_start = ledger.progress(&run, "a").await.unwrap().unwrap();
        assert_eq!(after_start.object_id.as_deref(), Some("C1 1.0"));
        assert!(!after_start.ended);
        assert_eq!(after_start.supersedes(&finished), None);

        // The end moves it on and keeps the object; an older event cannot move it back.
        ledger.advance(&finished, "a", None).await.unwrap();
        ledger.advance(&canceled_earlier, "a", None).await.unwrap();
        let after_end = ledger.progress(&run, "a").await.unwrap().unwrap();
        assert_eq!(after_end.event_type, "run.finished");
        assert_eq!(after_end.object_id.as_deref(), Some("C1 1.0"));
        assert!(after_end.ended);
        assert_eq!(
            after_end.supersedes(&started).unwrap(),
            "superseded: the run already ended (`run.finished` applied)"
        );
        assert_eq!(
            after_end.supersedes(&canceled_earlier).unwrap(),
            "superseded: a later event (`run.finished`) was applied"
        );
        // Another integration has its own progress.
        assert_eq!(ledger.progress(&run, "b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn sqlite_progress_moves_forward_only() {
        let dir = tempfile::tempdir().unwrap();
        progress_moves_forward_only(Ledger::open(&sqlite_config(&dir)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_progress_moves_forward_only() {
        progress_moves_forward_only(Ledger::open(&postgres_config().await).await.unwrap()).await;
    }
}
