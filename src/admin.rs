//! The admin HTTP listener: `/healthz` (alive: the consumer makes progress), `/readyz`
//! (consuming, and the ledger answers; otherwise which is down, and why when an operator must
//! act) and `/metrics` (Prometheus text).

mod listener;
mod readiness;

pub use listener::HEADER_READ_TIMEOUT;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
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
    /// Why the worker cannot consume, when an operator must act (a name taken on the broker).
    broker_problem: Mutex<Option<String>>,
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
                broker_problem: Mutex::new(None),
                epoch: Instant::now(),
                last_progress: AtomicU64::new(0),
                unsettled: AtomicU64::new(0),
                stall_after,
            }),
        }
    }

    /// Consuming or not; consuming clears any broker problem.
    pub fn set_consuming(&self, consuming: bool) {
        self.state.consuming.store(consuming, Ordering::Relaxed);
        metrics::broker_connected(consuming);
        if consuming {
            self.set_broker_problem(None);
        }
    }

    /// Why the worker cannot consume, as a sentence for `/readyz`, or `None`.
    pub fn set_broker_problem(&self, problem: Option<String>) {
        *self
            .state
            .broker_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problem;
    }

    fn broker_problem(&self) -> Option<String> {
        self.state
            .broker_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

/// What the handlers share.
#[derive(Clone)]
struct AdminState {
    health: Health,
    ledger: LedgerSlot,
    /// Whether the ledger answered, asked at most once per [`readiness::REFRESH`].
    ledger_up: Arc<readiness::Refreshed>,
}

/// Serves on `listener` (bound by the caller, so a taken port fails the start) until
/// `shutdown`.
pub fn serve(
    listener: TcpListener,
    health: Health,
    ledger: LedgerSlot,
    shutdown: CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    // The address actually bound: with port 0 in `admin.listen`, the only place it is told.
    if let Ok(address) = listener.local_addr() {
        tracing::info!(listen = %address, "admin listening");
    }
    let prometheus = metrics::install();
    let state = AdminState {
        health,
        ledger,
        ledger_up: Arc::new(readiness::Refreshed::new(readiness::REFRESH)),
    };
    let app = Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(state)
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
    tokio::spawn(listener::serve(
        listener,
        app,
        HEADER_READ_TIMEOUT,
        shutdown,
    ))
}

async fn live(State(state): State<AdminState>) -> (StatusCode, String) {
    match state.health.stalled_for() {
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

async fn ready(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    let consuming = state.health.is_consuming();
    let ledger_up = match state.ledger.get() {
        // Not opened yet: nothing to save by remembering it, and the answer changes the moment
        // it is (a remembered "down" would hold back the start by up to a refresh).
        None => false,
        Some(ledger) => state.ledger_up.get(|| answers(ledger)).await,
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
    let mut body = json!({ "ready": ready, "broker": broker, "ledger": ledger });
    if let Some(problem) = state.health.broker_problem().filter(|_| !consuming) {
        body["problem"] = Value::String(problem);
    }
    (status, Json(body))
}

/// Whether the ledger is open and answers a ping within a second (timed as operation `ping`).
async fn answers(ledger: &Ledger) -> bool {
    let started = Instant::now();
    let answered = matches!(
        tokio::time::timeout(Duration::from_secs(1), ledger.ping()).await,
        Ok(Ok(()))
    );
    metrics::ledger_time("ping", started.elapsed());
    answered
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
