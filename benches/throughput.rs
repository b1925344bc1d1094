//! End-to-end throughput, latency and memory of the worker next to a bare consumer on the same
//! broker, as ratios measured in one run. Run with `cargo bench --bench throughput`.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest). Environment:
//! - `EVENTS` (default 10000): events per throughput scenario;
//! - `LATENCY_SECONDS` (default 6): how long events are offered at `LATENCY_RATE` (default 500/s);
//! - `SOAK=1`: also push `SOAK_EVENTS` (default 1000000) through the fan-out scenario and report
//!   the worker's RSS every 100000 events.
//!
//! Prints one JSON line per scenario and a last line `ratio worker/baseline = X.XX`.

#[path = "throughput/broker.rs"]
mod broker;
#[path = "throughput/child.rs"]
mod child;
#[path = "throughput/receiver.rs"]
mod receiver;
#[path = "throughput/scenario.rs"]
mod scenario;

fn main() {
    if let Ok(config) = std::env::var(child::CHILD_CONFIG) {
        child::run_worker(&config);
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario::all());
}
