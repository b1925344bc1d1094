//! The `teams` integration: an Adaptive Card rendered from a template and POSTed to a Teams
//! Workflows webhook, shortened before sending when it is larger than Teams accepts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::http::secret_url;
use super::{
    Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems, http_status,
    settings,
};
use crate::event::{EventType, TERMINAL_EVENTS};
use crate::failure::DeliveryError;
use crate::render::{Format, TemplateError, Templates, template_path, truncate};
use crate::route::Filters;
use crate::secret::Secret;

/// The default template, under `templates_dir`.
pub const DEFAULT_TEMPLATE: &str = "teams/card.json.hbs";
/// Teams refuses messages over about 28 KB; stay a little below.
pub const MAX_PAYLOAD_BYTES: usize = 27 * 1024;
/// The content type of an Adaptive Card attachment.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// The newest card schema Teams renders everywhere (mobile included).
const MAX_CARD_VERSION: (u32, u32) = (1, 4);
/// Keys whose strings are structure or links, never shortened.
const KEEP: [&str; 7] = [
    "type",
    "version",
    "contentType",
    "$schema",
    "url",
    "style",
    "id",
];

crate::integrations::keyed! {
/// Config of a `type: teams` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    /// The Workflows webhook URL; its `sig=` parameter is the credential, so it is a secret.
    pub webhook_url: Secret,
    /// A template file to use instead of `<templates_dir>/teams/card.json.hbs`.
    #[serde(default)]
    pub template: Option<PathBuf>,
}
}

settings!(TeamsConfig);

impl Checks for TeamsConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.template.iter_mut().collect()
    }

    /// Compiles the template and checks that every sample renders a card Teams accepts.
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Teams::MARKUP, &self.common.name, &path)?;
        templates.check_json(Teams::MARKUP, &self.common.name, &path, check_message)
    }
}

/// What a Workflows webhook needs: a `message` whose first attachment is an Adaptive Card of
/// version 1.4 or lower with a `body` array.
pub fn check_message(message: &Value) -> Result<(), String> {
    if message.get("type").and_then(Value::as_str) != Some("message") {
        return Err("a Teams message needs `\"type\": \"message\"`".into());
    }
    let attachment = message
        .pointer("/attachments/0")
        .ok_or("a Teams message needs one Adaptive Card in `attachments`")?;
    if attachment.get("contentType").and_then(Value::as_str) != Some(CARD_CONTENT_TYPE) {
        return Err(format!(
            "the attachment's `contentType` must be `{CARD_CONTENT_TYPE}`"
        ));
    }
    let card = attachment
        .get("content")
        .ok_or("the attachment needs a `content` card")?;
    if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        return Err("the card needs `\"type\": \"AdaptiveCard\"`".into());
    }
    let version = card.get("version").and_then(Value::as_str).unwrap_or("");
    let parsed = version
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some(v) if v <= MAX_CARD_VERSION => {}
        _ => {
            return Err(format!(
                "the card `version` must be \"1.0\" to \"1.4\" (Teams mobile renders no newer), not `{version}`"
            ));
        }
    }
    if !card.get("body").is_some_and(Value::is_array) {
        return Err("the card needs a `body` array".into());
    }
    Ok(())
}

/// Shortens a message over [`MAX_PAYLOAD_BYTES`]: long texts first, step by step, then trailing
/// body elements, then the whole body becomes one line; the structure stays valid throughout.
/// Returns whether anything was cut.
pub fn fit(message: &mut Value) -> bool {
    let fits = |m: &Value| size(m) <= MAX_PAYLOAD_BYTES;
    if fits(message) {
        return false;
    }
    for limit in [2_000, 1_000, 500, 200, 100, 40] {
        shorten(message, limit);
        if fits(message) {
            return true;
        }
    }
    let body_size = message
        .pointer("/attachments/0/content/body")
        .map_or(0, size);
    let overhead = size(message).saturating_sub(body_size);
    if let Some(body) = message
        .pointer_mut("/attachments/0/content/body")
        .and_then(Value::as_array_mut)
    {
        // The body serialises as a part of the message: `[a,b,…]` is the elements, the commas
        // between them and two brackets.
        let mut total = body.iter().map(|e| size(e) + 1).sum::<usize>() + 1;
        while body.len() > 1 && overhead + total > MAX_PAYLOAD_BYTES {
            total -= body.pop().map_or(0, |e| size(&e) + 1);
        }
    }
    if !fits(message)
        && let Some(body) = message.pointer_mut("/attachments/0/content/body")
    {
        *body = json!([{
            "type": "TextBlock",
            "text": "This card was too large for Teams; open the run for the details.",
            "wrap": true
        }]);
    }
    true
}

