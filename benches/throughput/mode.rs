//! How much the benchmark does: the full run (the figures docs/performance.md quotes, targets
//! enforced), the smoke run CI makes (a few hundred events, every scenario, no targets), or the
//! count of instructions per event under callgrind.

use crate::child::WorkerProcess;

/// What this run does, from the arguments and the environment.
#[derive(Debug, Clone)]
pub struct Mode {
    /// A smoke run: every scenario must complete; the figures are not held to the targets.
    pub smoke: bool,
    /// Count instructions per event under callgrind instead of timing (see `callgrind.rs`).
    pub callgrind: bool,
    /// Events per throughput scenario.
    pub events: usize,
    /// Events per second offered for the latency figures, and for how long.
    pub latency_rate: usize,
    pub latency_seconds: usize,
    /// How many times start-to-ready is measured.
    pub ready_runs: usize,
    /// Events through the soak, 0 for none: `SOAK=1` asks for a long one (default 1,000,000);
    /// a smoke run makes a short one (20,000), enough to see the worker's memory grow.
    pub soak_events: usize,
    /// Only these scenarios (`ONLY=worker,fan-out`), for profiling one of them.
    only: Option<Vec<String>>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Mode {
    /// `--smoke` (or `SMOKE=1`) makes a smoke run, `--callgrind` (or `CALLGRIND=1`) a count of
    /// instructions; `EVENTS`, `LATENCY_RATE`, `LATENCY_SECONDS`, `SOAK`, `SOAK_EVENTS` and
    /// `ONLY` adjust each kind.
    pub fn from_env() -> Self {
        let flag = |arg: &str, var: &str| {
            std::env::args().any(|a| a == arg) || std::env::var(var).is_ok_and(|v| v == "1")
        };
        let (smoke, callgrind) = (flag("--smoke", "SMOKE"), flag("--callgrind", "CALLGRIND"));
        let events = match (callgrind, smoke) {
            (true, _) => 500,
            (false, true) => 300,
            (false, false) => 10_000,
        };
        Self {
            smoke,
            callgrind,
            events: env_usize("EVENTS", events),
            latency_rate: env_usize("LATENCY_RATE", 500).max(1),
            latency_seconds: env_usize("LATENCY_SECONDS", if smoke { 1 } else { 6 }),
            ready_runs: if smoke { 1 } else { 5 },
            soak_events: match std::env::var("SOAK").is_ok_and(|v| v == "1") {
                true => env_usize("SOAK_EVENTS", 1_000_000),
                false if smoke => env_usize("SOAK_EVENTS", 20_000),
                false => 0,
            },
            only: std::env::var("ONLY")
                .ok()
                .map(|v| v.split(',').map(str::to_owned).collect()),
        }
    }

    /// Whether the scenario called `label` runs.
    pub fn runs(&self, label: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == label))
    }

    /// Says on stderr which process a scenario measures, so `perf record -p` can attach.
    pub fn announce_child(&self, label: &str, process: &WorkerProcess) {
        eprintln!("{label}: child process {}", process.id());
    }
}
