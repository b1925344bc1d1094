//! The `slack` integration: a Block Kit message rendered from a template and POSTed to an
//! incoming webhook, cut to Slack's limits before it is sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::http::secret_url;
use super::limit::{Limiter, RateLimit};
use super::{
    Answer, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, http_status, settings,
};
use crate::failure::{DeliveryError, Dialect};
use crate::render::{Format, TemplateError, Templates, escape_slack, template_path, truncate};
use crate::route::Filters;
use crate::secret::Secret;

/// The default template, under `templates_dir`.
pub const DEFAULT_TEMPLATE: &str = "slack/message.json.hbs";

/// Slack's Block Kit limits; longer content is cut (a message over a limit is rejected whole).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const MAX_ACTION_ELEMENTS: usize = 25;
/// Slack truncates the top-level `text` beyond this.
pub const MAX_TEXT: usize = 40_000;

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

fn default_rate_limit() -> RateLimit {
    RateLimit::new(60, 1)
}

settings!(SlackConfig);

impl SlackConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = secret_url("webhook_url", &self.webhook_url)
            .err()
            .into_iter()
            .collect();
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

/// Cuts a rendered message to Slack's limits, so that long user text shortens the message
/// instead of getting it rejected as `invalid_payload`.
pub fn fit(message: &mut Value) {
    cut(message.get_mut("text"), MAX_TEXT);
    if let Some(blocks) = message.get_mut("blocks").and_then(Value::as_array_mut) {
        fit_blocks(blocks);
    }
    if let Some(attachments) = message.get_mut("attachments").and_then(Value::as_array_mut) {
        for attachment in attachments {
            if let Some(blocks) = attachment.get_mut("blocks").and_then(Value::as_array_mut) {
                fit_blocks(blocks);
            }
        }
    }
}

fn fit_blocks(blocks: &mut Vec<Value>) {
    blocks.truncate(MAX_BLOCKS);
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("header") => cut(block.pointer_mut("/text/text"), MAX_HEADER_TEXT),
            Some("section") => {
                cut(block.pointer_mut("/text/text"), MAX_SECTION_TEXT);
                if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                    fields.truncate(MAX_FIELDS);
                    for field in fields {
                        cut(field.get_mut("text"), MAX_FIELD_TEXT);
                    }
                }
                if let Some(accessory) = block.get_mut("accessory") {
                    fit_element(accessory);
                }
            }
            Some("context") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(MAX_CONTEXT_ELEMENTS);
                    for element in elements {
                        cut(element.get_mut("text"), MAX_SECTION_TEXT);
                    }
                }
            }
            Some("actions") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(MAX_ACTION_ELEMENTS);
                    elements.iter_mut().for_each(fit_element);
                }
            }
            _ => {}
        }
    }
}

fn fit_element(element: &mut Value) {
    if element.get("type").and_then(Value::as_str) == Some("button") {
        cut(element.pointer_mut("/text/text"), MAX_BUTTON_TEXT);
    }
}

/// Cuts a string to `max` characters with `…`, never through an entity such as `&amp;`.
fn cut(text: Option<&mut Value>, max: usize) {
    let Some(Value::String(text)) = text else {
        return;
    };
    if text.chars().count() <= max {
        return;
    }
    let mut kept = truncate(text, max);
    kept.pop(); // the `…`
    if let Some(amp) = kept.rfind('&')
        && kept.len() - amp < "&amp;".len()
        && !kept[amp..].contains(';')
    {
        kept.truncate(amp);
    }
    kept.push('…');
    *text = kept;
}

/// A Slack integration, ready to send.
#[derive(Debug)]
pub struct Slack {
    config: SlackConfig,
    templates: Arc<Templates>,
    /// Shared by every integration posting to the same webhook.
    limiter: Limiter,
}

impl Slack {
    /// The message for this event, rendered and cut to Slack's limits.
    pub fn message(&self, notification: &Notification<'_>) -> Result<Value, DeliveryError> {
        let mut message = self
            .templates
            .render_json(
                Format::SlackJson,
                &self.config.common.name,
                notification.event,
            )
            .map_err(DeliveryError::permanent)?;
        // Checked at load against the samples, but a real event can still render an empty
        // `text` (say, from a `null` note), and Slack refuses a message without one.
        ensure_text(
            &mut message,
            &format!(
                "Run cancelled by {}",
                escape_slack(&notification.event.data.cancellation.actor)
            ),
        );
        fit(&mut message);
        Ok(message)
    }
}

impl Kind for Slack {
    const TYPE: &'static str = "slack";
    type Config = SlackConfig;

    fn problems(config: &SlackConfig) -> Vec<String> {
        config.problems()
    }

    fn register_templates(
        config: &SlackConfig,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        config.register_templates(templates, dir)
    }

    fn build(config: SlackConfig, parts: &Parts) -> Self {
        let limiter =
            Limiter::for_credential(&["slack", config.webhook_url.expose()], config.rate_limit);
        Self {
            config,
            templates: Arc::clone(&parts.templates),
            limiter,
        }
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
        let url = secret_url("webhook_url", &self.config.webhook_url)
            .map_err(DeliveryError::permanent)?;
        let request = OutgoingRequest::post_json(url, body)
            .with_secret_url()
            .with_dialect(Dialect::Slack);
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
    fn long_content_is_cut_to_slack_limits() {
        let long = "x".repeat(5_000);
        let button = json!({"type": "button", "text": {"type": "plain_text", "text": long}});
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": long}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": long},
                   "fields": vec![json!({"type": "mrkdwn", "text": long}); 12],
                   "accessory": button}),
            json!({"type": "actions", "elements": [button]}),
        ];
        blocks.extend(vec![json!({"type": "divider"}); 60]);
        let mut message = json!({"text": "x".repeat(50_000), "attachments": [{"blocks": blocks}]});
        fit(&mut message);
        let blocks = message["attachments"][0]["blocks"].as_array().unwrap();
        let chars = |v: &Value| v.as_str().unwrap().chars().count();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(chars(&blocks[0]["text"]["text"]), MAX_HEADER_TEXT);
        assert_eq!(chars(&blocks[1]["text"]["text"]), MAX_SECTION_TEXT);
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), MAX_FIELDS);
        assert!(fields.iter().all(|f| chars(&f["text"]) == MAX_FIELD_TEXT));
        assert_eq!(
            chars(&blocks[1]["accessory"]["text"]["text"]),
            MAX_BUTTON_TEXT
        );
        assert_eq!(
            chars(&blocks[2]["elements"][0]["text"]["text"]),
            MAX_BUTTON_TEXT
        );
        assert_eq!(chars(&message["text"]), MAX_TEXT);
        assert!(message["text"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn cutting_never_splits_an_entity() {
        let mut text = json!(format!("{}&amp;tail", "a".repeat(72)));
        cut(Some(&mut text), MAX_BUTTON_TEXT);
        assert_eq!(text, json!(format!("{}…", "a".repeat(72))));
    }

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
