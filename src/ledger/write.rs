//! The ledger's two hot writes (claim, record) as values, so that they can run alone or be
//! group-committed: on SQLite, writes that arrive together run in one transaction and each
//! caller hears back only once that transaction has committed. "Claim before send" and
//! "record before ack" hold as before; what changes is one commit for many writes instead of
//! one each. A batch that fails is rolled back and its writes run again one by one, so that one
//! bad write cannot fail its neighbours.

use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::sql;

/// At most this many writes share a transaction (twice the default prefetch's worth of claims).
const MAX_BATCH: usize = 128;

/// A claim, owning its values so that it can wait in the queue.
#[derive(Debug)]
pub(super) struct ClaimWrite {
    pub run_id: String,
    pub event_type: String,
    pub integration: String,
    pub attempt: i64,
    pub event_id: String,
    pub claim_id: String,
    pub lease_until: i64,
    pub now: i64,
}

/// The record of a claimed attempt's end, owning its values.
#[derive(Debug)]
pub(super) struct RecordWrite {
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub receipt: Option<String>,
    pub now: i64,
    pub run_id: String,
    pub event_type: String,
    pub integration: String,
    pub claim_id: String,
}

/// What a claim found.
#[derive(Debug)]
pub(super) enum Claimed {
    /// The claim is ours; `resumed` when it took over a row an earlier attempt left.
    Ours { resumed: bool },
    /// Someone else's row: its state and lease.
    Taken {
        state: String,
        lease_until: Option<i64>,
    },
}

impl ClaimWrite {
    /// Runs the claim on `connection` (a transaction's or a pooled one).
    async fn run(&self, connection: &mut AnyConnection) -> Result<Claimed, sqlx::Error> {
        let claimed = sqlx::query(sql::CLAIM)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .bind(self.attempt)
            .bind(self.event_id.as_str())
            .bind(self.claim_id.as_str())
            .bind(self.lease_until)
            .bind(self.now)
            .bind(self.now)
            .fetch_optional(&mut *connection)
            .await?;
        if let Some(row) = claimed {
            // A fresh row carries this call's `now`; a row taken over keeps its own.
            // (A row created in the same millisecond reads as fresh.)
            let created_at: i64 = row.try_get(1)?;
            return Ok(Claimed::Ours {
                resumed: created_at != self.now,
            });
        }
        let row = sqlx::query(sql::CURRENT)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .fetch_one(&mut *connection)
            .await?;
        Ok(Claimed::Taken {
            state: row.try_get(0)?,
            lease_until: row.try_get(1)?,
        })
    }
}

impl RecordWrite {
    /// Runs the record on `connection`; the rows it changed (0: the claim was lost).
    async fn run(&self, connection: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(sql::RECORD)
            .bind(self.state)
            .bind(self.attempts)
            .bind(self.last_error.as_deref())
            .bind(self.receipt.as_deref())
            .bind(self.now)
            .bind(self.run_id.as_str())
            .bind(self.event_type.as_str())
            .bind(self.integration.as_str())
            .bind(self.claim_id.as_str())
            .execute(&mut *connection)
            .await?;
        Ok(result.rows_affected())
    }
}

type Reply<T> = oneshot::Sender<Result<T, sqlx::Error>>;

/// A write waiting for its transaction, and who to tell.
enum Job {
    Claim(ClaimWrite, Reply<Claimed>),
    Record(RecordWrite, Reply<u64>),
}

/// A write done inside a transaction, its answer held back until the commit.
enum Done {
    Claim(ClaimWrite, Reply<Claimed>, Claimed),
    Record(RecordWrite, Reply<u64>, u64),
}

impl Job {
    /// Runs the write on `connection`; the answer goes out later, after the commit.
    async fn run(self, connection: &mut AnyConnection) -> Result<Done, (Job, sqlx::Error)> {
        match self {
            Job::Claim(write, reply) => match write.run(connection).await {
                Ok(claimed) => Ok(Done::Claim(write, reply, claimed)),
                Err(err) => Err((Job::Claim(write, reply), err)),
            },
            Job::Record(write, reply) => match write.run(connection).await {
                Ok(rows) => Ok(Done::Record(write, reply, rows)),
                Err(err) => Err((Job::Record(write, reply), err)),
            },
        }
    }

    /// Runs the write in its own (implicit) transaction and answers at once.
    async fn alone(self, pool: &AnyPool) {
        match self {
            Job::Claim(write, reply) => {
                let _ = reply.send(claim_alone(pool, &write).await);
            }
            Job::Record(write, reply) => {
                let _ = reply.send(record_alone(pool, &write).await);
            }
        }
    }
}

impl Done {
    /// Sends the answer: the transaction has committed.
    fn answer(self) {
        match self {
            Done::Claim(_, reply, claimed) => {
                let _ = reply.send(Ok(claimed));
            }
            Done::Record(_, reply, rows) => {
                let _ = reply.send(Ok(rows));
            }
        }
    }

    /// The write again, its answer forgotten: the transaction was rolled back.
    fn undo(self) -> Job {
        match self {
            Done::Claim(write, reply, _) => Job::Claim(write, reply),
            Done::Record(write, reply, _) => Job::Record(write, reply),
        }
    }
}

/// The queue in front of the group-committing writer task (cheap to clone).
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current runtime; it ends when every handle is dropped.
    pub(super) fn start(pool: AnyPool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer(pool, queue));
        Self { jobs }
    }

    /// Queues a claim and waits until it is committed (or has failed).
    pub(super) async fn claim(&self, write: ClaimWrite) -> Result<Claimed, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Claim(write, reply), answer).await
    }

    /// Queues a record and waits until it is committed (or has failed).
    pub(super) async fn record(&self, write: RecordWrite) -> Result<u64, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Record(write, reply), answer).await
    }

    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let gone = || sqlx::Error::PoolClosed;
        self.jobs.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes whatever has queued up (at most [`MAX_BATCH`]) and commits it as one transaction.
async fn writer(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(jobs) = together(&pool, &mut batch).await {
            // Rolled back: nothing of it happened. Each write again on its own, so that each
            // caller gets its own answer.
            for job in jobs {
                job.alone(&pool).await;
            }
        }
    }
}

/// Runs `batch` (emptying it) in one transaction and answers each write once it has
/// committed; on failure returns the writes, none of which happened.
async fn together(pool: &AnyPool, batch: &mut Vec<Job>) -> Result<(), Vec<Job>> {
    let mut jobs = batch.drain(..);
    let Ok(mut transaction) = pool.begin().await else {
        return Err(jobs.collect());
    };
    let mut done = Vec::with_capacity(jobs.len());
    while let Some(job) = jobs.next() {
        match job.run(&mut transaction).await {
            Ok(answer) => done.push(answer),
            Err((failed, _)) => {
                let undone = done.into_iter().map(Done::undo);
                return Err(undone.chain([failed]).chain(jobs).collect());
            }
        }
    }
    if transaction.commit().await.is_err() {
        return Err(done.into_iter().map(Done::undo).collect());
    }
    done.into_iter().for_each(Done::answer);
    Ok(())
}

/// A claim in its own (implicit) transaction.
pub(super) async fn claim_alone(
    pool: &AnyPool,
    write: &ClaimWrite,
) -> Result<Claimed, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    write.run(&mut connection).await
}

/// A record in its own (implicit) transaction.
pub(super) async fn record_alone(pool: &AnyPool, write: &RecordWrite) -> Result<u64, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    write.run(&mut connection).await
}
