//! Isolation between integrations, measured on the real local RabbitMQ with local HTTP
//! receivers: does a hung, failing or crashed delivery slow anyone else? Run with
//! `cargo bench --bench isolation` (add `-- hung`, `-- storm` or `-- kill` for one scenario,
//! `-- --quick` for a 15 s storm).
//!
//! 1. **hung**: 300 events published at once to a webhook, Slack and Teams (their receivers
//!    answer at once), next to a webhook whose receiver accepts and never answers (timeout
//!    10 s); the same without it. Publish-to-receipt p50 and max over the healthy (run,
//!    integration) pairs. Target: with / without ≤ 1.5. A control run has the fourth webhook
//!    answer at once: it tells the cost of the hang from the cost of a fourth integration.
//! 2. **storm**: three webhooks, events at 10/s for 60 s, one receiver answering 500 to
//!    everything; the same with it answering 200. The other two must get each run exactly once,
//!    with p50 and max as without the storm.
//! 3. **kill**: the `run-notifier` binary fanning 50 events out to a webhook, Slack and Teams
//!    (receivers answer after 300 ms, timeout 2 s: an 11 s lease) gets SIGKILL with deliveries
//!    in flight, is restarted and sent 50 new events. Time from `/readyz` to the last new event
//!    at every integration (target ≤ 5 s), and pairs of all 100 events the ledger never
//!    records as delivered after the leases ran out (target 0).
//!
//! Hung and kill are run `RUNS` times (default 3), storm once (`STORM_RUNS`). The table shows
//! each figure's median with and without the fault, and as ratio the median of the ratios of
//! runs made back to back (on a shared machine the load changes more between runs than the
//! fault does: read the ratio, and the stderr lines for CPU time and queue waits). Every run
//! declares its own queues and exchanges (integration queues included) and deletes them at the
//! end; a run that panics leaves its `bench-iso-*` names behind. The figures in
//! docs/isolation.md come from `cargo bench --profile dev --bench isolation` (a debug build; the
//! plain command optimizes).

#[path = "isolation/harness.rs"]
mod harness;
#[path = "isolation/receiver.rs"]
mod receiver;
#[path = "isolation/scenarios.rs"]
mod scenarios;
#[path = "isolation/worker.rs"]
mod worker;

use harness::Broker;
use receiver::Answer;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// A figure with and without the fault, each the median of the runs, and the median of the
/// ratios of runs made back to back (which cancels most of the load of a shared machine).
struct Medians {
    with: f64,
    without: f64,
    ratio: f64,
}

impl Medians {
    fn of<R>(with: &[R], without: &[R], figure: fn(&R) -> f64) -> Self {
        Self {
            with: median(with.iter().map(figure).collect()),
            without: median(without.iter().map(figure).collect()),
            ratio: median(
                with.iter()
                    .zip(without)
                    .map(|(w, b)| figure(w) / figure(b))
                    .collect(),
            ),
        }
    }

