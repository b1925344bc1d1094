//! The delivery ledger: one row per (run, event type, integration), so that each notification
//! has one effect even when the broker delivers an event twice or the dashboard cancels a run
//! twice. Embedded SQLite by default; PostgreSQL when several workers share the work. Both run
//! the same portable SQL: through sqlx's `Any` driver, except SQLite's claims and records,
//! which its writer thread group-commits through rusqlite ([`sqlite`]) and where a claim is
//! decided in Rust inside the writer's transaction. A claim's lease is
//! renewed while its delivery runs ([`Ledger::renew`]).

mod lease;
mod patience;
mod progress;
mod secrets;
mod sql;
mod sqlite;
mod state;
mod transport;
mod write;

use std::path::Path;
use std::time::Duration;

use sqlite::SqliteWriter;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use write::{ClaimWrite, Claimed, RecordWrite};

pub use write::WriteError;

pub use patience::{Record, outage_backoff};
pub use progress::{Applied, Progress};
pub use state::{Claim, ClaimId, Entry, State, UnknownState};

use crate::config::LedgerConfig;
use crate::event::RunId;
use crate::integrations::IntegrationName;
use crate::telemetry::metrics;

/// What identifies one notification.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub run_id: &'a RunId,
    pub event_type: &'a str,
    pub integration: &'a IntegrationName,
}

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the ledger directory {0}: {1}")]
    Directory(String, std::io::Error),
    /// The SQLite file cannot be opened or created (a folder the process may not write, say).
    #[error("cannot open the SQLite ledger {0} (is its folder writable by this user?): {1}")]
    File(String, sqlx::Error),
    #[error("cannot open the SQLite ledger {0} for writing: {1}")]
    Writer(String, Box<dyn std::error::Error + Send + Sync>),
}

/// What `cancel` did, per integration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CancelReport {
    /// Deliveries that were pending (in flight or waiting for a retry), now canceled.
    pub canceled: Vec<(String, State)>,
    /// Integrations that had not started for this run and now never will.
    pub prevented: Vec<String>,
    /// Integrations already finished (or canceled before): left as they were.
    pub unchanged: Vec<(String, State)>,
}

/// A handle to the ledger database (cheap to clone).
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    /// SQLite only: claims and records are group-committed on a thread of their own
    /// (PostgreSQL takes concurrent writers as they come).
    writer: Option<SqliteWriter>,
}

