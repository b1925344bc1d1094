//! Prometheus metrics: every name and label in one place, and the process-wide recorder.
//! Label values are bounded (integration names and types, outcomes, reasons; never run ids).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

const EVENTS: &str = "run_notifier_events_total";
const DELIVERIES: &str = "run_notifier_deliveries_total";
const DELIVERY_SECONDS: &str = "run_notifier_delivery_duration_seconds";
const RETRIES: &str = "run_notifier_retries_scheduled_total";
const DEAD_LETTERS: &str = "run_notifier_dead_letters_total";
const IN_FLIGHT: &str = "run_notifier_deliveries_in_flight";
const BROKER_CONNECTED: &str = "run_notifier_broker_connected";
const LEDGER_SECONDS: &str = "run_notifier_ledger_operation_duration_seconds";
const UNSETTLED: &str = "run_notifier_messages_unsettled_total";
const UNSEALED: &str = "run_notifier_unsealed_retry_headers_total";
const INTEGRATION_IN_FLIGHT: &str = "run_notifier_integration_in_flight";
const INTEGRATION_QUEUED: &str = "run_notifier_integration_queued";
const INTEGRATION_OLDEST: &str = "run_notifier_integration_oldest_waiting_seconds";
const QUEUE_WAIT_SECONDS: &str = "run_notifier_integration_queue_wait_seconds";
const CIRCUIT_STATE: &str = "run_notifier_circuit_breaker_state";

/// Buckets from 5 ms to 30 s: webhook answers are fast, GitHub's can take seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets from 50 µs to 1 s for ledger round trips.
const LEDGER_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Buckets from 10 ms to 1 h for time spent in an integration's queue.
const QUEUE_WAIT_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0];

