//! SQLite's hot writes (claims and records) on one thread of their own, group-committed: the
//! writes that queued up while the last transaction ran go in the next one, and each caller
//! hears back only once it has committed. "Claim before send" and "record before ack" hold as
//! before; what changes is one commit, and one wake-up of this thread, for many writes (through
//! sqlx, each statement of a batch, its `BEGIN` and its `COMMIT` was a round trip to sqlx's
//! SQLite thread). A batch that fails is rolled back and its writes run again one by one, each
//! in a transaction of its own, so that one bad write cannot fail its neighbours.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::oneshot;

use super::lease::RenewWrite;
use super::write::{ClaimWrite, Claimed, RecordWrite, WriteError};
use super::{LedgerError, Progress, progress, sql};

/// At most this many writes share a transaction (twice the default prefetch's worth of claims).
const MAX_BATCH: usize = 128;

/// The queue in front of the writer thread (cheap to clone); the thread ends when every
/// handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Opens its own connection to the ledger file (already created and migrated) and starts
    /// the writer thread.
    pub(super) fn start(path: &Path) -> Result<Self, LedgerError> {
        let failed = |err: Box<dyn std::error::Error + Send + Sync>| {
            LedgerError::Writer(path.display().to_string(), err)
        };
        let connection = open(path).map_err(|err| failed(err.into()))?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer(connection, queue))
            .map_err(|err| failed(err.into()))?;
        Ok(Self { jobs })
    }

    /// Queues a claim and waits until it is committed (or has failed).
    pub(super) async fn claim(&self, write: ClaimWrite) -> Result<Claimed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Claim(Pending::new(write, reply)), answer)
            .await
    }

    /// Queues a record and waits until it is committed (or has failed).
    pub(super) async fn record(&self, write: RecordWrite) -> Result<u64, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Record(Pending::new(write, reply)), answer)
            .await
    }

    /// Queues a lease renewal and waits until it is committed (or has failed).
    pub(super) async fn renew(&self, write: RenewWrite) -> Result<u64, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Renew(Pending::new(write, reply)), answer)
            .await
    }

    async fn submit<A>(&self, job: Job, answer: oneshot::Receiver<Reply<A>>) -> Reply<A> {
        self.jobs.send(job).map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

type Reply<A> = Result<A, WriteError>;

/// A write waiting for its transaction, who to tell, and its answer once it has run (sent only
/// after the commit).
struct Pending<W, A> {
    write: W,
    reply: oneshot::Sender<Reply<A>>,
    answer: Option<A>,
}

impl<W, A> Pending<W, A> {
    fn new(write: W, reply: oneshot::Sender<Reply<A>>) -> Self {
        Self {
            write,
            reply,
            answer: None,
        }
    }

    /// Runs the write and keeps its answer for later.
    fn run(
        &mut self,
        connection: &Connection,
        write: fn(&Connection, &W) -> rusqlite::Result<A>,
    ) -> rusqlite::Result<()> {
        self.answer = Some(write(connection, &self.write)?);
        Ok(())
    }

    /// Tells the caller: its answer once committed, or why not. (A caller that stopped waiting
    /// is not told.)
    fn finish(self, result: rusqlite::Result<()>) {
        let reply = match (result, self.answer) {
            (Ok(()), Some(answer)) => Ok(answer),
            (Err(err), _) => Err(err.into()),
            // Not reached: a batch commits only when each of its writes ran.
            (Ok(()), None) => Err(WriteError::Stopped),
        };
        let _ = self.reply.send(reply);
    }
}

enum Job {
    Claim(Pending<ClaimWrite, Claimed>),
    Record(Pending<RecordWrite, u64>),
    Renew(Pending<RenewWrite, u64>),
}

impl Job {
    fn run(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        match self {
            Job::Claim(pending) => pending.run(connection, claim),
            Job::Record(pending) => pending.run(connection, record),
            Job::Renew(pending) => pending.run(connection, renew),
        }
    }

    fn finish(self, result: rusqlite::Result<()>) {
        match self {
            Job::Claim(pending) => pending.finish(result),
            Job::Record(pending) => pending.finish(result),
            Job::Renew(pending) => pending.finish(result),
        }
    }
}

/// The writer's connection, with the pool connection's settings: WAL is the file's, the rest
/// per connection (with WAL, NORMAL sync is durable across process crashes).
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

/// Takes whatever has queued up (at most [`MAX_BATCH`]) and commits it as one transaction.
fn writer(connection: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch: Vec<Job> = std::iter::once(first)
            .chain(queue.try_iter().take(MAX_BATCH - 1))
            .collect();
        match together(&connection, &mut batch) {
            Ok(()) => batch.into_iter().for_each(|job| job.finish(Ok(()))),
            // Rolled back: nothing of it happened. Each write again in a transaction of its
            // own (a claim and a record are each more than one statement), so that each
            // caller gets its own answer.
            Err(_) => {
                for job in batch {
                    let mut alone = [job];
                    let result = together(&connection, &mut alone);
                    let [job] = alone;
                    job.finish(result);
                }
            }
        }
    }
}

