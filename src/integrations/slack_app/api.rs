//! Calls to Slack's Web API with a bot token: JSON posts, form-encoded reads, the answer's
//! envelope checked by the kind's classifier, and channel names resolved to ids.

use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use url::Url;

use crate::failure::DeliveryError;
use crate::integrations::http::api_route;
use crate::integrations::{Io, OutgoingRequest};
use crate::secret::Secret;

/// Slack's answers to list calls can be large (history with metadata): read them whole.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// A guard against cursors that never end.
pub const MAX_PAGES: usize = 50;

/// One Slack workspace as one bot.
#[derive(Debug)]
pub struct SlackApi {
    api_url: Url,
    token: Secret,
}

impl SlackApi {
    pub fn new(api_url: Url, token: Secret) -> Self {
        Self { api_url, token }
    }

    fn url(&self, method: &str) -> Result<Url, DeliveryError> {
        api_route(&self.api_url, &format!("/{method}"), "Slack")
    }

    fn authorize(&self, mut request: OutgoingRequest) -> OutgoingRequest {
        let bearer = format!("Bearer {}", self.token.expose().trim());
        request.header(AUTHORIZATION, &bearer, true);
        request.with_max_answer(MAX_ANSWER_BYTES)
    }

    /// A JSON `POST {api_url}/{method}`.
    pub fn post(&self, method: &str, body: &Value) -> Result<OutgoingRequest, DeliveryError> {
        let json = serde_json::to_vec(body).expect("a JSON value serialises");
        let mut request = OutgoingRequest::post_json(self.url(method)?, json);
        request.header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
            false,
        );
        Ok(self.authorize(request))
    }

    /// A `GET {api_url}/{method}?{query}` (Slack's read methods take arguments as a query).
    pub fn get(
        &self,
        method: &str,
        query: &[(&str, &str)],
    ) -> Result<OutgoingRequest, DeliveryError> {
        let mut url = self.url(method)?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(self.authorize(OutgoingRequest::get(url)))
    }

    /// Sends a read; returns the answer's JSON once the classifier found `"ok": true`.
    pub async fn call(
        &self,
        request: OutgoingRequest,
        io: &Io<'_>,
    ) -> Result<Value, DeliveryError> {
        let answer = io.send(request).await?;
        serde_json::from_str(&answer.body)
            .map_err(|err| DeliveryError::permanent(format!("Slack's answer is not JSON: {err}")))
    }

    /// The channel's id: `channel` itself when it is one, else the id of the channel of that
    /// name (`#` optional), from `conversations.list`.
    pub async fn channel_id(&self, channel: &str, io: &Io<'_>) -> Result<String, DeliveryError> {
        if looks_like_id(channel) {
            return Ok(channel.to_owned());
        }
        let name = channel.trim_start_matches('#');
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("types", "public_channel,private_channel"),
                ("exclude_archived", "true"),
                ("limit", "200"),
            ];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let page = self
                .call(self.get("conversations.list", &query)?, io)
                .await?;
            let found = page["channels"].as_array().and_then(|channels| {
                channels
                    .iter()
                    .find(|c| c["name"].as_str() == Some(name))
                    .and_then(|c| c["id"].as_str())
            });
            if let Some(id) = found {
                return Ok(id.to_owned());
            }
            cursor = next_cursor(&page);
            if cursor.is_empty() {
                break;
            }
        }
        Err(DeliveryError::permanent(format!(
            "no channel named `{name}` is visible to the app (give `channel` as an id, or add \
             the `channels:read` / `groups:read` scope)"
        )))
    }
}

/// Channel ids are upper-case letters and digits starting with `C`, `G` or `D`.
pub fn looks_like_id(channel: &str) -> bool {
    channel.len() >= 9
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `response_metadata.next_cursor`, empty at the end.
pub fn next_cursor(page: &Value) -> String {
    page.pointer("/response_metadata/next_cursor")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_told_from_names() {
        for id in ["C0123ABCD", "G01ABCDEFGH", "D024BE91L"] {
            assert!(looks_like_id(id), "{id}");
        }
        for name in ["#deploys", "deploys", "ci-alerts", "C12", "Cdeploys01"] {
            assert!(!looks_like_id(name), "{name}");
        }
    }
}
