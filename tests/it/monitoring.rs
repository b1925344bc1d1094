//! The Grafana dashboard and the Prometheus alert rules in deploy/ query only metrics (and
//! labels) the worker really exports: after a known run on the real broker, with wiremock
//! receivers, every name they use is on `/metrics`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};
use lapin::BasicProperties;
use serde_json::Value;
use wiremock::ResponseTemplate;

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
    ] {
        assert!(used.contains(wanted), "no dashboard panel shows {wanted}");
    }
    let alerts: Vec<String> = rule_expressions();
    assert!(
        alerts
            .iter()
            .any(|e| e.contains("run_notifier_dead_letters_total"))
    );
    assert!(
        alerts
            .iter()
            .any(|e| e.contains("run_notifier_broker_connected"))
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_and_rules_query_is_exported_after_a_known_run() {
    let mut app = TestApp::new().await;
    let fine = Receiver::ok().await;
    let flaky =
        Receiver::scripted(vec![ResponseTemplate::new(503)], ResponseTemplate::new(200)).await;
    let broken = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    app.spawn_worker(|config| {
        config.add(webhook("fine", &fine.url("/hook")));
        config.add(webhook("flaky", &flaky.url("/hook")));
        config.add(webhook("broken", &broken.url("/hook")));
    })
    .await;

    // One event delivered to one, retried then delivered to another, dead-lettered by the
    // third; one event nobody can read.
    app.publish(&event_for(&unique("run"))).await;
    app.publish_raw(b"not json", BasicProperties::default())
        .await;
    flaky.wait_for(2).await;
    app.wait_for_dead_letters(2).await;

    let url = app.admin_url("/metrics");
    let scrape = || async { reqwest::get(&url).await.unwrap().text().await.unwrap() };
    wait_until(
        "the retried event is counted",
        Duration::from_secs(20),
        || async {
            let text = scrape().await;
            text.contains(r#"run_notifier_events_total{outcome="delivered"}"#)
                && text.contains(r#"run_notifier_events_total{outcome="invalid"}"#)
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
    assert!(checked.len() >= 8, "{checked:?}");

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
