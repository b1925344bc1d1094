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

/// One write, owning its values so that it can wait in the queue.
#[derive(Debug)]
pub(super) enum Write {
    Claim {
        run_id: String,
        event_type: String,
        integration: String,
        attempt: i64,
        event_id: String,
        claim_id: String,
        lease_until: i64,
        now: i64,
    },
    Record {
        state: &'static str,
        attempts: i64,
        last_error: Option<String>,
        receipt: Option<String>,
        now: i64,
        run_id: String,
        event_type: String,
        integration: String,
        claim_id: String,
    },
}

/// What a write found.
#[derive(Debug)]
pub(super) enum Written {
    /// The claim is ours; `resumed` when it took over a row an earlier attempt left.
    Claimed { resumed: bool },
    /// Someone else's row: its state and lease.
    Taken {
        state: String,
        lease_until: Option<i64>,
    },
    /// Rows a record changed (0: the claim was lost).
    Recorded(u64),
}

impl Write {
    /// Runs the write on `connection` (a transaction's or a pooled one).
    pub(super) async fn run(&self, connection: &mut AnyConnection) -> Result<Written, sqlx::Error> {
        match self {
            Write::Claim {
                run_id,
                event_type,
                integration,
                attempt,
                event_id,
                claim_id,
                lease_until,
                now,
            } => {
                let claimed = sqlx::query(sql::CLAIM)
                    .bind(run_id.as_str())
                    .bind(event_type.as_str())
                    .bind(integration.as_str())
                    .bind(*attempt)
                    .bind(event_id.as_str())
                    .bind(claim_id.as_str())
                    .bind(*lease_until)
                    .bind(*now)
                    .bind(*now)
                    .fetch_optional(&mut *connection)
                    .await?;
                if let Some(row) = claimed {
                    // A fresh row carries this call's `now`; a row taken over keeps its own.
                    // (A row created in the same millisecond reads as fresh.)
                    let created_at: i64 = row.try_get(1)?;
                    return Ok(Written::Claimed {
                        resumed: created_at != *now,
                    });
                }
                let row = sqlx::query(sql::CURRENT)
                    .bind(run_id.as_str())
                    .bind(event_type.as_str())
                    .bind(integration.as_str())
                    .fetch_one(&mut *connection)
                    .await?;
                Ok(Written::Taken {
                    state: row.try_get(0)?,
                    lease_until: row.try_get(1)?,
                })
            }
            Write::Record {
                state,
                attempts,
                last_error,
                receipt,
                now,
                run_id,
                event_type,
                integration,
                claim_id,
            } => {
                let result = sqlx::query(sql::RECORD)
                    .bind(*state)
                    .bind(*attempts)
                    .bind(last_error.as_deref())
                    .bind(receipt.as_deref())
                    .bind(*now)
                    .bind(run_id.as_str())
                    .bind(event_type.as_str())
                    .bind(integration.as_str())
                    .bind(claim_id.as_str())
                    .execute(&mut *connection)
                    .await?;
                Ok(Written::Recorded(result.rows_affected()))
            }
        }
    }
}

/// A write waiting for its transaction, and who to tell.
struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written, sqlx::Error>>,
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

    /// Queues `write` and waits until it is committed (or has failed).
    pub(super) async fn submit(&self, write: Write) -> Result<Written, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let gone = || sqlx::Error::PoolClosed;
        self.jobs.send(Job { write, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes whatever has queued up (at most [`MAX_BATCH`]) and commits it as one transaction.
async fn writer(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match together(&pool, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(_) => {
                // Rolled back: nothing of it happened. Each write again on its own, so that
                // each caller gets its own answer.
                for job in batch.drain(..) {
                    let result = alone(&pool, &job.write).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

async fn together(pool: &AnyPool, batch: &[Job]) -> Result<Vec<Written>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        results.push(job.write.run(&mut transaction).await?);
    }
    transaction.commit().await?;
    Ok(results)
}

/// One write in its own (implicit) transaction.
pub(super) async fn alone(pool: &AnyPool, write: &Write) -> Result<Written, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    write.run(&mut connection).await
}
