//! Finding this worker's earlier message for a run in a channel's history, by its metadata.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::METADATA_EVENT_TYPE;
use super::api::{MAX_PAGES, SlackApi, next_cursor};
use crate::failure::DeliveryError;
use crate::integrations::{Io, Notification};

/// How far before the cancellation the search starts: the message is posted after it, and
/// the dashboard's clock may run ahead of Slack's.
const CLOCK_MARGIN_SECS: i64 = 3_600;
/// Messages per history page.
const PAGE: &str = "200";

/// Whether `message` is the one this integration posted for this run.
pub fn is_ours(message: &Value, notification: &Notification<'_>) -> bool {
    let Some(metadata) = message.get("metadata") else {
        return false;
    };
    metadata["event_type"].as_str() == Some(METADATA_EVENT_TYPE)
        && metadata["event_payload"]["run_id"].as_str()
            == Some(notification.event.data.run_id.as_str())
        && metadata["event_payload"]["integration"].as_str() == Some(notification.integration)
}

/// The `ts` of this integration's message for the run in `channel`, posted since about
/// `since`, looking at every page (`conversations.history` with `include_all_metadata`:
/// without it Slack leaves the payload out).
pub async fn find_message(
    api: &SlackApi,
    channel: &str,
    notification: &Notification<'_>,
    since: DateTime<Utc>,
    io: &Io<'_>,
) -> Result<Option<String>, DeliveryError> {
    let oldest = (since.timestamp() - CLOCK_MARGIN_SECS).max(0).to_string();
    let mut cursor = String::new();
    for _ in 0..MAX_PAGES {
        let mut query = vec![
            ("channel", channel),
            ("include_all_metadata", "true"),
            ("oldest", oldest.as_str()),
            ("limit", PAGE),
        ];
        if !cursor.is_empty() {
            query.push(("cursor", cursor.as_str()));
        }
        let page = api
            .call(api.get("conversations.history", &query)?, io)
            .await?;
        let found = page["messages"].as_array().and_then(|messages| {
            messages
                .iter()
                .find(|m| is_ours(m, notification))
                .and_then(|m| m["ts"].as_str())
        });
        if let Some(ts) = found {
            return Ok(Some(ts.to_owned()));
        }
        cursor = next_cursor(&page);
        if cursor.is_empty() {
            return Ok(None);
        }
    }
    Err(DeliveryError::permanent(format!(
        "the channel has more than {MAX_PAGES} pages of messages since the run was cancelled; \
         not searched further"
    )))
}
