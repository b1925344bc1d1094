//! The three scenarios of one run each: a hung receiver next to three healthy integrations, a
//! 500 storm on one of three webhooks, and a SIGKILL in the middle of a fan-out.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Broker, Run, slack, tag, teams, unique, webhook};
use crate::receiver::{Answer, Receiver};
use crate::worker::{ChildWorker, InProcess, broker_pid, cpu, poll, sample, wait_until};

const FUSE: Duration = Duration::from_secs(300);

/// Publish-to-receipt latencies, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub max: f64,
}

impl Latency {
    /// Over every (run, route) pair: first arrival minus publish time.
    fn of(receiver: &Receiver, routes: &[&String], published: &HashMap<usize, Instant>) -> Self {
        let mut seconds: Vec<f64> = routes
            .iter()
            .flat_map(|route| receiver.first_arrivals(route))
            .map(|(n, at)| at.duration_since(published[&n]).as_secs_f64())
            .collect();
        seconds.sort_by(f64::total_cmp);
        Self {
            p50: seconds[(seconds.len() - 1) / 2],
            max: *seconds.last().unwrap(),
        }
    }
}

/// Names of one run's integrations: `<role>-<unique>`, so that runs in this process never share
/// a metrics series.
fn names<const N: usize>(unique: &str, roles: [&str; N]) -> [String; N] {
    roles.map(|role| format!("{role}-{unique}"))
}

/// Scenario 1, one run: 300 events at once to a webhook, Slack and Teams, with or without a
/// fourth webhook (timeout 10 s), whose receiver never answers in the scenario.
pub struct HungRun {
    pub healthy: Latency,
    /// Healthy deliveries that went through their integration's queue rather than straight.
    pub healthy_queued: f64,
    pub hung_requests: usize,
    /// Mean wait of the healthy deliveries that went through their queue, in seconds.
    pub healthy_queue_wait: f64,
    /// CPU seconds from the first publish to the last healthy receipt: this process (worker,
    /// receivers, publisher) and the broker.
    pub cpu: f64,
    pub broker_cpu: f64,
    /// Mean time of one Slack or Teams delivery attempt (ledger claim, post, record), seconds.
    pub chat_delivery: f64,
}

