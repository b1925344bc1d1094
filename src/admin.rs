//! The admin HTTP listener: `/healthz` (the process is up) and `/readyz` (consuming, and the
//! ledger answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;

/// What readiness depends on, shared between the worker and the listener.
#[derive(Debug, Clone, Default)]
pub struct Health {
    consuming: Arc<AtomicBool>,
}

impl Health {
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }
}

/// Binds `addr` now (so a taken port fails the start) and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    ledger: Ledger,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state((health, ledger));
    Ok(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }))
}

async fn ready(State((health, ledger)): State<(Health, Ledger)>) -> (StatusCode, Json<Value>) {
    let consuming = health.is_consuming();
    let ledger_up = matches!(
        tokio::time::timeout(Duration::from_secs(1), ledger.ping()).await,
        Ok(Ok(()))
    );
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
