//! Secrets the workers on one ledger share without any config: the first to ask generates one,
//! every worker (and every restart) reads that same one back.

use sqlx::Row as _;

use super::{Ledger, now_ms};

/// The name of the key that seals retry and queued-part headers.
const HEADER_SEAL: &str = "header-seal";

/// Inserted only if absent: when two workers start at once, the first insert wins for both.
const INSERT: &str = "
INSERT INTO worker_secrets (name, secret, created_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO NOTHING";

const SELECT: &str = "SELECT secret FROM worker_secrets WHERE name = $1";

impl Ledger {
    /// The 32-byte key that seals the headers of this ledger's workers' retries and queued
    /// parts: generated (from the thread's CSPRNG) on first use, then the same for all of them.
    pub async fn seal_key(&self) -> Result<Vec<u8>, sqlx::Error> {
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(INSERT)
            .bind(HEADER_SEAL)
            .bind(candidate)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(SELECT)
            .bind(HEADER_SEAL)
            .fetch_one(&self.pool)
            .await?;
        let secret: String = row.try_get(0)?;
        hex::decode(secret).map_err(|err| sqlx::Error::Decode(Box::new(err)))
    }
}