    fn row(&self, name: &str, target: &str) -> String {
        format!(
            "| {name} | {:.3} s | {:.3} s | {:.2} × | {target} |",
            self.with, self.without, self.ratio
        )
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(all());
}

async fn all() {
    // `cargo bench` passes `--bench`; anything else names scenarios or asks for `--quick`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.contains(&name);
    let runs = env_usize("RUNS", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::connect().await;
    let mut rows = Vec::new();

    if wants("hung") {
        let (mut with, mut without, mut control) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..runs {
            // Rotating which goes first, so warming up favours none.
            let mut variants = [None, Some(Answer::Hang), Some(Answer::Ok)];
            variants.rotate_left(k % 3);
            let mut results = Vec::new();
            for fourth in variants {
                let run = scenarios::hung(&broker, dir.path(), fourth).await;
                results.push((fourth.map(|a| matches!(a, Answer::Hang)), run));
            }
            let mut take = |which: Option<bool>| {
                let at = results.iter().position(|(w, _)| *w == which).unwrap();
                results.remove(at).1
            };
            let (base, hung, four) = (take(None), take(Some(true)), take(Some(false)));
            eprintln!(
                "hung {k}: without p50 {:.3} s max {:.3} s | with p50 {:.3} s max {:.3} s; healthy via own queue {} / {} (mean wait {:.3} / {:.3} s); CPU s bench {:.2} / {:.2}, broker {:.2} / {:.2}; Slack/Teams attempt {:.1} / {:.1} ms; hung receiver got {}; control with a fourth healthy webhook: p50 {:.3} s max {:.3} s",
                base.healthy.p50,
                base.healthy.max,
                hung.healthy.p50,
                hung.healthy.max,
                base.healthy_queued,
                hung.healthy_queued,
                base.healthy_queue_wait,
                hung.healthy_queue_wait,
                base.cpu,
                hung.cpu,
                base.broker_cpu,
                hung.broker_cpu,
                base.chat_delivery * 1e3,
                hung.chat_delivery * 1e3,
                hung.hung_requests,
                four.healthy.p50,
                four.healthy.max
            );
            without.push(base);
            with.push(hung);
            control.push(four);
        }
        let p50 = Medians::of(&with, &without, |r| r.healthy.p50);
        let max = Medians::of(&with, &without, |r| r.healthy.max);
        rows.push(p50.row("1. hung receiver, healthy p50", "≤ 1.5 ×"));
        rows.push(max.row("1. hung receiver, healthy max", "≤ 1.5 ×"));
        let p50 = Medians::of(&control, &without, |r| r.healthy.p50);
        let max = Medians::of(&control, &without, |r| r.healthy.max);
        rows.push(p50.row("1. control: 4th webhook healthy, p50", ""));
        rows.push(max.row("1. control: 4th webhook healthy, max", ""));
        let p50 = Medians::of(&with, &control, |r| r.healthy.p50);
        rows.push(p50.row("1. hung against the control, p50", "(the hang's own cost)"));
    }

    if wants("storm") {
        let seconds = if quick { 15 } else { 60 };
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for k in 0..env_usize("STORM_RUNS", 1).max(1) {
            let base = scenarios::storm(&broker, dir.path(), false, seconds).await;
            let storm = scenarios::storm(&broker, dir.path(), true, seconds).await;
            eprintln!(
                "storm {k} ({seconds} s, {} events): without p50 {:.3} s max {:.3} s | with p50 {:.3} s max {:.3} s; runs not received exactly once {} / {}; storm receiver got {} requests",
                storm.events,
                base.healthy.p50,
                base.healthy.max,
                storm.healthy.p50,
                storm.healthy.max,
                base.not_once,
                storm.not_once,
                storm.storm_requests
            );
            without.push(base);
            with.push(storm);
        }
        let p50 = Medians::of(&with, &without, |r| r.healthy.p50);
        let max = Medians::of(&with, &without, |r| r.healthy.max);
        rows.push(p50.row(
            &format!("2. 500 storm {seconds} s, other two p50"),
            "as without",
        ));
        rows.push(max.row(
            &format!("2. 500 storm {seconds} s, other two max"),
            "as without",
        ));
        let not_once: usize = with.iter().map(|r| r.not_once).sum();
        rows.push(format!(
            "| 2. runs not received exactly once | {not_once} | | | 0 |"
        ));
    }

    if wants("kill") {
        let mut results = Vec::new();
        for k in 0..runs {
            let run = scenarios::kill(&broker, dir.path()).await;
            eprintln!(
                "kill {k}: {} of 150 requests seen at the kill; new events everywhere {:.3} s after ready; old ones {:.3} s after ready; lost {}; repeats {}",
                run.seen_at_kill, run.new_after_ready, run.old_after_ready, run.lost, run.repeats
            );
            results.push(run);
        }
        let new = median(results.iter().map(|r| r.new_after_ready).collect());
        let old = median(results.iter().map(|r| r.old_after_ready).collect());
        let lost: usize = results.iter().map(|r| r.lost).sum();
        let repeats: usize = results.iter().map(|r| r.repeats).sum();
        rows.push(format!(
            "| 3. SIGKILL, ready → 50 new events at every integration | {new:.3} s | | | ≤ 5 s |"
        ));
        rows.push(format!(
            "| 3. SIGKILL, ready → last pair held by a lease | {old:.3} s | | | lease 11 s |"
        ));
        rows.push(format!(
            "| 3. SIGKILL, pairs lost ({} runs) / sent twice | {lost} / {repeats} | | | 0 lost |",
            results.len()
        ));
    }

    println!("| scenario | figure | without | ratio | target |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    let _ = broker.connection.close(200, "done".into()).await;
}