impl Ledger {
    /// Connects (creating the SQLite file and its directory if needed) and applies migrations.
    pub async fn open(config: &LedgerConfig) -> Result<Self, LedgerError> {
        install_default_drivers();
        let (url, sqlite) = match &config.url {
            Some(url) => (url.expose().to_owned(), false),
            None => {
                if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|err| LedgerError::Directory(dir.display().to_string(), err))?;
                }
                (sqlite_url(&config.path), true)
            }
        };
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time and every ledger statement writes: with several
            // connections they collide on the write lock and SQLite's busy handler sleeps in
            // milliseconds. One connection queues them in sqlx instead (measured by
            // `cargo bench --bench throughput`; see docs/performance.md).
            .max_connections(if sqlite { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        // The `Any` driver keeps SQLite's rollback journal: ask for WAL. With WAL,
                        // NORMAL sync is durable across process crashes (a power loss may forget
                        // the last commits, never corrupt the file) and saves an fsync a commit.
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|err| match sqlite {
                true => LedgerError::File(config.path.display().to_string(), err),
                false => LedgerError::Database(err),
            })?;
        if !sqlite {
            transport::report(&pool, &url).await;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writer = match sqlite {
            true => Some(SqliteWriter::start(&config.path)?),
            false => None,
        };
        Ok(Self { pool, writer })
    }

    /// Claims a delivery for this attempt: free, failed and dead rows, and in-flight rows
    /// whose lease has expired (their worker died) can be claimed; delivered, skipped and
    /// canceled ones cannot. Safe under concurrency: one atomic upsert decides.
    pub async fn claim(
        &self,
        key: Key<'_>,
        event_id: &str,
        attempt: u32,
        lease: Duration,
    ) -> Result<Claim, WriteError> {
        let started = std::time::Instant::now();
        let claim = self.try_claim(key, event_id, attempt, lease).await;
        metrics::ledger_time("claim", started.elapsed());
        claim
    }

    async fn try_claim(
        &self,
        key: Key<'_>,
        event_id: &str,
        attempt: u32,
        lease: Duration,
    ) -> Result<Claim, WriteError> {
        let now = now_ms();
        let claim_id = ClaimId::new();
        let written = self
            .claim_write(ClaimWrite {
                run_id: key.run_id.as_str().to_owned(),
                event_type: key.event_type.to_owned(),
                integration: key.integration.to_string(),
                attempt: i64::from(attempt),
                event_id: event_id.to_owned(),
                claim_id: claim_id.as_str().to_owned(),
                lease_until: now + lease.as_millis() as i64,
                now,
            })
            .await?;
        let (state, lease_until) = match written {
            Claimed::Ours { resumed, progress } => {
                return Ok(Claim::Claimed(claim_id.resuming(resumed, progress)));
            }
            Claimed::Taken { state, lease_until } => (State::parse(&state)?, lease_until),
            Claimed::Waiting => return Ok(Claim::Waiting),
        };
        Ok(match state {
            State::Canceled => Claim::Canceled,
            State::InFlight => Claim::Busy {
                lease_until_ms: lease_until.unwrap_or(now),
            },
            done => Claim::Done(done),
        })
    }

    /// Records the end of a claimed attempt. Returns `false` when the claim was lost meanwhile
    /// (canceled by an operator, or taken over after its lease expired): nothing is written.
    pub async fn record(
        &self,
        key: Key<'_>,
        claim: &ClaimId,
        record: &Record<'_>,
    ) -> Result<bool, WriteError> {
        let started = std::time::Instant::now();
        let written = self
            .record_write(RecordWrite::new(key, claim, record, now_ms()))
            .await;
        metrics::ledger_time("record", started.elapsed());
        Ok(written? == 1)
    }

    /// Group-committed on SQLite, straight to the pool on PostgreSQL.
    async fn claim_write(&self, write: ClaimWrite) -> Result<Claimed, WriteError> {
        match &self.writer {
            Some(writer) => writer.claim(write).await,
            None => write::claim_alone(&self.pool, &write).await,
        }
    }

    /// Group-committed on SQLite, straight to the pool on PostgreSQL.
    async fn record_write(&self, write: RecordWrite) -> Result<u64, WriteError> {
        match &self.writer {
            Some(writer) => writer.record(write).await,
            None => write::record_alone(&self.pool, &write).await,
        }
    }

    /// Every delivery of one run, oldest first.
    pub async fn history(&self, run_id: &RunId) -> Result<Vec<Entry>, sqlx::Error> {
        let rows = sqlx::query(sql::HISTORY)
            .bind(run_id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Entry::from_row).collect()
    }

    /// Cancels the run's pending deliveries to `integrations` and keeps those not started from
    /// starting. Idempotent: a second call changes nothing and says so.
    pub async fn cancel(
        &self,
        run_id: &RunId,
        event_type: &str,
        integrations: &[&IntegrationName],
    ) -> Result<CancelReport, sqlx::Error> {
        let now = now_ms();
        let mut report = CancelReport::default();
        for &integration in integrations {
            let key = Key {
                run_id,
                event_type,
                integration,
            };
            let before = self.state(key).await?;
            match before {
                None => {
                    let inserted = sqlx::query(sql::PREVENT)
                        .bind(key.run_id.as_str())
                        .bind(key.event_type)
                        .bind(key.integration.as_str())
                        .bind(now)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    if inserted.rows_affected() == 1 {
                        report.prevented.push(integration.to_string());
                    }
                }
                Some(state @ (State::InFlight | State::Failed)) => {
                    let updated = sqlx::query(sql::CANCEL)
                        .bind(now)
                        .bind(key.run_id.as_str())
                        .bind(key.event_type)
                        .bind(key.integration.as_str())
                        .execute(&self.pool)
                        .await?;
                    if updated.rows_affected() == 1 {
                        report.canceled.push((integration.to_string(), state));
                    }
                }
                Some(state) => report.unchanged.push((integration.to_string(), state)),
            }
        }
        Ok(report)
    }

    /// Deletes finished rows last updated before `older_than` ago; returns how many.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, sqlx::Error> {
        let before = now_ms() - older_than.as_millis() as i64;
        let result = sqlx::query(sql::PRUNE)
            .bind(before)
            .execute(&self.pool)
            .await?;
        self.prune_progress(before).await?;
        Ok(result.rows_affected())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[doc(hidden)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
