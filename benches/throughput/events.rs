//! The messages a scenario publishes: one `run.canceled` per run (the cancel-only scenarios), or
//! each run's whole life in four events (the lifecycle scenario), built from the documented
//! example events with unique run and event ids.

use serde_json::{Value, json};

const CANCELED: &str = include_str!("../../config/example-event.json");
const STARTED: &str = include_str!("../../config/example-event-started.json");
const FINISHED: &str = include_str!("../../config/example-event-finished.json");
const TIMED_OUT: &str = include_str!("../../config/example-event-timed-out.json");

/// A run's life, in the order published, with the routing key each is published with (its
/// type, as producers do).
const LIFE: [(&str, &str); 4] = [
    ("run.started", STARTED),
    ("run.finished", FINISHED),
    ("run.timed_out", TIMED_OUT),
    ("run.canceled", CANCELED),
];

/// The lifecycle publishes its runs in blocks, stage by stage: every run's `run.started`, then,
/// once those are handled, every run's `run.finished`, and so on, as when a run's events are
/// minutes apart. Published together, a run's next event could overtake the one before (held
/// back in an integration's queue) and supersede it.
const BLOCK_RUNS: usize = 500;

/// What a scenario's runs send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// One `run.canceled` per run (the documented example event, about 1.1 KB).
    CancelOnly,
    /// Four events per run: started, finished, timed out, canceled, a minute apart, so that
    /// none is superseded by the one before it.
    Lifecycle,
}

/// One event to publish.
pub struct Message {
    pub routing_key: &'static str,
    pub body: String,
}

impl Load {
    /// `count` messages whose run ids start with `prefix` (for the lifecycle, `count / 4` runs,
    /// rounded up; the last run's life is cut short when `count` is not a multiple of 4), in
    /// phases: each phase is published once the one before is handled.
    pub fn phases(self, prefix: &str, count: usize) -> Vec<Vec<Message>> {
        match self {
            Load::CancelOnly => vec![
                (0..count)
                    .map(|n| canceled(&format!("{prefix}-{n}")))
                    .collect(),
            ],
            Load::Lifecycle => {
                let runs = count.div_ceil(LIFE.len());
                let mut phases = Vec::new();
                let mut left = count;
                for block in (0..runs).step_by(BLOCK_RUNS) {
                    let block = block..runs.min(block + BLOCK_RUNS);
                    for stage in 0..LIFE.len() {
                        let phase: Vec<Message> = block
                            .clone()
                            .take(left)
                            .map(|run| lifecycle(&format!("{prefix}-{run}"), stage))
                            .collect();
                        left -= phase.len();
                        if !phase.is_empty() {
                            phases.push(phase);
                        }
                    }
                }
                phases
            }
        }
    }

    /// The same messages in one sequence, in order.
    pub fn messages(self, prefix: &str, count: usize) -> Vec<Message> {
        self.phases(prefix, count).into_iter().flatten().collect()
    }
}

/// The documented example `run.canceled` event with this run id and a fresh event id.
pub fn canceled(run_id: &str) -> Message {
    let mut event: Value = serde_json::from_str(CANCELED).unwrap();
    event["id"] = json!(format!("evt-{run_id}"));
    event["data"]["runId"] = json!(run_id);
    Message {
        routing_key: "run.canceled",
        body: event.to_string(),
    }
}

/// The `stage`-th event of run `run_id`'s life (0 = started … 3 = canceled): its example event
/// with this run id, its own event id, and a `time` one minute after the stage before.
fn lifecycle(run_id: &str, stage: usize) -> Message {
    let (kind, example) = LIFE[stage];
    let time = format!("2026-11-21T10:0{stage}:00Z");
    let mut event: Value = serde_json::from_str(example).unwrap();
    event["id"] = json!(format!("evt-{run_id}-{stage}"));
    event["time"] = json!(time);
    event["data"]["runId"] = json!(run_id);
    match kind {
        "run.timed_out" => event["data"]["timeout"]["timedOutAt"] = json!(time),
        "run.canceled" => event["data"]["cancellation"]["canceledAt"] = json!(time),
        _ => {}
    }
    Message {
        routing_key: kind,
        body: event.to_string(),
    }
}
