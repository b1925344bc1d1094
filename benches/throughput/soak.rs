//! The soak: many events through the fan-out worker, publishing while it consumes, with the
//! worker's RSS ten times on the way; it fails when the RSS keeps growing (a leak).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::child::WorkerProcess;
use crate::receiver::Seen;
use crate::scenario::{Scenario, Shape};

/// The soak keeps at most this many events waiting in the queue.
const SOAK_BACKLOG: usize = 20_000;
/// How much the RSS may grow from the first report to any later one. The first is taken once a
/// tenth of the events are through, when connections and caches have filled. A worker that
/// kept every histogram sample (nobody scraping `/metrics`) grew 46 % from 100,000 to 200,000
/// events in a release build, and 9.7 % from 2,000 to 20,000 in the smoke run's test build;
/// without that leak, 0.8 % at most in the smoke run.
const MAX_GROWTH_PCT: f64 = 5.0;

/// `total` events through the fan-out worker, publishing while it consumes (at most
/// `SOAK_BACKLOG` waiting), with the worker's RSS after every tenth of them.
pub async fn soak(
    broker: &Broker,
    seen: &Arc<Seen>,
    url: &str,
    dir: &Path,
    total: usize,
) -> anyhow::Result<()> {
    let step = total.div_ceil(10).max(1);
    let scenario = Scenario::new("soak", &Shape::FanOut.integrations(url), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            let before = seen.requests();
            let (mut process, _) =
                WorkerProcess::start(WorkerProcess::library(&scenario.config_path)).await?;
            let started = Instant::now();
            let delivered = |seen: &Seen| ((seen.requests() - before) / 5) as usize;
            let mut published = 0;
            let mut checkpoint = step;
            let mut first = None;
            let mut growth: f64 = 0.0;
            while checkpoint <= total {
                process.check_alive()?;
                while published < total && published < delivered(seen) + SOAK_BACKLOG {
                    let chunk = 1_000.min(total - published);
                    broker
                        .prepublish(&topology, &format!("{}-{published}", scenario.id), chunk)
                        .await?;
                    published += chunk;
                }
                if delivered(seen) >= checkpoint {
                    let (rss, hwm) = process.rss_kib();
                    let rss_mib = rss as f64 / 1024.0;
                    let base = *first.get_or_insert(rss_mib);
                    let grown = (rss_mib - base) / base * 100.0;
                    growth = growth.max(grown);
                    println!(
                        "{{\"scenario\":\"soak\",\"events\":{checkpoint},\"seconds\":{:.0},\"rss_mib\":{rss_mib:.1},\"peak_rss_mib\":{:.1},\"growth_since_first_pct\":{grown:.1}}}",
                        started.elapsed().as_secs_f64(),
                        hwm as f64 / 1024.0,
                    );
                    checkpoint += step;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            process.stop();
            anyhow::ensure!(
                growth <= MAX_GROWTH_PCT,
                "the worker's RSS grew by {growth:.1} % after the first report (at most {MAX_GROWTH_PCT} %): a leak?"
            );
            Ok(())
        })
        .await
}
