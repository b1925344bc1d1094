//! The trial receiver's Slack Web API, as a Slack app uses it: `chat.postMessage` and
//! `chat.update` (messages are kept with their metadata), and the reads that find an earlier
//! message (`conversations.history`) or a channel by name (`conversations.list`).

use super::{Shared, json_of, text};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub(super) async fn post(State(trial): Shared, body: Bytes) -> Response {
    let mut message = json_of(&body);
    let channel = text(&message["channel"]).to_owned();
    let ts = format!("{}.{:06}", chrono::Utc::now().timestamp(), trial.next_id());
    message["ts"] = json!(ts);
    let said = format!("{channel} ts {ts}: \"{}\"", text(&message["text"]));
    trial.show("slack app", "POST chat.postMessage", "200 ok", &said, &body);
    trial
        .messages
        .lock()
        .expect("not poisoned")
        .entry(channel.clone())
        .or_default()
        .push(message.clone());
    Json(json!({"ok": true, "channel": channel, "ts": ts, "message": message})).into_response()
}

pub(super) async fn update(State(trial): Shared, body: Bytes) -> Response {
    let update = json_of(&body);
    let channel = text(&update["channel"]).to_owned();
    let ts = text(&update["ts"]).to_owned();
    let mut messages = trial.messages.lock().expect("not poisoned");
    let found = messages
        .get_mut(&channel)
        .and_then(|list| list.iter_mut().find(|m| m["ts"] == ts.as_str()));
    let answer = match found {
        Some(message) => {
            let metadata = message["metadata"].clone();
            *message = update.clone();
            message["metadata"] = metadata;
            json!({"ok": true, "channel": channel, "ts": ts})
        }
        None => json!({"ok": false, "error": "message_not_found"}),
    };
    let said = format!("{channel} ts {ts}: \"{}\"", text(&update["text"]));
    let status = if answer["ok"] == true {
        "200 ok"
    } else {
        "200 message_not_found"
    };
    trial.show("slack app", "POST chat.update", status, &said, &body);
    Json(answer).into_response()
}

pub(super) async fn history(State(trial): Shared, uri: Uri) -> Response {
    let channel = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "channel")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let messages = trial
        .messages
        .lock()
        .expect("not poisoned")
        .get(&channel)
        .cloned()
        .unwrap_or_default();
    let said = format!("{} message(s) in {channel}", messages.len());
    trial.show(
        "slack app",
        "GET conversations.history",
        "200 ok",
        &said,
        b"",
    );
    Json(json!({"ok": true, "messages": messages, "has_more": false,
        "response_metadata": {"next_cursor": ""}}))
    .into_response()
}

pub(super) async fn list(State(trial): Shared) -> Response {
    trial.show("slack app", "GET conversations.list", "200 ok", "", b"");
    let channels: Vec<Value> = trial
        .messages
        .lock()
        .expect("not poisoned")
        .keys()
        .map(|id| json!({"id": id, "name": id}))
        .collect();
    Json(json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": ""}}))
        .into_response()
}
