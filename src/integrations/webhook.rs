//! The `webhook` integration: the run's last known results, POSTed and signed per Standard Webhooks.

use std::collections::BTreeMap;

use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, http_status, settings,
};
use crate::event::{Cancellation, Commit, RunCanceled, RunStatus};
use crate::protocol::{
    HUB_SIGNATURE, WEBHOOK_EVENT, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use crate::route::Filters;
use crate::secret::Secret;
use crate::signature::{SigningSecret, hub_signature, sign};

crate::integrations::keyed! {
/// Config of a `type: webhook` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    /// Where to POST (http or https).
    pub url: Url,
    /// `whsec_…` secrets; each signs the post, so a new one can be added before the old goes.
    pub secrets: Vec<SigningSecret>,
    /// Also send `X-Hub-Signature-256: sha256=<hex>` keyed with this secret.
    #[serde(default)]
    pub hub_secret: Option<Secret>,
    /// Static extra headers (values are treated as secrets: never printed).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}
}

settings!(WebhookConfig);

/// No templates: the body is the fixed shape receivers parse.
impl Checks for WebhookConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !matches!(self.url.scheme(), "http" | "https") {
            problems.push("`url` must be an http or https URL".to_owned());
        }
        if self.secrets.is_empty() {
            problems.push(
                "`secrets` needs at least one `whsec_…` secret: posts are always signed".to_owned(),
            );
        }
        for (name, value) in &self.headers {
            if HeaderName::try_from(name.as_str()).is_err() {
                problems.push(format!("`headers`: `{name}` is not a valid header name"));
            } else if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                problems.push(format!(
                    "`headers`: the value of `{name}` is not a valid header value"
                ));
            }
        }
        problems
    }
}

/// The body receivers get: the flat shape existing dashboard webhook receivers parse.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<'a> {
    event: &'static str,
    run_id: &'a str,
    run_url: &'a str,
    project_id: &'a str,
    project_name: Option<&'a str>,
    build_id: Option<&'a str>,
    group_id: Option<&'a str>,
    tags: &'a [String],
    commit: &'a Commit,
    overall: u64,
    passes: u64,
    failures: u64,
    pending: u64,
    skipped: u64,
    retries: u64,
    flaky: u64,
    status: RunStatus,
    cancellation: &'a Cancellation,
}

impl<'a> WebhookBody<'a> {
    pub fn new(event: &'a RunCanceled) -> Self {
        let data = &event.data;
        let results = &data.results;
        Self {
            event: WEBHOOK_EVENT,
            run_id: data.run_id.as_str(),
            run_url: data.run_url.as_str(),
            project_id: &data.project_id,
            project_name: data.project_name.as_deref(),
            build_id: data.build_id.as_deref(),
            group_id: data.group_id.as_deref(),
            tags: &data.tags,
            commit: &data.commit,
            overall: results.overall,
            passes: results.passes,
            failures: results.failures,
            pending: results.pending,
            skipped: results.skipped,
            retries: results.retries,
            flaky: results.flaky,
            status: results.status(),
            cancellation: &data.cancellation,
        }
    }
}

/// A webhook integration, ready to send.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
}

impl Webhook {
    /// The exact request of one attempt, signed with `timestamp` (Unix seconds).
    pub fn request(&self, notification: &Notification<'_>, timestamp: i64) -> OutgoingRequest {
        let body = serde_json::to_vec(&WebhookBody::new(notification.event))
            .expect("the webhook body always serialises");
        let id = notification.delivery_id();
        let mut request = OutgoingRequest::post_json(self.config.url.clone(), body);
        for (name, value) in &self.config.headers {
            if let Ok(name) = HeaderName::try_from(name.as_str()) {
                request.header(name, value.expose(), true);
            }
        }
        let signature = sign(&self.config.secrets, &id, timestamp, &request.body);
        request.header(HeaderName::from_static(WEBHOOK_ID), &id, false);
        request.header(
            HeaderName::from_static(WEBHOOK_TIMESTAMP),
            &timestamp.to_string(),
            false,
        );
        request.header(
            HeaderName::from_static(WEBHOOK_SIGNATURE),
            &signature,
            false,
        );
        if let Some(secret) = &self.config.hub_secret {
            let hub = hub_signature(secret.expose(), &request.body);
            request.header(HeaderName::from_static(HUB_SIGNATURE), &hub, false);
        }
        request
    }
}

impl Kind for Webhook {
    const TYPE: &'static str = "webhook";
    type Config = WebhookConfig;

    fn build(config: WebhookConfig, _: &Parts) -> Self {
        Self { config }
    }

    fn config(&self) -> &WebhookConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, crate::failure::DeliveryError> {
        let request = self.request(notification, io.now.timestamp());
        Ok(Plan::one(request, http_status))
    }
}
