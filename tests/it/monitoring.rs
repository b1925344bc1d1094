//! The Grafana dashboard and the Prometheus alert rules in deploy/ query only metrics (and
//! labels) the worker really exports: after a known run on the real broker, with wiremock
//! receivers, every name they use is on `/metrics`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::support::process::sample;
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};
use lapin::BasicProperties;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PREFIX: &str = "run_notifier_";
/// Labels Prometheus adds when it scrapes; the worker does not export them.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

/// Metric name → the labels it carries, from the Prometheus text format.
fn exported(text: &str) -> HashMap<String, HashSet<String>> {
    let mut metrics: HashMap<String, HashSet<String>> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = metrics.entry(line[..end].to_owned()).or_default();
        if let Some(inner) = line[end..].strip_prefix('{') {
            let inner = &inner[..inner.rfind('}').unwrap()];
            // Label values of this run have no `,` or `=`; splitting on them is enough here.
            labels.extend(
                inner
                    .split(',')
                    .filter_map(|pair| Some(pair.split_once('=')?.0.to_owned())),
            );
        }
    }
    metrics
}

/// One use of a metric in a query: its name, the labels its selector matches on, and the
/// labels of the `by (…)` right before it.
#[derive(Debug)]
struct Use {
    name: String,
    labels: Vec<String>,
}

fn identifier_end(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

/// Every `run_notifier_…` metric in a PromQL expression (or any text), with its labels.
fn uses(query: &str) -> Vec<Use> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find(PREFIX) {
        let before = &rest[..start];
        let after = &rest[start..];
        let name = &after[..identifier_end(after)];
        let mut labels = Vec::new();
        if let Some(selector) = after[name.len()..].strip_prefix('{') {
            let selector = &selector[..selector.find('}').expect("a closed selector")];
            for matcher in selector.split(',') {
                let label = matcher.trim();
                labels.push(label[..identifier_end(label)].to_owned());
            }
        }
        // `sum by (a, b) (rate(name…` : the grouping labels belong to this metric.
        if let Some(by) = before.rfind("by (") {
            let group = &before[by + 4..];
            if let Some(close) = group.find(')') {
                let between = &group[close + 1..];
                if !between.contains("by (") && !between.contains(PREFIX) {
                    labels.extend(group[..close].split(',').map(|l| l.trim().to_owned()));
                }
            }
        }
        found.push(Use {
            name: name.to_owned(),
            labels,
        });
        rest = &after[name.len()..];
    }
    found
}

/// Answers 200, but holds the first request until [`Gate::open`] (or until the gate is
/// dropped, so a failing test never leaves the mock server blocked).
struct Held {
    release: Mutex<mpsc::Receiver<()>>,
    seen: Arc<AtomicUsize>,
}

impl Respond for Held {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        // The mock server runs on a thread of its own: blocking here holds only this request.
        if self.seen.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = self.release.lock().unwrap().recv();
        }
        ResponseTemplate::new(200)
    }
}

/// A receiver that keeps its first delivery in flight until the test lets it go.
struct Gate {
    server: MockServer,
    /// Dropping the sender is the signal: the held request's `recv` returns.
    release: Option<mpsc::Sender<()>>,
    seen: Arc<AtomicUsize>,
}

impl Gate {
    async fn new() -> Self {
        let server = MockServer::start().await;
        let (sender, release) = mpsc::channel();
        let seen = Arc::new(AtomicUsize::new(0));
        Mock::given(method("POST"))
            .respond_with(Held {
                release: Mutex::new(release),
                seen: Arc::clone(&seen),
            })
            .mount(&server)
            .await;
        Self {
            server,
            release: Some(sender),
            seen,
        }
    }

    fn url(&self) -> String {
        format!("{}/serial", self.server.uri())
    }

    async fn wait_for(&self, count: usize) {
        wait_until(
            &format!("the gated receiver got {count} request(s)"),
            Duration::from_secs(30),
            || async { self.seen.load(Ordering::SeqCst) >= count },
        )
        .await;
    }

    fn open(&mut self) {
        drop(self.release.take());
    }
}

/// Every string in the dashboard: queries, template variables and descriptions alike.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn dashboard_texts() -> Vec<String> {
    let text = std::fs::read_to_string("deploy/grafana-dashboard.json").unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut texts = Vec::new();
    strings(&dashboard, &mut texts);
    texts
}

