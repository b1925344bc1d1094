//! The `slack_app` integration: a Block Kit message posted by a Slack app (bot token) with
//! `chat.postMessage`, carrying message metadata that names the run, so that a delivery whose
//! earlier attempt may have posted (a retry, or a takeover after a crash between Slack's
//! answer and the ledger record) finds its message in the channel and edits it with
//! `chat.update` instead of posting a second one.

pub mod api;
pub mod history;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use self::api::SlackApi;
use super::limit::{Limiter, RateLimit};
use super::slack::{check_message, render_message};
use super::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, settings,
};
use crate::failure::DeliveryError;
use crate::render::{Format, TemplateError, Templates, template_path};
use crate::route::Filters;
use crate::secret::Secret;

/// The message template, shared with `type: slack`.
pub const DEFAULT_TEMPLATE: &str = super::slack::DEFAULT_TEMPLATE;
/// Where Slack's Web API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// The metadata `event_type` of this worker's messages.
pub const METADATA_EVENT_TYPE: &str = "run_canceled";

crate::integrations::keyed! {
/// Config of a `type: slack_app` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAppConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    /// The app's bot token (`xoxb-…`), scopes `chat:write` and `channels:history` (or
    /// `groups:history` for a private channel).
    pub token: Secret,
    /// The channel: an id (`C0123ABCD`), or a name (`#deploys`), which is looked up with
    /// `conversations.list` when needed (scope `channels:read` / `groups:read`).
    pub channel: String,
    /// The Web API root.
    #[serde(default = "default_api_url")]
    pub api_url: Url,
    /// A template file instead of `<templates_dir>/slack/message.json.hbs`.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Messages per token and channel; the default follows Slack's one a second.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}
}

fn default_api_url() -> Url {
    Url::parse(DEFAULT_API_URL).expect("a valid URL")
}

fn default_rate_limit() -> RateLimit {
    RateLimit::new(60, 1)
}

settings!(SlackAppConfig);

impl Checks for SlackAppConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.template.iter_mut().collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let token = self.token.expose().trim();
        if !token.starts_with("xoxb-") {
            problems.push("`token` must be a Slack bot token (`xoxb-…`)".to_owned());
        } else if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            problems.push("`token` contains characters a header cannot carry".to_owned());
        }
        let channel = self.channel.trim_start_matches('#');
        if channel.is_empty() || channel.contains(char::is_whitespace) {
            problems.push("`channel` must be a channel id (`C0123ABCD`) or name".to_owned());
        }
        let url = &self.api_url;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            problems.push("`api_url` must be an http or https URL".to_owned());
        } else if url.query().is_some() || url.fragment().is_some() {
            problems.push("`api_url` must not have a query or fragment".to_owned());
        }
        problems.extend(self.rate_limit.problems());
        problems
    }

    /// Compiles the template and checks that every sample renders a message Slack accepts.
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Format::SlackJson, &self.common.name, &path)?;
        templates.check_json(Format::SlackJson, &self.common.name, &path, check_message)
    }
}

/// A `slack_app` integration, ready to send.
#[derive(Debug)]
pub struct SlackApp {
    config: SlackAppConfig,
    templates: Arc<Templates>,
    api: SlackApi,
    /// Shared by every integration posting with the same token to the same channel.
    limiter: Limiter,
}

impl SlackApp {
    /// The metadata that names this run's message of this integration.
    pub fn metadata(notification: &Notification<'_>) -> Value {
        json!({
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {
                "run_id": notification.event.data.run_id.as_str(),
                "integration": notification.integration,
            },
        })
    }

    /// The message for this event, rendered and cut to Slack's limits (no channel yet).
    pub fn message(&self, notification: &Notification<'_>) -> Result<Value, DeliveryError> {
        render_message(&self.templates, &self.config.common.name, notification)
    }

    /// `message` with `key: value` pairs added at the top level.
    fn with(mut message: Value, pairs: [(&str, Value); 2]) -> Value {
        if let Some(object) = message.as_object_mut() {
            for (key, value) in pairs {
                object.insert(key.into(), value);
            }
        }
        message
    }
}

impl Kind for SlackApp {
    const TYPE: &'static str = "slack_app";
    type Config = SlackAppConfig;

    fn build(config: SlackAppConfig, parts: &Parts) -> Self {
        let limiter = Limiter::for_credential(
            &["slack_app", config.token.expose(), &config.channel],
            config.rate_limit,
        );
        let api = SlackApi::new(config.api_url.clone(), config.token.clone());
        Self {
            config,
            templates: Arc::clone(&parts.templates),
            api,
            limiter,
        }
    }

    fn config(&self) -> &SlackAppConfig {
        &self.config
    }

    /// A first attempt plans the `chat.postMessage`. When an earlier attempt may have posted
    /// (a retry, or a takeover after a crash), the plan reads the channel's history first and,
    /// when the run's message is there, plans its `chat.update` instead.
    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let message = self.message(notification)?;
        if notification.outcome_unknown() {
            let channel = self.api.channel_id(&self.config.channel, io).await?;
            let since = notification.event.data.cancellation.canceled_at.to_utc();
            if let Some(ts) =
                history::find_message(&self.api, &channel, notification, since, io).await?
            {
                let update = Self::with(message, [("channel", json!(channel)), ("ts", json!(ts))]);
                let request = self.api.post("chat.update", &update)?;
                return Ok(Plan::one(request, move |_: &Answer| {
                    format!("updated message {ts} in {channel} (an earlier attempt had posted it)")
                }));
            }
        }
        let post = Self::with(
            message,
            [
                ("channel", json!(self.config.channel)),
                ("metadata", Self::metadata(notification)),
            ],
        );
        let request = self.api.post("chat.postMessage", &post)?;
        let configured = self.config.channel.clone();
        Ok(Plan::one(request, move |answer: &Answer| {
            let answer: Value = serde_json::from_str(&answer.body).unwrap_or_default();
            let ts = answer["ts"].as_str().unwrap_or("?");
            let channel = answer["channel"].as_str().unwrap_or(&configured);
            format!("posted message {ts} in {channel}")
        }))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.limiter.acquire(io.cancel).await?;
        io.send(request).await
    }
}
