//! Helpers for the provider tests (GitHub, Bitbucket): build one integration from YAML and
//! deliver an event to it directly, with wiremock standing in for the provider.
#![allow(dead_code)]

use std::collections::HashMap;

use run_notifier::config::Config;
use run_notifier::event::RunCanceled;
use run_notifier::failure::DeliveryError;
use run_notifier::integrations::{Integration, Notification, Receipt, build_all, http_client};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const SHA: &str = "5a7edc9a156e417068060d67109021351fc7d9b8";
pub const EXAMPLE_EVENT: &str = include_str!("../../config/example-event.json");

/// Text that tries every injection the PR comment must neutralise.
pub const HOSTILE: &str = "<script>alert(1)</script> <img src=x onerror=alert(1)> @everyone [click](http://evil.example) | break | `code` **bold**\n# heading";

/// One integration built from its YAML list item, as the worker builds it.
pub fn build(integration_yaml: &str) -> Integration {
    let yaml = format!("integrations:\n{integration_yaml}");
    let config = Config::parse(&yaml, HashMap::new()).unwrap_or_else(|err| panic!("{err}"));
    build_all(&config.integrations, &config.templates_dir, &http_client())
        .unwrap_or_else(|err| panic!("{err:?}"))
        .remove(0)
}

/// The config error a YAML list item gives.
pub fn config_error(integration_yaml: &str) -> String {
    let yaml = format!("integrations:\n{integration_yaml}");
    Config::parse(&yaml, HashMap::new()).expect_err("the config should be rejected")
}

/// The documented example event with a fresh run id.
pub fn event() -> Value {
    let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
    event["data"]["runId"] = json!(format!("run-{:016x}", rand::random::<u64>()));
    event
}

pub fn parse(event: &Value) -> RunCanceled {
    RunCanceled::parse(event.to_string().as_bytes()).unwrap()
}

/// Delivers `event` to `integration` (attempt 1).
pub async fn deliver(integration: &Integration, event: &Value) -> Result<Receipt, DeliveryError> {
    deliver_with(integration, event, &CancellationToken::new()).await
}

pub async fn deliver_with(
    integration: &Integration,
    event: &Value,
    cancel: &CancellationToken,
) -> Result<Receipt, DeliveryError> {
    let event = parse(event);
    let notification = Notification {
        event: &event,
        integration: integration.name(),
        attempt: 1,
    };
    integration.deliver(&notification, cancel).await
}

/// The requests wiremock received with this method and path.
pub async fn requests(
    server: &wiremock::MockServer,
    method: &str,
    path: &str,
) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == method && r.url.path() == path)
        .collect()
}

pub fn json_of(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

pub fn header(request: &wiremock::Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