/// The `integration` label of a delivery whose integration is not in the config: a name read
/// from a message never becomes a label value, so a message cannot add series.
pub const UNKNOWN_INTEGRATION: &str = "unknown";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process (later calls reuse it) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(DELIVERY_SECONDS.into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(LEDGER_SECONDS.into()),
                        LEDGER_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(QUEUE_WAIT_SECONDS.into()),
                        QUEUE_WAIT_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            zero();
            keep_up(handle.clone());
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_INTERVAL`], on a thread
/// of its own. The recorder keeps every sample until a scrape or an upkeep drains it, so a
/// worker that nobody scrapes grew without bound: about 30 MiB per 100,000 fan-out events in
/// the soak benchmark.
fn keep_up(handle: PrometheusHandle) {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        })
        .expect("a thread for the metrics upkeep");
}

fn describe() {
    metrics::describe_counter!(
        EVENTS,
        "Messages consumed, by what became of them (delivered, skipped, retrying, dead_lettered, invalid, canceled, requeued)."
    );
    metrics::describe_counter!(
        DELIVERIES,
        "Deliveries by integration, type, outcome and failure reason."
    );
    metrics::describe_histogram!(
        DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Time of one delivery attempt, by integration type."
    );
    metrics::describe_counter!(
        RETRIES,
        "Retries published to the broker's retry queues, by integration."
    );
    metrics::describe_counter!(
        DEAD_LETTERS,
        "Messages dead-lettered, by kind (invalid input, or a delivery that gave up)."
    );
    metrics::describe_gauge!(IN_FLIGHT, "Deliveries under way now.");
    metrics::describe_gauge!(
        BROKER_CONNECTED,
        "1 while the worker is connected and consuming, else 0."
    );
    metrics::describe_histogram!(
        LEDGER_SECONDS,
        metrics::Unit::Seconds,
        "Ledger round trips, by operation."
    );
    metrics::describe_gauge!(
        INTEGRATION_IN_FLIGHT,
        "Deliveries under way now, by integration (at most its `concurrency`)."
    );
    metrics::describe_gauge!(
        INTEGRATION_QUEUED,
        "Deliveries waiting in the integration's own queue (busy or paused), by integration."
    );
    metrics::describe_gauge!(
        INTEGRATION_OLDEST,
        metrics::Unit::Seconds,
        "Age of the oldest delivery this worker holds waiting for a slot, by integration (0: none)."
    );
    metrics::describe_histogram!(
        QUEUE_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time deliveries spent in the integration's own queue before their attempt, by integration."
    );
    metrics::describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker per integration: 1 for the state it is in (closed, open, probing), 0 for the others."
    );
    metrics::describe_counter!(
        UNSETTLED,
        "Acks or nacks the broker did not take (the message is redelivered and deduplicated)."
    );
    metrics::describe_counter!(
        UNSEALED,
        "Messages whose retry headers (integration, attempt…) this worker did not seal: ignored, each was handled as a new event."
    );
}

/// Exports the series alerts watch from the start, at zero: `increase()` cannot see the first
/// dead letter of a process if its series only appears with it.
fn zero() {
    for kind in ["invalid", "delivery"] {
        counter!(DEAD_LETTERS, "kind" => kind).increment(0);
    }
    counter!(UNSETTLED).increment(0);
    counter!(UNSEALED).increment(0);
    gauge!(IN_FLIGHT).set(0.0);
    gauge!(BROKER_CONNECTED).set(0.0);
}

/// A consumed message ended as `outcome`; also recorded on the current (event) span.
pub fn event(outcome: &'static str) {
    counter!(EVENTS, "outcome" => outcome).increment(1);
    super::otel::record_outcome(outcome, None);
}

/// One delivery ended; `reason` is the failure kind, if it failed. Both are also recorded on
/// the current (delivery) span, so traces and metrics use the same labels.
pub fn delivery(
    integration: &str,
    kind: &'static str,
    outcome: &'static str,
    reason: Option<&'static str>,
) {
    counter!(
        DELIVERIES,
        "integration" => integration.to_owned(),
        "type" => kind,
        "outcome" => outcome,
        "reason" => reason.unwrap_or(""),
    )
    .increment(1);
    super::otel::record_outcome(outcome, reason);
}

/// How long one attempt took.
pub fn delivery_time(kind: &'static str, elapsed: Duration) {
    histogram!(DELIVERY_SECONDS, "type" => kind).record(elapsed.as_secs_f64());
}

pub fn retry_scheduled(integration: &str) {
    counter!(RETRIES, "integration" => integration.to_owned()).increment(1);
}

pub fn dead_letter(kind: &'static str) {
    counter!(DEAD_LETTERS, "kind" => kind).increment(1);
}

/// Counts a delivery in flight until the guard drops.
pub fn in_flight() -> InFlightGuard {
    gauge!(IN_FLIGHT).increment(1.0);
    InFlightGuard
}

pub struct InFlightGuard;

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT).decrement(1.0);
    }
}

pub fn broker_connected(connected: bool) {
    gauge!(BROKER_CONNECTED).set(if connected { 1.0 } else { 0.0 });
}

pub fn ledger_time(operation: &'static str, elapsed: Duration) {
    histogram!(LEDGER_SECONDS, "operation" => operation).record(elapsed.as_secs_f64());
}

pub fn unsettled() {
    counter!(UNSETTLED).increment(1);
}

/// A message carried retry headers without this worker's seal (they were ignored).
pub fn unsealed_headers() {
    counter!(UNSEALED).increment(1);
}

/// Counts one delivery to `integration` in flight until it drops.
#[derive(Debug)]
pub struct IntegrationInFlight(String);

impl IntegrationInFlight {
    pub fn start(integration: &str) -> Self {
        gauge!(INTEGRATION_IN_FLIGHT, "integration" => integration.to_owned()).increment(1.0);
        Self(integration.to_owned())
    }
}

impl Drop for IntegrationInFlight {
    fn drop(&mut self) {
        gauge!(INTEGRATION_IN_FLIGHT, "integration" => self.0.clone()).decrement(1.0);
    }
}

/// Deliveries waiting in the integration's queue (and for a slot in this worker).
pub fn integration_queued(integration: &str, queued: u64) {
    gauge!(INTEGRATION_QUEUED, "integration" => integration.to_owned()).set(queued as f64);
}

/// Age of the oldest delivery waiting for a slot, from when it was queued (Unix ms).
pub fn integration_oldest_waiting(integration: &str, queued_at_ms: Option<i64>) {
    let age = queued_at_ms.map_or(0.0, |at| {
        (chrono::Utc::now().timestamp_millis() - at).max(0) as f64 / 1_000.0
    });
    gauge!(INTEGRATION_OLDEST, "integration" => integration.to_owned()).set(age);
}

/// A delivery queued at `queued_at_ms` (Unix ms) got its slot now.
pub fn queue_wait(integration: &str, queued_at_ms: i64) {
    let waited = (chrono::Utc::now().timestamp_millis() - queued_at_ms).max(0) as f64 / 1_000.0;
    histogram!(QUEUE_WAIT_SECONDS, "integration" => integration.to_owned()).record(waited);
}

/// The breaker of `integration` is now in `state` (`closed`, `open` or `probing`).
pub fn breaker_state(integration: &str, state: &'static str) {
    // The new state is set before the others are cleared, so that a scrape in between never
    // sees every state at 0.
    gauge!(CIRCUIT_STATE, "integration" => integration.to_owned(), "state" => state).set(1.0);
    for other in ["closed", "open", "probing"]
        .into_iter()
        .filter(|s| *s != state)
    {
        gauge!(CIRCUIT_STATE, "integration" => integration.to_owned(), "state" => other).set(0.0);
    }
}
