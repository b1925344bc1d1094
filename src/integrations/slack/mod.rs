//! The `slack` integration: a Block Kit message rendered from a template and POSTed to an
//! incoming webhook, cut to Slack's limits before it is sent.

mod answer;
mod fit;

pub use fit::{
    MAX_ACTION_ELEMENTS, MAX_BLOCKS, MAX_BUTTON_TEXT, MAX_CONTEXT_ELEMENTS, MAX_FIELD_TEXT,
    MAX_FIELDS, MAX_HEADER_TEXT, MAX_SECTION_TEXT, MAX_TEXT, fit,
};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::http::secret_url;
use super::limit::{Limiter, RateLimit};
use super::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    http_status, settings,
};
use crate::event::{EventType, TERMINAL_EVENTS};
use crate::failure::DeliveryError;
use crate::render::{Format, TemplateError, Templates, escape_slack, template_path};
use crate::route::Filters;
use crate::secret::Secret;

/// The default template, under `templates_dir`.
pub const DEFAULT_TEMPLATE: &str = "slack/message.json.hbs";

crate::integrations::keyed! {
/// Config of a `type: slack` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    /// The incoming-webhook URL (`https://hooks.slack.com/services/…`); it is the credential,
    /// so it is a secret, never printed.
    pub webhook_url: Secret,
    /// A template file to use instead of `<templates_dir>/slack/message.json.hbs`.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Messages per webhook; the default follows Slack's guidance of one message a second.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}
}

fn default_rate_limit() -> RateLimit {
    RateLimit::new(60, 1)
}

settings!(SlackConfig);

impl Checks for SlackConfig {
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
        templates.add_file(Slack::MARKUP, &self.common.name, &path)?;
        templates.check_json(Slack::MARKUP, &self.common.name, &path, check_message)
    }
}

/// What Slack needs of a message: a non-empty `text` (notifications and screen readers show
/// it), and `blocks` / `attachments` as arrays when present.
pub fn check_message(message: &Value) -> Result<(), String> {
    match message.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => {}
        _ => return Err("a Slack message needs a non-empty top-level `text`".into()),
    }
    for key in ["blocks", "attachments"] {
        if message.get(key).is_some_and(|v| !v.is_array()) {
            return Err(format!("`{key}` must be an array"));
        }
    }
    Ok(())
}

/// Sets `text` to `fallback` when the template left it missing or blank.
pub fn ensure_text(message: &mut Value, fallback: &str) {
    let blank = message
        .get("text")
        .and_then(Value::as_str)
        .is_none_or(|text| text.trim().is_empty());
    if blank && let Some(object) = message.as_object_mut() {
        object.insert("text".into(), Value::String(fallback.to_owned()));
    }
}

/// A Slack integration, ready to send.
#[derive(Debug)]
pub struct Slack {
    config: SlackConfig,
    templates: Arc<Templates>,
    /// The webhook URL, parsed once; a credential, never shown.
    url: Url,
    /// Shared by every integration posting to the same webhook.
    limiter: Limiter,
}

impl Slack {
    /// The message for this event, rendered and cut to Slack's limits.
    pub fn message(&self, notification: &Notification<'_>) -> Result<Value, DeliveryError> {
        render_message(&self.templates, &self.config.common.name, notification)
    }
}

/// The Block Kit message of `integration`'s template for this event, cut to Slack's limits:
/// the same for a webhook and an app.
pub(super) fn render_message(
    templates: &Templates,
    integration: &str,
    notification: &Notification<'_>,
) -> Result<Value, DeliveryError> {
    let mut message = templates
        .render_json(Slack::MARKUP, integration, notification.event)
        .map_err(DeliveryError::permanent)?;
    // Checked at load against the samples, but a real event can still render an empty
    // `text` (say, from a `null` note), and Slack refuses a message without one.
    let event = notification.event;
    let fallback = match event.cancellation() {
        Some(cancellation) => format!("Run cancelled by {}", escape_slack(&cancellation.actor)),
        None => match event.event_type() {
            EventType::Started => "Run started".to_owned(),
            EventType::TimedOut => "Run timed out".to_owned(),
            _ => "Run finished".to_owned(),
        },
    };
    ensure_text(&mut message, &fallback);
    fit(&mut message);
    Ok(message)
}

impl Kind for Slack {
    const TYPE: &'static str = "slack";
    // A webhook cannot edit what it posted: a message per start would be noise.
    const DEFAULT_EVENTS: &'static [EventType] = &TERMINAL_EVENTS;
    type Config = SlackConfig;
    const MARKUP: Format = Format::SLACK_JSON;

    /// Slack's incoming webhooks: success is `200` with the body `ok`; an error is a body
    /// such as `invalid_payload` or `channel_not_found`, on a 4xx or even on a 200.
    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        answer::classify(answer.status, &answer.headers, &answer.body, now)
    }

    fn build(config: SlackConfig, parts: &Parts) -> Result<Self, Problems> {
        let mut problems = Problems::new();
        let url = problems.take(secret_url("webhook_url", &config.webhook_url));
        problems.extend(config.rate_limit.problems());
        let url = problems.or_built(url)?;
        let limiter =
            Limiter::for_credential(&["slack", config.webhook_url.expose()], config.rate_limit);
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            url,
            limiter,
        })
    }

    fn config(&self) -> &SlackConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        _: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let body =
            serde_json::to_vec(&self.message(notification)?).expect("a JSON value serialises");
        let request = OutgoingRequest::post_json(self.url.clone(), body).with_secret_url();
        Ok(Plan::one(request, http_status))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.limiter.acquire(io.cancel).await?;
        io.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_blank_text_gets_the_fallback() {
        let mut message = json!({"text": " ", "blocks": []});
        ensure_text(&mut message, "Run cancelled by jane");
        assert_eq!(message["text"], "Run cancelled by jane");
        let mut message = json!({"blocks": []});
        ensure_text(&mut message, "x");
        assert_eq!(message["text"], "x");
        let mut message = json!({"text": "kept"});
        ensure_text(&mut message, "x");
        assert_eq!(message["text"], "kept");
    }

    #[test]
    fn messages_without_text_are_refused() {
        assert!(check_message(&json!({"text": "hi", "blocks": []})).is_ok());
        for bad in [
            json!({"blocks": []}),
            json!({"text": " "}),
            json!({"text": "a", "blocks": {}}),
        ] {
            assert!(check_message(&bad).is_err(), "{bad}");
        }
    }
}
