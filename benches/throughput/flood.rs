//! A bad-input flood: 2,000 messages that are not events, 25 of them 2 MiB bodies (over the
//! default 1 MiB `broker.max_message_bytes`), all dead-lettered unread by a worker with the
//! default broker settings (prefetch 64). Reports the worker's peak RSS, held to 64 MiB.
//!
//! Two layouts: `spread` (one big body every 80 messages) and `clustered` (the 25 big bodies
//! first, so that all of them are prefetched at once: the worst case, bounded by the bodies).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::broker::Broker;
use crate::child::WorkerProcess;
use crate::mode::Mode;
use crate::scenario::{Scenario, Shape};

const BIG: usize = 2 * 1024 * 1024;

/// The n-th message of the flood: small malformed inputs of several kinds, and big bodies.
fn message(n: usize, big: bool) -> Vec<u8> {
    if big {
        let mut body = b"{\"data\":\"".to_vec();
        body.resize(BIG - 2, b'x');
        body.extend_from_slice(b"\"}");
        return body;
    }
    match n % 4 {
        0 => b"not json at all".to_vec(),
        1 => br#"{"specversion":"1.0","type":"run.canceled"}"#.to_vec(),
        2 => format!(r#"{{"id":"flood-{n}","data":{{"runId":12}}}}"#).into_bytes(),
        _ => vec![0xff, 0xfe, 0x00, 0x01],
    }
}

/// Runs one layout; returns the worker's peak RSS in MiB.
pub async fn flood(
    broker: &Broker,
    url: &str,
    dir: &Path,
    mode: &Mode,
    clustered: bool,
) -> anyhow::Result<f64> {
    let (total, bigs) = if mode.smoke { (200, 3) } else { (2_000, 25) };
    let layout = if clustered { "clustered" } else { "spread" };
    let scenario = Scenario::new("flood", &Shape::OneWebhook.integrations(url), dir);
    scenario
        .run(broker, async {
            let topology = broker.declare(&scenario.config).await;
            let every = total / bigs;
            let mut confirms = Vec::new();
            for n in 0..total {
                let big = if clustered { n < bigs } else { n % every == every - 1 };
                confirms.push(
                    broker
                        .publish_body(&topology, "run.canceled", &message(n, big))
                        .await,
                );
            }
            for confirm in confirms {
                if !confirm.await?.is_ack() {
                    bail!("the broker refused a flood message");
                }
            }
            let (mut process, _) =
                WorkerProcess::start(WorkerProcess::library(&scenario.config_path)).await?;
            let started = Instant::now();
            let dead = &topology.dead_letter_queue;
            while broker.depth(dead).await < total as u32 {
                process.check_alive()?;
                if started.elapsed() > Duration::from_secs(300) {
                    bail!("only {} of {total} dead-lettered", broker.depth(dead).await);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let took = started.elapsed().as_secs_f64();
            let (rss, hwm) = process.rss_kib();
            process.stop();
            let peak = hwm as f64 / 1024.0;
            let broker_config = &scenario.config.broker;
            let (prefetch, max_bytes) = (broker_config.prefetch, broker_config.max_message_bytes);
            println!(
                "{{\"scenario\":\"flood-{layout}\",\"messages\":{total},\"big_bodies\":{bigs},\"big_body_mib\":2,\"prefetch\":{prefetch},\"max_message_bytes\":{max_bytes},\"dead_lettered\":{total},\"seconds\":{took:.2},\"peak_rss_mib\":{peak:.1},\"rss_mib_end\":{:.1}}}",
                rss as f64 / 1024.0
            );
            if clustered {
                println!("{}", bound(prefetch, max_bytes, bigs));
            }
            Ok(peak)
        })
        .await
}

/// What bounds the clustered flood's memory, in words: the prefetched bodies.
fn bound(prefetch: u16, max_message_bytes: usize, bigs: usize) -> String {
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    format!(
        "memory bound flood-clustered: the worker holds at most broker.prefetch ({prefetch}) \
         bodies at once, so broker.prefetch × broker.max_message_bytes = {:.0} MiB when the \
         broker caps bodies at max_message_bytes (`max_message_size = {max_message_bytes}` in \
         rabbitmq.conf); this broker accepts the {bigs} bodies of {:.0} MiB, so {:.0} MiB of \
         them are prefetched at once, plus their dead-letter copies",
        mib(f64::from(prefetch) * max_message_bytes as f64),
        mib(BIG as f64),
        mib((bigs.min(usize::from(prefetch)) * BIG) as f64),
    )
}