/// `fourth`: how the fourth webhook's receiver answers (`Hang` for the scenario, `Ok` for the
/// control that tells the cost of the hang from the cost of a fourth integration), if any.
pub async fn hung(broker: &Broker, dir: &Path, fourth: Option<Answer>) -> HungRun {
    const EVENTS: usize = 300;
    let unique = unique();
    let [hung, hook, chat, card] = names(&unique, ["hung", "hook", "slack", "teams"]);
    let receiver = Receiver::start(
        &tag(&unique),
        &[
            (&hung, fourth.unwrap_or(Answer::Hang)),
            (&hook, Answer::Ok),
            (&chat, Answer::Ok),
            (&card, Answer::Ok),
        ],
    )
    .await;
    let url = &receiver.url;
    let mut yaml = String::new();
    let mut all = Vec::new();
    if fourth.is_some() {
        yaml += &webhook(&hung, url, "10s");
        all.push(hung.clone());
    }
    yaml += &webhook(&hook, url, "10s");
    yaml += &slack(&chat, url, "10s");
    yaml += &teams(&card, url, "10s");
    all.extend([hook.clone(), chat.clone(), card.clone()]);
    let run = Run::new("hung", &unique, &yaml, &all, dir);
    let worker = InProcess::start(&run).await;

    let chat_seconds = |page: &str| {
        let series = |suffix: &str| {
            ["slack", "teams"]
                .iter()
                .map(|kind| {
                    let name = format!("run_notifier_delivery_duration_seconds_{suffix}");
                    sample(page, &name, &format!("type=\"{kind}\""))
                })
                .sum::<f64>()
        };
        (series("sum"), series("count"))
    };
    let before = chat_seconds(&worker.metrics().await);
    let broker_pid = broker_pid().unwrap_or(0);
    let cpu_before = (cpu(std::process::id()), cpu(broker_pid));
    let published = broker.publish_all(&run, 0..EVENTS).await;
    let healthy = [&hook, &chat, &card];
    wait_until("every healthy integration got every run", FUSE, || async {
        healthy
            .iter()
            .all(|route| receiver.has_all(route, 0..EVENTS))
    })
    .await;
    let cpu_used = (
        // Saturating: the broker may have been restarted meanwhile by someone else.
        cpu(std::process::id())
            .saturating_sub(cpu_before.0)
            .as_secs_f64(),
        cpu(broker_pid).saturating_sub(cpu_before.1).as_secs_f64(),
    );
    let latency = Latency::of(&receiver, &healthy, &published);
    let page = worker.metrics().await;
    let healthy_sum = |series: &str| -> f64 {
        healthy
            .iter()
            .map(|name| sample(&page, series, &format!("integration=\"{name}\"")))
            .sum()
    };
    let healthy_queued = healthy_sum("run_notifier_integration_queue_wait_seconds_count");
    let healthy_queue_wait =
        healthy_sum("run_notifier_integration_queue_wait_seconds_sum") / healthy_queued.max(1.0);
    let after = chat_seconds(&page);
    let chat_delivery = (after.0 - before.0) / (after.1 - before.1).max(1.0);
    let hung_requests = receiver.requests(&hung);
    worker.stop().await;
    run.delete(broker).await;
    HungRun {
        healthy: latency,
        healthy_queued,
        hung_requests,
        healthy_queue_wait,
        cpu: cpu_used.0,
        broker_cpu: cpu_used.1,
        chat_delivery,
    }
}

/// Scenario 2, one run: events at 10/s for `seconds` to three webhooks, one of which answers
/// 500 to everything when `storm`.
pub struct StormRun {
    pub healthy: Latency,
    pub events: usize,
    /// Runs a healthy receiver got other than exactly once (0 is the target).
    pub not_once: usize,
    pub storm_requests: usize,
}

pub async fn storm(broker: &Broker, dir: &Path, storm: bool, seconds: u64) -> StormRun {
    let events = (seconds * 10) as usize;
    let unique = unique();
    let [failing, a, b] = names(&unique, ["storm", "a", "b"]);
    let answer = if storm { Answer::Fail } else { Answer::Ok };
    let receiver = Receiver::start(
        &tag(&unique),
        &[(&failing, answer), (&a, Answer::Ok), (&b, Answer::Ok)],
    )
    .await;
    let url = &receiver.url;
    let yaml = [&failing, &a, &b]
        .iter()
        .map(|name| webhook(name, url, "10s"))
        .collect::<String>();
    let run = Run::new(
        "storm",
        &unique,
        &yaml,
        &[failing.clone(), a.clone(), b.clone()],
        dir,
    );
    let worker = InProcess::start(&run).await;

    let mut published = HashMap::new();
    let mut confirms = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 0..events {
        tick.tick().await;
        let (at, confirm) = broker.publish(&run, n).await;
        published.insert(n, at);
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(confirm.await.unwrap().is_ack());
    }
    let healthy = [&a, &b];
    wait_until("both healthy webhooks got every run", FUSE, || async {
        healthy
            .iter()
            .all(|route| receiver.has_all(route, 0..events))
    })
    .await;
    // Time for a repeat to show up, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let latency = Latency::of(&receiver, &healthy, &published);
    let not_once = healthy
        .iter()
        .map(|route| {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for (n, _) in receiver.arrivals(route) {
                *counts.entry(n).or_default() += 1;
            }
            (0..events).filter(|n| counts.get(n) != Some(&1)).count()
        })
        .sum();
    let storm_requests = receiver.requests(&failing);
    worker.stop().await;
    run.delete(broker).await;
    StormRun {
        healthy: latency,
        events,
        not_once,
        storm_requests,
    }
}

