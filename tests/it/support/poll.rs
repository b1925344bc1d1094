//! Waiting for something to happen, by polling: tests never sleep to prove a thing.

use std::future::Future;
use std::time::Duration;

/// Polls `condition` every 25 ms until it holds. `fuse` only stops a test that would otherwise
/// hang: it is generous, and never the thing a test asserts.
pub async fn wait_until<F, Fut>(what: &str, fuse: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + fuse;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {fuse:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls an admin endpoint until it answers `status` (`/readyz` 200 once the worker consumes).
pub async fn wait_for_status(url: &str, status: u16) {
    wait_until(
        &format!("{url} answers {status}"),
        Duration::from_secs(30),
        || async { matches!(reqwest::get(url).await, Ok(r) if r.status() == status) },
    )
    .await;
}
