//! The worker process assembled: integrations and templates, the ledger, the admin listener,
//! ledger pruning and the consumer, started in that order and stopped by one token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, Health, LedgerSlot};
use crate::broker::Seal;
use crate::config::{Config, LedgerConfig};
use crate::dispatch::Dispatcher;
use crate::integrations::{Integration, build_all, http_client};
use crate::ledger::Ledger;
use crate::retry::RetryPolicy;
use crate::worker::Worker;

/// Runs the worker until `shutdown` is cancelled (SIGTERM/SIGINT in the binary), then stops
/// consuming, lets in-flight deliveries finish within the grace period, hands back the rest,
/// and closes the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let integrations = build_all(&config.integrations, &config.templates_dir, &http_client())?;
    let admin = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin.listen)", config.admin.listen))?;
    run_built(config, integrations, admin, shutdown).await
}

/// As [`run`], with the admin listener bound by the caller instead of at `admin.listen`: a
/// caller that binds port 0 learns the port before the worker starts, and no one else can take
/// it in between (the tests' in-process workers).
pub async fn run_with_admin(
    config: Config,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let integrations = build_all(&config.integrations, &config.templates_dir, &http_client())?;
    run_built(config, integrations, admin, shutdown).await
}

async fn run_built(
    config: Config,
    integrations: Vec<Integration>,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health = Health::new(*config.worker.stall_timeout);
    let ledger_slot = LedgerSlot::default();
    let admin = admin::serve(admin, health.clone(), ledger_slot.clone(), shutdown.clone());
    let Some(ledger) = open_ledger(&config.ledger, &shutdown).await? else {
        return Ok(());
    };
    // Shared by every worker on this ledger: each vouches for the others' retries.
    let seal = ledger
        .seal_key()
        .await
        .context("cannot read the key that seals retries from the ledger")?;
    let _ = ledger_slot.set(ledger.clone());
    tokio::spawn(prune(
        ledger.clone(),
        *config.ledger.retention,
        *config.ledger.prune_interval,
        shutdown.clone(),
    ));

    let policy = RetryPolicy::new(config.retry.clone());
    let dispatcher = Dispatcher::new(integrations, policy, ledger.clone(), config.broker.prefetch);
    let worker = Arc::new(Worker::new(config, dispatcher, health, Seal::new(&seal)));
    worker.run(&shutdown).await;
    admin.await.context("admin listener panicked")??;
    ledger.close().await;
    Ok(())
}

/// Opens the ledger, waiting with backoff while it cannot be reached (`/readyz` says so
/// meanwhile), as during an outage at run time; or fails at once when `ledger.wait_at_start`
/// is off. `None` when shutdown came first.
async fn open_ledger(
    config: &LedgerConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Ledger>> {
    let mut backoff = crate::ledger::outage_backoff();
    loop {
        match Ledger::open(config).await {
            Ok(ledger) => return Ok(Some(ledger)),
            Err(err) if !config.wait_at_start => {
                return Err(err).context("cannot open the ledger");
            }
            Err(err) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                warn!(error = %err, retry_ms = wait.as_millis() as u64, "cannot open the ledger yet; not ready until it answers");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return Ok(None),
                }
            }
        }
    }
}

/// Deletes old finished deliveries from the ledger every `interval`, so it does not grow
/// without bound.
async fn prune(
    ledger: Ledger,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match ledger.prune(retention).await {
            Ok(0) => {}
            Ok(pruned) => info!(pruned, "pruned old deliveries from the ledger"),
            Err(err) => warn!(error = %err, "cannot prune the ledger"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