/// Scenario 3, one run: the `run-notifier` binary fanning 50 events out to a webhook, Slack and
/// Teams whose receivers answer after 300 ms (timeout 2 s, so leases last 11 s) is killed with
/// SIGKILL while deliveries are in flight, restarted, and sent 50 new events.
pub struct KillRun {
    /// Requests the receivers had seen when the worker was killed (of 150).
    pub seen_at_kill: usize,
    /// From `/readyz` 200 after the restart to the last new event at every integration.
    pub new_after_ready: f64,
    /// From ready to the last of the events published before the kill (the leases' wait).
    pub old_after_ready: f64,
    /// (run, integration) pairs of all 100 events the ledger never recorded as delivered.
    pub lost: usize,
    /// Requests beyond one per pair (the deliveries cut by the kill, sent again).
    pub repeats: usize,
}

pub async fn kill(broker: &Broker, dir: &Path) -> KillRun {
    const EVENTS: usize = 50;
    let unique = unique();
    let all = names(&unique, ["hook", "slack", "teams"]);
    let slow = Answer::After(Duration::from_millis(300));
    let answers: Vec<_> = all.iter().map(|name| (name.as_str(), slow)).collect();
    let receiver = Receiver::start(&tag(&unique), &answers).await;
    let url = &receiver.url;
    let yaml =
        webhook(&all[0], url, "2s") + &slack(&all[1], url, "2s") + &teams(&all[2], url, "2s");
    let run = Run::new("kill", &unique, &yaml, &all, dir);
    let config = dir.join(format!("{}.yaml", run.id));
    std::fs::write(&config, &run.yaml).unwrap();
    let log = dir.join(format!("{}.log", run.id));
    let seen = || {
        all.iter()
            .map(|name| receiver.requests(name))
            .sum::<usize>()
    };

    let first = ChildWorker::start(&config, &log, &run.admin).await;
    broker.publish_all(&run, 0..EVENTS).await;
    // A third of the deliveries arrived: the first ones are recorded, many others in flight.
    wait_until("deliveries are under way", FUSE, || async {
        seen() >= EVENTS
    })
    .await;
    first.kill();
    let seen_at_kill = seen();

    let second = ChildWorker::start(&config, &log, &run.admin).await;
    let ready = Instant::now();
    broker.publish_all(&run, EVENTS..2 * EVENTS).await;
    wait_until("every integration got the new events", FUSE, || async {
        all.iter()
            .all(|name| receiver.has_all(name, EVENTS..2 * EVENTS))
    })
    .await;
    // The last request for any run in `range` (repeats included).
    let last_of = |range: std::ops::Range<usize>| {
        all.iter()
            .flat_map(|name| receiver.arrivals(name))
            .filter(|(n, _)| range.contains(n))
            .map(|(_, at)| at)
            .max()
            .unwrap()
    };
    let new_after_ready = last_of(EVENTS..2 * EVENTS)
        .duration_since(ready)
        .as_secs_f64();

    // The pairs in flight at the kill wait for their lease (3 × 2 s + 5 s) and come back.
    let pairs = 2 * EVENTS * all.len();
    poll(Duration::from_secs(90), || async {
        run.delivered().await.len() >= pairs
    })
    .await;
    let delivered = run.delivered().await;
    let lost = (0..2 * EVENTS)
        .flat_map(|n| all.iter().map(move |name| (n, name)))
        .filter(|(n, name)| !delivered.contains(&(run.run_id(*n), (*name).clone())))
        .count();
    let old_after_ready = last_of(0..EVENTS).duration_since(ready).as_secs_f64();
    let repeats = seen().saturating_sub(pairs);
    second.stop();
    run.delete(broker).await;
    KillRun {
        seen_at_kill,
        new_after_ready,
        old_after_ready,
        lost,
        repeats,
    }
}
