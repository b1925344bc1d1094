//! The `webhook` integration: the run's last known results, POSTed and signed per Standard Webhooks.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems, http_status,
    settings,
};
use crate::event::{
    Cancellation, Commit, EventType, RunEvent, RunStatus, TERMINAL_EVENTS, Timeout,
};
use crate::protocol::{HUB_SIGNATURE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
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
impl Checks for WebhookConfig {}

impl WebhookConfig {
    /// The static extra `headers`, each value marked sensitive, or what is wrong with them.
    fn header_map(&self, problems: &mut Problems) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let Ok(name) = HeaderName::try_from(name.as_str()) else {
                problems.push(format!("`headers`: `{name}` is not a valid header name"));
                continue;
            };
            let Ok(mut value) = HeaderValue::from_str(value.expose()) else {
                problems.push(format!(
                    "`headers`: the value of `{name}` is not a valid header value"
                ));
                continue;
            };
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers
    }
}

/// The body receivers get: the flat shape existing dashboard webhook receivers parse. The
/// counts and `status` are null while a started run's results are unknown; `cancellation` is
/// there only for `RUN_CANCELED` and `timeout` only for `RUN_TIMED_OUT`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<'a> {
    event: &'static str,
    /// When it happened (the CloudEvents `time`).
    time: String,
    run_id: &'a str,
    run_url: &'a str,
    project_id: &'a str,
    project_name: Option<&'a str>,
    build_id: Option<&'a str>,
    group_id: Option<&'a str>,
    tags: &'a [String],
    commit: &'a Commit,
    overall: Option<u64>,
    passes: Option<u64>,
    failures: Option<u64>,
    pending: Option<u64>,
    skipped: Option<u64>,
    retries: Option<u64>,
    flaky: Option<u64>,
    status: Option<RunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation: Option<&'a Cancellation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<&'a Timeout>,
}

impl<'a> WebhookBody<'a> {
    pub fn new(event: &'a RunEvent) -> Self {
        let data = &event.data;
        let results = data.results.as_ref();
        let count = |pick: fn(&crate::event::Results) -> u64| results.map(pick);
        Self {
            event: event.event_type().webhook_event(),
            time: event
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            run_id: data.run_id.as_str(),
            run_url: data.run_url.as_str(),
            project_id: &data.project_id,
            project_name: data.project_name.as_deref(),
            build_id: data.build_id.as_deref(),
            group_id: data.group_id.as_deref(),
            tags: &data.tags,
            commit: &data.commit,
            overall: count(|r| r.overall),
            passes: count(|r| r.passes),
            failures: count(|r| r.failures),
            pending: count(|r| r.pending),
            skipped: count(|r| r.skipped),
            retries: count(|r| r.retries),
            flaky: count(|r| r.flaky),
            status: event.outcome(),
            cancellation: event.cancellation(),
            timeout: event.timeout(),
        }
    }
}

/// A webhook integration, ready to send.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
    /// The static extra headers, parsed once.
    headers: HeaderMap,
}

impl Webhook {
    /// The exact request of one attempt, signed with `timestamp` (Unix seconds).
    pub fn request(&self, notification: &Notification<'_>, timestamp: i64) -> OutgoingRequest {
        let body = serde_json::to_vec(&WebhookBody::new(notification.event))
            .expect("the webhook body always serialises");
        let id = notification.delivery_id();
        let mut request = OutgoingRequest::post_json(self.config.url.clone(), body);
        request.headers.extend(self.headers.clone());
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
    // A webhook cannot edit what it posted: a message per start would be noise.
    const DEFAULT_EVENTS: &'static [EventType] = &TERMINAL_EVENTS;
    type Config = WebhookConfig;

    fn build(config: WebhookConfig, _: &Parts) -> Result<Self, Problems> {
        let mut problems = Problems::new();
        if !matches!(config.url.scheme(), "http" | "https") {
            problems.push("`url` must be an http or https URL");
        }
        if config.secrets.is_empty() {
            problems.push("`secrets` needs at least one `whsec_…` secret: posts are always signed");
        }
        let headers = config.header_map(&mut problems);
        problems.or_built(Some(Self { config, headers }))
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
