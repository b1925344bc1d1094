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

#[cfg(test)]
mod tests {
    use super::super::tests::{postgres_config, sqlite_config};
    use super::*;

    #[tokio::test]
    async fn the_seal_key_is_made_once_and_read_back_by_every_handle_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ledger::open(&sqlite_config(&dir)).await.unwrap();
        let key = first.seal_key().await.unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(first.seal_key().await.unwrap(), key);
        first.close().await;
        // A restart, or another process on the same file.
        let again = Ledger::open(&sqlite_config(&dir)).await.unwrap();
        assert_eq!(again.seal_key().await.unwrap(), key);
    }

    #[tokio::test]
    async fn replicas_starting_together_on_postgresql_share_one_key() {
        let config = postgres_config().await;
        let (a, b) = tokio::join!(Ledger::open(&config), Ledger::open(&config));
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ka, kb) = tokio::join!(a.seal_key(), b.seal_key());
        assert_eq!(ka.unwrap(), kb.unwrap());
    }
}
