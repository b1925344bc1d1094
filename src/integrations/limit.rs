//! Per-credential rate limits: one `governor` limiter per credential, shared by every
//! integration of the process that uses that credential, since providers count per credential.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::failure::DeliveryError;

/// How many requests one credential may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests that may go at once before the per-minute pace applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    5
}

impl RateLimit {
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }

    /// Rules the grammar cannot express, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.per_minute == 0 {
            problems.push("`rate_limit.per_minute` must be at least 1".to_owned());
        }
        if self.burst == 0 {
            problems.push("`rate_limit.burst` must be at least 1".to_owned());
        }
        problems
    }

    fn quota(&self) -> Quota {
        let per_minute = NonZeroU32::new(self.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::per_minute(per_minute).allow_burst(burst)
    }
}

/// A limiter for one credential.
#[derive(Clone)]
pub struct Limiter(Arc<DefaultDirectRateLimiter>);

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter")
    }
}

impl Limiter {
    /// The process-wide limiter of the credential identified by `parts` (hashed: the registry
    /// never holds a secret in the clear). The first integration to ask sets the quota.
    pub fn for_credential(parts: &[&str], limit: RateLimit) -> Self {
        static REGISTRY: OnceLock<Mutex<HashMap<[u8; 32], Limiter>>> = OnceLock::new();
        let mut hash = Sha256::new();
        for part in parts {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let key: [u8; 32] = hash.finalize().into();
        let mut registry = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry
            .entry(key)
            .or_insert_with(|| Limiter(Arc::new(RateLimiter::direct(limit.quota()))))
            .clone()
    }

    /// Waits for a permit; gives up with [`DeliveryError::Canceled`] when `cancel` fires.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Result<(), DeliveryError> {
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(DeliveryError::Canceled),
            () = self.0.until_ready() => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiting_for_a_permit_stops_at_cancellation() {
        let id = format!("{:x}", rand::random::<u64>());
        let limiter = Limiter::for_credential(&["test", &id], RateLimit::new(1, 1));
        let cancel = CancellationToken::new();
        limiter.acquire(&cancel).await.unwrap();
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            let cancel = cancel.clone();
            async move { limiter.acquire(&cancel).await }
        });
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends at cancellation")
            .unwrap();
        assert_eq!(result, Err(DeliveryError::Canceled));
    }

    #[test]
    fn one_credential_shares_one_limiter() {
        let id = format!("{:x}", rand::random::<u64>());
        let a = Limiter::for_credential(&["test", &id], RateLimit::new(60, 1));
        let b = Limiter::for_credential(&["test", &id], RateLimit::new(60, 1));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let other = Limiter::for_credential(&["test", &id, "other"], RateLimit::new(60, 1));
        assert!(!Arc::ptr_eq(&a.0, &other.0));
    }

    #[test]
    fn zero_limits_are_reported() {
        assert_eq!(RateLimit::new(0, 0).problems().len(), 2);
        assert!(RateLimit::new(80, 5).problems().is_empty());
    }
}
