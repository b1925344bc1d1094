//! The admin HTTP listener: `/healthz` (alive: the consumer makes progress), `/readyz`
//! (consuming, and the ledger answers) and `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;
use crate::telemetry::metrics;

/// What liveness and readiness depend on, shared between the worker and the listener.
#[derive(Debug, Clone)]
pub struct Health {
    state: Arc<Progress>,
}

#[derive(Debug)]
struct Progress {
    consuming: AtomicBool,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last progress: a message settled, or work arriving
    /// after an idle spell.
    last_progress: AtomicU64,
    /// Messages taken and not yet settled.
    unsettled: AtomicU64,
    stall_after: Duration,
}

impl Health {
    /// `stall_after`: how long messages may wait without any being settled before the
    /// process counts as stuck.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            state: Arc::new(Progress {
                consuming: AtomicBool::new(false),
                epoch: Instant::now(),
                last_progress: AtomicU64::new(0),
                unsettled: AtomicU64::new(0),
                stall_after,
            }),
        }
    }

    pub fn set_consuming(&self, consuming: bool) {
        self.state.consuming.store(consuming, Ordering::Relaxed);
        metrics::broker_connected(consuming);
    }

    pub fn is_consuming(&self) -> bool {
        self.state.consuming.load(Ordering::Relaxed)
    }

    /// A message was taken; the clock starts if the worker was idle. It counts as settled when
    /// the guard drops.
    pub fn take(&self) -> Taken<'_> {
        self.taken();
        Taken { health: self }
    }

    /// A message was taken; the clock starts if the worker was idle.
    pub fn taken(&self) {
        if self.state.unsettled.fetch_add(1, Ordering::Relaxed) == 0 {
            self.stamp();
        }
    }

    /// A message was settled (acked or nacked).
    pub fn progress(&self) {
        self.stamp();
        self.state.unsettled.fetch_sub(1, Ordering::Relaxed);
    }

    fn stamp(&self) {
        let now = self.state.epoch.elapsed().as_millis() as u64;
        self.state.last_progress.store(now, Ordering::Relaxed);
    }

    /// How long messages have waited with none settled, if longer than the bound.
    pub fn stalled_for(&self) -> Option<Duration> {
        if self.state.unsettled.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let last = Duration::from_millis(self.state.last_progress.load(Ordering::Relaxed));
        let waited = self.state.epoch.elapsed().saturating_sub(last);
        (waited > self.state.stall_after).then_some(waited)
    }
}

/// The ledger, once it is open: readiness waits for it.
pub type LedgerSlot = Arc<std::sync::OnceLock<Ledger>>;

/// Binds `addr` now (so a taken port fails the start) and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    ledger: LedgerSlot,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let prometheus = metrics::install();
    let app = Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state((health, ledger))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
    Ok(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }))
}

async fn live(State((health, _)): State<(Health, LedgerSlot)>) -> (StatusCode, String) {
    match health.stalled_for() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(waited) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: no message settled for {} s while messages wait\n",
                waited.as_secs()
            ),
        ),
    }
}

async fn ready(State((health, ledger)): State<(Health, LedgerSlot)>) -> (StatusCode, Json<Value>) {
    let consuming = health.is_consuming();
    let ledger_up = match ledger.get() {
        Some(ledger) => matches!(
            tokio::time::timeout(Duration::from_secs(1), ledger.ping()).await,
            Ok(Ok(()))
        ),
        None => false,
    };
    let ready = consuming && ledger_up;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let broker = if consuming {
        "consuming"
    } else {
        "not consuming"
    };
    let ledger = if ledger_up {
        "reachable"
    } else {
        "unreachable"
    };
    (
        status,
        Json(json!({ "ready": ready, "broker": broker, "ledger": ledger })),
    )
}

/// A message taken and not yet settled; dropping it counts the progress.
#[derive(Debug)]
pub struct Taken<'a> {
    health: &'a Health,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.health.progress();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_not_stalled_and_waiting_without_progress_is() {
        let health = Health::new(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(health.stalled_for(), None, "idle for long is fine");
        health.taken();
        assert_eq!(
            health.stalled_for(),
            None,
            "work that just arrived is not stalled"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(health.stalled_for().is_some());
        health.progress();
        assert_eq!(health.stalled_for(), None);
    }
}