/// Runs every write of `batch` in one transaction and commits it, or rolls it all back. The
/// transaction's statements are prepared once (rusqlite's `Transaction` parses them anew each
/// time, which cost as much as a claim when batches are small). `IMMEDIATE` takes the file's
/// write lock at the start, so that what a write reads stays true until it commits.
fn together(connection: &Connection, batch: &mut [Job]) -> rusqlite::Result<()> {
    let run = |sql: &str| connection.prepare_cached(sql)?.execute([]).map(drop);
    run("BEGIN IMMEDIATE")?;
    let written = batch
        .iter_mut()
        .try_for_each(|job| job.run(connection))
        .and_then(|()| run("COMMIT"));
    if written.is_err() {
        // Still open after a failed write, or a commit refused (say, busy).
        let _ = run("ROLLBACK");
    }
    written
}

/// The run's rows at the integration, one per event type: what a claim decides from.
const RUN_AT_INTEGRATION: &str = "
SELECT event_type, state, lease_until, created_at FROM deliveries
WHERE run_id = ?1 AND integration = ?2";

/// A new row, claimed.
const INSERT_CLAIM: &str = "
INSERT INTO deliveries
    (run_id, event_type, integration, state, attempts, event_id, claim_id, lease_until, created_at, updated_at)
VALUES (?1, ?2, ?3, 'in_flight', ?4, ?5, ?6, ?7, ?8, ?8)";

/// A row an earlier attempt left (failed, dead, or its lease expired), taken over. (`?N`, not
/// `$N`: SQLite numbers `$` parameters in the order they first appear.)
const TAKE_OVER: &str = "
UPDATE deliveries SET
    state = 'in_flight', attempts = ?4, event_id = ?5, claim_id = ?6, lease_until = ?7, updated_at = ?8
WHERE run_id = ?1 AND event_type = ?2 AND integration = ?3";

/// The claim as [`sql::CLAIM`] states it, decided here from the run's rows at the integration:
/// the transaction holds the file's write lock from its start (`BEGIN IMMEDIATE`), so nothing
/// comes between the look and the write. SQLite runs `sql::CLAIM`'s `INSERT … SELECT` from the
/// table it inserts into, and its `RETURNING`, through temporary tables that cost more than
/// the claim itself.
fn claim(connection: &Connection, write: &ClaimWrite) -> rusqlite::Result<Claimed> {
    let (mut own, mut other_in_flight) = (None, false);
    {
        let mut statement = connection.prepare_cached(RUN_AT_INTEGRATION)?;
        let mut rows = statement.query(params![write.run_id, write.integration])?;
        while let Some(row) = rows.next()? {
            let (state, lease_until): (String, Option<i64>) = (row.get(1)?, row.get(2)?);
            if row.get_ref(0)?.as_str()? == write.event_type {
                own = Some((state, lease_until, row.get::<_, i64>(3)?));
            } else if write.kept_waiting_by(&state, lease_until) {
                other_in_flight = true;
            }
        }
    }
    let created_at = match own {
        Some((state, lease_until, _)) if !write.claimable(&state, lease_until) => {
            return Ok(Claimed::Taken { state, lease_until });
        }
        _ if other_in_flight => return Ok(Claimed::Waiting),
        None => {
            connection
                .prepare_cached(INSERT_CLAIM)?
                .execute(claim_values(write))?;
            write.now
        }
        Some((_, _, created_at)) => {
            connection
                .prepare_cached(TAKE_OVER)?
                .execute(claim_values(write))?;
            created_at
        }
    };
    let progress = connection
        .prepare_cached(progress::READ)?
        .query_row(params![write.run_id, write.integration], |row| {
            Ok(Progress::from_columns(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
            ))
        })
        .optional()?;
    Ok(write.ours(created_at, progress))
}

