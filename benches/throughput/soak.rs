//! The optional soak (`SOAK=1`): `SOAK_EVENTS` (default 1,000,000) through the fan-out worker,
//! publishing while it consumes, with the worker's RSS every 100,000 events.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::child::WorkerProcess;
use crate::receiver::Seen;
use crate::scenario::{Scenario, Shape};

const SOAK_CHECKPOINT: usize = 100_000;
/// The soak keeps at most this many events waiting in the queue.
const SOAK_BACKLOG: usize = 20_000;

/// `SOAK_EVENTS` through the fan-out worker, publishing while it consumes (at most
/// `SOAK_BACKLOG` waiting), with the worker's RSS every `SOAK_CHECKPOINT` events.
pub async fn soak(broker: &Broker, seen: &Arc<Seen>, url: &str, dir: &Path) -> anyhow::Result<()> {
    let total = std::env::var("SOAK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let scenario = Scenario::new("soak", &Shape::FanOut.integrations(url), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            let before = seen.requests();
            let (mut process, _) = WorkerProcess::start(
                WorkerProcess::library(&scenario.config_path),
                &scenario.admin,
            )
            .await?;
            let started = Instant::now();
            let delivered = |seen: &Seen| ((seen.requests() - before) / 5) as usize;
            let mut published = 0;
            let mut checkpoint = SOAK_CHECKPOINT;
            let mut first = None;
            while checkpoint <= total {
                process.check_alive()?;
                while published < total && published < delivered(seen) + SOAK_BACKLOG {
                    let chunk = 1_000.min(total - published);
                    broker
                        .prepublish(&topology, &format!("{}-{published}", scenario.id), chunk)
                        .await;
                    published += chunk;
                }
                if delivered(seen) >= checkpoint {
                    let (rss, hwm) = process.rss_kib();
                    let rss_mib = rss as f64 / 1024.0;
                    let base = *first.get_or_insert(rss_mib);
                    println!(
                        "{{\"scenario\":\"soak\",\"events\":{checkpoint},\"seconds\":{:.0},\"rss_mib\":{rss_mib:.1},\"peak_rss_mib\":{:.1},\"growth_since_first_pct\":{:.1}}}",
                        started.elapsed().as_secs_f64(),
                        hwm as f64 / 1024.0,
                        (rss_mib - base) / base * 100.0
                    );
                    checkpoint += SOAK_CHECKPOINT;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            process.stop();
            Ok(())
        })
        .await
}