fn size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn shorten(value: &mut Value, limit: usize) {
    match value {
        Value::String(text) if text.chars().count() > limit => *text = truncate(text, limit),
        Value::Array(items) => items.iter_mut().for_each(|item| shorten(item, limit)),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if !KEEP.contains(&key.as_str()) {
                    shorten(item, limit);
                }
            }
        }
        _ => {}
    }
}

/// A Teams integration, ready to send.
#[derive(Debug)]
pub struct Teams {
    config: TeamsConfig,
    templates: Arc<Templates>,
    /// The webhook URL, parsed once; a credential, never shown.
    url: Url,
}

impl Teams {
    /// The message for this event as sent: rendered as compact JSON, and fitted to Teams' size
    /// limit when it is over it (only then built into a value).
    pub fn body(&self, notification: &Notification<'_>) -> Result<Vec<u8>, DeliveryError> {
        let rendered = self
            .templates
            .render_compact(Self::MARKUP, &self.config.common.name, notification.event)
            .map_err(DeliveryError::permanent)?;
        if rendered.len() <= MAX_PAYLOAD_BYTES {
            return Ok(rendered.into_bytes());
        }
        let mut message: Value =
            serde_json::from_str(&rendered).expect("the rendering was checked to be JSON");
        if fit(&mut message) {
            tracing::debug!("the card was over {MAX_PAYLOAD_BYTES} bytes and was shortened");
        }
        Ok(serde_json::to_vec(&message).expect("a JSON value serialises"))
    }
}

impl Kind for Teams {
    const TYPE: &'static str = "teams";
    // A webhook cannot edit what it posted: a message per start would be noise.
    const DEFAULT_EVENTS: &'static [EventType] = &TERMINAL_EVENTS;
    const MARKUP: Format = Format::TEAMS_JSON;
    type Config = TeamsConfig;

    fn build(config: TeamsConfig, parts: &Parts) -> Result<Self, Problems> {
        let url = secret_url("webhook_url", &config.webhook_url)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            url,
        })
    }

    fn config(&self) -> &TeamsConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        _: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let request = OutgoingRequest::post_json(self.url.clone(), self.body(notification)?)
            .with_secret_url();
        Ok(Plan::one(request, http_status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(body: Vec<Value>) -> Value {
        json!({"type": "message", "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "content": {"type": "AdaptiveCard", "version": "1.4", "body": body,
                        "actions": [{"type": "Action.OpenUrl", "title": "View run",
                                     "url": format!("https://app.example.dev/{}", "r".repeat(300))}]}
        }]})
    }

    #[test]
    fn oversized_cards_are_shortened_and_stay_valid() {
        let long = "é".repeat(40_000);
        let mut message = card(vec![
            json!({"type": "TextBlock", "text": "Run cancelled by jane"}),
            json!({"type": "TextBlock", "text": long}),
        ]);
        assert!(fit(&mut message));
        assert!(size(&message) <= MAX_PAYLOAD_BYTES);
        assert_eq!(check_message(&message), Ok(()));
        let body = &message["attachments"][0]["content"]["body"];
        assert_eq!(body[0]["text"], "Run cancelled by jane");
        assert!(body[1]["text"].as_str().unwrap().ends_with('…'));
        let url = message
            .pointer("/attachments/0/content/actions/0/url")
            .unwrap();
        assert!(url.as_str().unwrap().len() > 300, "URLs are never cut");
    }

    #[test]
    fn cards_with_too_many_elements_lose_trailing_ones() {
        let many = vec![json!({"type": "TextBlock", "text": "x".repeat(39)}); 2_000];
        let mut message = card(many);
        assert!(fit(&mut message));
        assert!(size(&message) <= MAX_PAYLOAD_BYTES);
        assert_eq!(check_message(&message), Ok(()));
    }

    #[test]
    fn small_cards_are_left_alone() {
        let mut message = card(vec![json!({"type": "TextBlock", "text": "hi"})]);
        let before = message.clone();
        assert!(!fit(&mut message));
        assert_eq!(message, before);
    }

    #[test]
    fn malformed_messages_are_explained() {
        let ok = card(vec![]);
        assert_eq!(check_message(&ok), Ok(()));
        let mut newer = ok.clone();
        newer["attachments"][0]["content"]["version"] = json!("1.5");
        assert!(check_message(&newer).unwrap_err().contains("not `1.5`"));
        let mut legacy = ok.clone();
        legacy["attachments"][0]["contentType"] =
            json!("application/vnd.microsoft.teams.card.o365connector");
        assert!(check_message(&legacy).unwrap_err().contains("contentType"));
        assert!(check_message(&json!({"type": "message", "attachments": []})).is_err());
        let mut no_body = ok;
        no_body["attachments"][0]["content"]["body"] = Value::Null;
        assert!(check_message(&no_body).unwrap_err().contains("`body`"));
    }
}
