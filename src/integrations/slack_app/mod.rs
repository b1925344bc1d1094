//! The `slack_app` integration: a Block Kit message posted by a Slack app (bot token) with
//! `chat.postMessage`, carrying message metadata that names the run, so that a delivery whose
//! earlier attempt may have posted (a retry, or a takeover after a crash between Slack's
//! answer and the ledger record) finds its message in the channel and edits it with
//! `chat.update` instead of posting a second one.

mod answer;
pub mod api;
pub mod history;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use self::api::SlackApi;
use super::limit::{Limiter, RateLimit};
use super::slack::{Slack, check_message, render_message};
use super::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems, Step,
    settings,
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
    /// Also reply in the run's message thread at each end of the run (finished, timed out,
    /// cancelled) that edits a message posted earlier, so the channel's members are told.
    #[serde(default)]
    pub thread_replies: bool,
}
}

fn default_api_url() -> Url {
    Url::parse(DEFAULT_API_URL).expect("a valid URL")
}

fn default_rate_limit() -> RateLimit {
    RateLimit::new(60, 1)
}

settings!(SlackAppConfig);

impl SlackAppConfig {
    /// Rules the grammar cannot express, as sentences.
    fn problems(&self) -> Problems {
        let mut problems = Problems::new();
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
}

impl Checks for SlackAppConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.template.iter_mut().collect()
    }

    /// Compiles the template and checks that every sample renders a message Slack accepts.
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(SlackApp::MARKUP, &self.common.name, &path)?;
        templates.check_json(SlackApp::MARKUP, &self.common.name, &path, check_message)
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

impl SlackApp {
    /// The run's first message, its channel and `ts` kept from the answer.
    fn post(&self, message: Value, notification: &Notification<'_>) -> Result<Plan, DeliveryError> {
        let post = Self::with(
            message,
            [
                ("channel", json!(self.config.channel)),
                ("metadata", Self::metadata(notification)),
            ],
        );
        let request = self.api.post("chat.postMessage", &post)?;
        let configured = self.config.channel.clone();
        let step = Step::new(request, move |answer: &Answer| {
            let answer: Value = serde_json::from_str(&answer.body).unwrap_or_default();
            let ts = answer["ts"].as_str().unwrap_or("?");
            let channel = answer["channel"].as_str().unwrap_or(&configured);
            format!("posted message {ts} in {channel}")
        })
        .keeping(|answer: &Answer| {
            let answer: Value = serde_json::from_str(&answer.body).ok()?;
            let reference = MessageRef {
                channel: answer["channel"].as_str()?.to_owned(),
                ts: answer["ts"].as_str()?.to_owned(),
            };
            Some(reference.to_string())
        });
        Ok(Plan::Send(vec![step]))
    }
}

/// Where the run's message is: the ledger keeps it as `<channel id> <ts>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MessageRef {
    channel: String,
    ts: String,
}

impl MessageRef {
    fn parse(kept: &str) -> Option<Self> {
        let (channel, ts) = kept.split_once(' ')?;
        Some(Self {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
        })
    }
}

impl std::fmt::Display for MessageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.channel, self.ts)
    }
}

impl Kind for SlackApp {
    const TYPE: &'static str = "slack_app";
    type Config = SlackAppConfig;
    /// The same messages as `type: slack`.
    const MARKUP: Format = Slack::MARKUP;

    /// Slack's Web API: success is `"ok": true` in a JSON body; an `"ok": false` answer
    /// (often with HTTP 200) is classified by its `error` code.
    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        answer::classify(answer.status, &answer.headers, &answer.body, now)
    }

    /// The message an update names was deleted: `message_not_found`.
    fn gone(answer: &Answer) -> bool {
        answer::gone(&answer.body)
    }

    fn build(config: SlackAppConfig, parts: &Parts) -> Result<Self, Problems> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        let limiter = Limiter::for_credential(
            &["slack_app", config.token.expose(), &config.channel],
            config.rate_limit,
        );
        let api = SlackApi::new(config.api_url.clone(), config.token.clone());
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            api,
            limiter,
        })
    }

    fn config(&self) -> &SlackAppConfig {
        &self.config
    }

    /// One message per run: the first event posts it, later ones edit it (`chat.update`) by
    /// the channel and `ts` the ledger kept (or post anew, should it have been deleted). When an earlier attempt may have posted without
    /// the ledger knowing (a retry, a takeover after a crash), the plan reads the channel's
    /// history first. With `thread_replies`, an end of the run that edits the message also
    /// replies in its thread.
    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let message = self.message(notification)?;
        let mut existing = notification.object_id.and_then(MessageRef::parse);
        // A message the ledger kept is edited without a look at the channel; should it have
        // been deleted, the delivery plans again without it (and posts anew).
        let kept = existing.is_some();
        if existing.is_none() && notification.outcome_unknown() {
            let channel = self.api.channel_id(&self.config.channel, io).await?;
            let since = notification.event.time.to_utc();
            existing = history::find_message(&self.api, &channel, notification, since, io)
                .await?
                .map(|ts| MessageRef { channel, ts });
        }
        let Some(MessageRef { channel, ts }) = existing else {
            return self.post(message, notification);
        };
        let reply = (self.config.thread_replies && notification.event.event_type().is_terminal())
            .then(|| json!({ "channel": channel, "thread_ts": ts, "text": message["text"] }));
        let update = Self::with(message, [("channel", json!(channel)), ("ts", json!(ts))]);
        let reference = MessageRef {
            channel: channel.clone(),
            ts: ts.clone(),
        }
        .to_string();
        let what = format!("message {ts} in {channel}");
        let mut update = Step::new(self.api.post("chat.update", &update)?, move |_: &Answer| {
            format!("updated message {ts} in {channel}")
        })
        .keeping(move |_| Some(reference.clone()));
        if kept {
            update = update.editing_kept(what);
        }
        let mut steps = vec![update];
        if let Some(reply) = reply {
            steps.push(Step::new(
                self.api.post("chat.postMessage", &reply)?,
                |answer: &Answer| {
                    let answer: Value = serde_json::from_str(&answer.body).unwrap_or_default();
                    format!(
                        "replied {} in the thread",
                        answer["ts"].as_str().unwrap_or("?")
                    )
                },
            ));
        }
        Ok(Plan::Send(steps))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.limiter.acquire(io.cancel).await?;
        io.send(request).await
    }
}