fn rule_expressions() -> Vec<String> {
    let text = std::fs::read_to_string("deploy/alerts.yaml").unwrap();
    let rules: Value = serde_saphyr::from_str(&text).expect("the rules are YAML");
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .map(|rule| {
            rule["expr"]
                .as_str()
                .expect("every rule has an expr")
                .to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_and_rules_cover_what_operators_watch() {
    let panels: Vec<String> = {
        let text = std::fs::read_to_string("deploy/grafana-dashboard.json").unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["targets"].as_array())
            .flatten()
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect()
    };
    let used: BTreeSet<String> = panels
        .iter()
        .flat_map(|q| uses(q))
        .map(|u| u.name)
        .collect();
    for wanted in [
        "run_notifier_events_total",
        "run_notifier_deliveries_total",
        "run_notifier_delivery_duration_seconds_bucket",
        "run_notifier_retries_scheduled_total",
        "run_notifier_dead_letters_total",
        "run_notifier_deliveries_in_flight",
        "run_notifier_circuit_breaker_state",
        "run_notifier_integration_in_flight",
        "run_notifier_integration_queued",
        "run_notifier_integration_oldest_waiting_seconds",
        "run_notifier_integration_queue_wait_seconds_bucket",
    ] {
        assert!(used.contains(wanted), "no dashboard panel shows {wanted}");
    }
    let alerts: Vec<String> = rule_expressions();
    assert!(
        alerts
            .iter()
            .any(|e| e.contains("run_notifier_dead_letters_total"))
    );
    for wanted in [
        "run_notifier_broker_connected",
        "run_notifier_circuit_breaker_state",
        "run_notifier_integration_queued",
    ] {
        assert!(
            alerts.iter().any(|e| e.contains(wanted)),
            "no alert rule watches {wanted}"
        );
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_and_rules_query_is_exported_after_a_known_run() {
    // The in-process workers of all tests share one metrics registry: these integration names
    // are this test's own, and every count the waits below compare is labelled with one of
    // them (the unlabelled events counter is only checked to exist).
    let mut app = TestApp::new().await;
    let fine = Receiver::ok().await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    let broken = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    let mut serial = Gate::new().await;
    app.spawn_worker(|config| {
        config.add(webhook("monitor-fine", &fine.url("/hook")));
        config.add(webhook("monitor-flaky", &flaky.url("/hook")));
        config.add(webhook("monitor-broken", &broken.url("/hook")));
        // One slot, and a timeout far beyond the test: its first delivery stays in flight
        // until the gate opens, so the second one must wait in the integration's queue.
        config.add(
            webhook("monitor-serial", &serial.url())
                .with("concurrency", 1)
                .with("timeout", "10m"),
        );
    })
    .await;
    let url = app.admin_url("/metrics");
    let scrape = || async { reqwest::get(&url).await.unwrap().text().await.unwrap() };
    let serial_sample =
        |page: &str, name: &str| sample(page, name, &[("integration", "monitor-serial")]);

    // Two events: each is delivered to one integration, retried then delivered to another,
    // dead-lettered by the third; the serial one delivers the first and queues the second.
    // And one event nobody can read.
    app.publish(&event_for(&unique("run"))).await;
    serial.wait_for(1).await;
    app.publish(&event_for(&unique("run"))).await;
    app.publish_raw(b"not json", BasicProperties::default())
        .await;

    // The gauges are written every 5 s: poll until they show the second delivery waiting.
    wait_until(
        "the serial integration shows one in flight and one waiting",
        Duration::from_secs(30),
        || async {
            let page = scrape().await;
            serial_sample(&page, "run_notifier_integration_in_flight") == Some(1.0)
                && serial_sample(&page, "run_notifier_integration_queued") == Some(1.0)
                && serial_sample(&page, "run_notifier_integration_oldest_waiting_seconds")
                    .is_some_and(|age| age > 0.0)
        },
    )
    .await;
    let page = scrape().await;
    assert_eq!(
        sample(
            &page,
            "run_notifier_circuit_breaker_state",
            &[("integration", "monitor-serial"), ("state", "closed")]
        ),
        Some(1.0),
        "the serial integration's breaker is closed"
    );
    serial.open();
    serial.wait_for(2).await;
    wait_until(
        "the queued delivery's wait is recorded",
        Duration::from_secs(30),
        || async {
            serial_sample(
                &scrape().await,
                "run_notifier_integration_queue_wait_seconds_count",
            ) == Some(1.0)
        },
    )
    .await;

    // monitor-flaky: 503 and 200 for the two events, then 200 for the first one's retry
    // (which comes back through its own queue); monitor-broken dead-letters both events.
    flaky.wait_for(3).await;
    app.wait_for_dead_letters(3).await;
    let count = |page: &str, name: &str, integration: &str, outcome: &str| {
        sample(
            page,
            name,
            &[("integration", integration), ("outcome", outcome)],
        )
    };
    wait_until(
        "the retried delivery and the dead letters are counted",
        Duration::from_secs(20),
        || async {
            let page = scrape().await;
            let deliveries = "run_notifier_deliveries_total";
            count(&page, deliveries, "monitor-flaky", "retry") == Some(1.0)
                && count(&page, deliveries, "monitor-flaky", "delivered") == Some(2.0)
                && count(&page, deliveries, "monitor-broken", "dead_lettered") == Some(2.0)
                && count(&page, deliveries, "monitor-serial", "delivered") == Some(2.0)
                && page.contains(r#"run_notifier_events_total{outcome="dead_lettered"}"#)
                && page.contains(r#"run_notifier_events_total{outcome="invalid"}"#)
        },
    )
    .await;
    let text = scrape().await;
    let metrics = exported(&text);

    let mut queries: Vec<(String, String)> = dashboard_texts()
        .into_iter()
        .map(|q| ("deploy/grafana-dashboard.json".to_owned(), q))
        .collect();
    queries.extend(
        rule_expressions()
            .into_iter()
            .map(|q| ("deploy/alerts.yaml".to_owned(), q)),
    );
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, query) in &queries {
        for found in uses(query) {
            let Some(labels) = metrics.get(&found.name) else {
                problems.push(format!("{file}: `{}` is not on /metrics", found.name));
                continue;
            };
            for label in &found.labels {
                if !labels.contains(label) && !SCRAPE_LABELS.contains(&label.as_str()) {
                    problems.push(format!("{file}: `{}` has no label `{label}`", found.name));
                }
            }
            checked.insert(found.name);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n/metrics:\n{text}");
    // The parser found the queries at all: both files use several metrics.
    assert!(checked.len() >= 13, "{checked:?}");

    app.stop_worker().await;
}

#[test]
fn the_query_reader_finds_names_selector_labels_and_grouping_labels() {
    let found = uses(
        r#"sum by (integration, outcome) (rate(run_notifier_deliveries_total{instance=~"$instance",outcome="delivered"}[5m])) / run_notifier_x"#,
    );
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].name, "run_notifier_deliveries_total");
    assert_eq!(
        found[0].labels,
        ["instance", "outcome", "integration", "outcome"]
    );
    assert_eq!(found[1].name, "run_notifier_x");
    assert!(found[1].labels.is_empty());
}
