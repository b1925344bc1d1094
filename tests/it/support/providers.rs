//! One integration without a worker or a broker: built from its spec as the worker builds it,
//! and handed an event directly, with wiremock standing in for the provider.

use run_notifier::config::Config;
use run_notifier::event::RunEvent;
use run_notifier::failure::DeliveryError;
use run_notifier::integrations::{
    Delivered, Integration, Notification, Receipt, build_all, http_client,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::config::{Spec, parse_spec};

/// The integration `spec` describes, built (templates included) as the worker builds it.
pub fn build(spec: Spec) -> Integration {
    let document = json!({ "integrations": [spec.0] });
    let config = Config::parse(&document.to_string(), Default::default())
        .unwrap_or_else(|err| panic!("{err}\n{}", spec.0));
    build_all(&config.integrations, &config.templates_dir, &http_client())
        .unwrap_or_else(|err| panic!("{err:?}"))
        .remove(0)
}

/// What the loader says about an invalid integration entry.
pub fn config_error(spec: Spec) -> String {
    parse_spec(&spec).expect_err("the config should be rejected")
}

/// The event as the worker parses it.
pub fn parse(event: &Value) -> RunEvent {
    RunEvent::parse(event.to_string().as_bytes()).unwrap()
}

/// The notification of `event` to `integration`, attempt 1.
pub fn notification<'a>(integration: &'a Integration, event: &'a RunEvent) -> Notification<'a> {
    Notification {
        event,
        integration: integration.name(),
        attempt: 1,
        resumed: false,
        object_id: None,
    }
}

/// Delivers `event` to `integration` at `attempt`; `resumed` as after a ledger claim that took
/// over a row an earlier attempt left.
pub async fn deliver_at(
    integration: &Integration,
    event: &Value,
    attempt: u32,
    resumed: bool,
) -> Result<Receipt, DeliveryError> {
    let event = parse(event);
    let notification = Notification {
        attempt,
        resumed,
        ..notification(integration, &event)
    };
    integration
        .deliver(&notification, &CancellationToken::new())
        .await
}

/// Delivers `event` to `integration` (attempt 1) as the worker does after an earlier event of
/// the run whose object the ledger kept as `kept`; returns what the ledger would keep now.
pub async fn deliver_kept(
    integration: &Integration,
    event: &Value,
    kept: &str,
) -> Result<Delivered, DeliveryError> {
    let event = parse(event);
    let notification = Notification {
        object_id: Some(kept),
        ..notification(integration, &event)
    };
    integration
        .deliver_keeping(&notification, &CancellationToken::new())
        .await
}

/// Delivers `event` to `integration` (attempt 1).
pub async fn deliver(integration: &Integration, event: &Value) -> Result<Receipt, DeliveryError> {
    deliver_with(integration, event, &CancellationToken::new()).await
}

/// Delivers `event` to `integration` (attempt 1), stopping when `cancel` is canceled.
pub async fn deliver_with(
    integration: &Integration,
    event: &Value,
    cancel: &CancellationToken,
) -> Result<Receipt, DeliveryError> {
    let event = parse(event);
    integration
        .deliver(&notification(integration, &event), cancel)
        .await
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

/// A request's body as JSON.
pub fn json_of(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// A request header's value, or "" when absent.
pub fn header(request: &wiremock::Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Why the worker would not start with `spec`: each template problem, as the user reads it.
pub fn build_errors(spec: Spec) -> Vec<String> {
    let document = json!({ "integrations": [spec.0] });
    let config = Config::parse(&document.to_string(), Default::default())
        .unwrap_or_else(|err| panic!("{err}\n{}", spec.0));
    build_all(&config.integrations, &config.templates_dir, &http_client())
        .expect_err("the integration should not build")
        .iter()
        .map(ToString::to_string)
        .collect()
}