/// `$1` to `$8` of [`INSERT_CLAIM`] and [`TAKE_OVER`].
fn claim_values(write: &ClaimWrite) -> [&dyn rusqlite::ToSql; 8] {
    [
        &write.run_id,
        &write.event_type,
        &write.integration,
        &write.attempt,
        &write.event_id,
        &write.claim_id,
        &write.lease_until,
        &write.now,
    ]
}

fn record(connection: &Connection, write: &RecordWrite) -> rusqlite::Result<u64> {
    // The effect happened: the run's progress moves on even if the claim was lost.
    if let Some(advance) = &write.advance {
        connection
            .prepare_cached(progress::ADVANCE)?
            .execute(params![
                advance.run_id,
                advance.integration,
                advance.event_time,
                advance.event_rank,
                advance.event_type,
                advance.object_id,
                advance.now,
            ])?;
    }
    let changed = connection.prepare_cached(sql::RECORD)?.execute(params![
        write.state,
        write.attempts,
        write.last_error,
        write.receipt,
        write.now,
        write.run_id,
        write.event_type,
        write.integration,
        write.claim_id,
    ])?;
    Ok(changed as u64)
}

fn renew(connection: &Connection, write: &RenewWrite) -> rusqlite::Result<u64> {
    let changed = connection.prepare_cached(sql::RENEW)?.execute(params![
        write.lease_until,
        write.run_id,
        write.event_type,
        write.integration,
        write.claim_id,
    ])?;
    Ok(changed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use crate::ledger::tests::sqlite_config;

    fn claim_of(run_id: &str) -> ClaimWrite {
        ClaimWrite {
            run_id: run_id.into(),
            event_type: "run.canceled".into(),
            integration: "hook".into(),
            attempt: 1,
            event_id: "evt".into(),
            claim_id: format!("claim-{run_id}"),
            lease_until: 2_000,
            now: 1_000,
        }
    }

    /// One write that fails rolls its batch back; the others are then written one by one and
    /// committed, and only the bad one hears of an error.
    #[tokio::test]
    async fn a_failing_write_fails_alone_and_its_batch_is_written_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = sqlite_config(&dir);
        Ledger::open(&config).await.unwrap().close().await;
        let connection = open(&config.path).unwrap();
        connection
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON deliveries WHEN NEW.run_id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
            )
            .unwrap();

        // Queued before the writer runs, so that all three share one batch.
        let (jobs, queue) = mpsc::channel();
        let mut answers = Vec::new();
        for run_id in ["good-1", "poison", "good-2"] {
            let (reply, answer) = oneshot::channel();
            jobs.send(Job::Claim(Pending::new(claim_of(run_id), reply)))
                .unwrap();
            answers.push(answer);
        }
        drop(jobs);
        writer(connection, queue);

        let answers: Vec<_> = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect();
        assert!(matches!(
            answers[0],
            Ok(Claimed::Ours { resumed: false, .. })
        ));
        assert!(matches!(
            answers[2],
            Ok(Claimed::Ours { resumed: false, .. })
        ));
        let error = answers[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("poisoned row"), "{error}");

        let check = open(&config.path).unwrap();
        let rows: Vec<String> = check
            .prepare("SELECT run_id FROM deliveries ORDER BY run_id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["good-1", "good-2"]);
    }
}
