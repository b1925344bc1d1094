//! A Slack workspace with one channel, for the `slack_app` tests: wiremock answers the Web API
//! methods from shared state (post, update, history in pages with metadata only when asked),
//! so a test sees what the channel would show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CHANNEL_ID: &str = "C0123ABCD";
pub const TOKEN: &str = "xoxb-test-token";

/// One message as the channel keeps it.
#[derive(Debug, Clone)]
pub struct Message {
    pub ts: String,
    pub body: Value,
    pub edits: u32,
}

/// Runs when a `chat.postMessage` arrives, before Slack answers (a test's hook).
pub type Hook = Arc<dyn Fn() + Send + Sync>;

/// The channel and its Web API.
#[derive(Clone)]
pub struct Channel {
    pub messages: Arc<Mutex<Vec<Message>>>,
    /// Messages ever posted (filler included): the next `ts`, never one a deleted message had.
    posted: Arc<AtomicUsize>,
    page_size: usize,
    on_post: Option<Hook>,
}

impl Channel {
    /// A channel with `filler` messages by others (some with other metadata), `page_size` to a
    /// history page.
    pub fn new(filler: usize, page_size: usize) -> Self {
        let messages = (0..filler)
            .map(|i| Message {
                ts: format!("1700000000.{i:06}"),
                body: json!({"text": format!("chatter {i}"), "metadata": {
                    "event_type": "run_canceled",
                    "event_payload": {"run_id": format!("other-run-{i}"), "integration": "slack-app"},
                }}),
                edits: 0,
            })
            .collect();
        Self {
            messages: Arc::new(Mutex::new(messages)),
            posted: Arc::new(AtomicUsize::new(filler)),
            page_size,
            on_post: None,
        }
    }

    pub fn on_post(mut self, hook: Hook) -> Self {
        self.on_post = Some(hook);
        self
    }

    /// The messages whose metadata names `run_id`.
    pub fn for_run(&self, run_id: &str) -> Vec<Message> {
        let messages = self.messages.lock().unwrap();
        messages
            .iter()
            .filter(|m| m.body["metadata"]["event_payload"]["run_id"] == run_id)
            .cloned()
            .collect()
    }

    /// The `ts` of the next message posted.
    fn next_ts(&self) -> String {
        let posted = self.posted.fetch_add(1, Ordering::SeqCst);
        format!("1800000000.{posted:06}")
    }

    /// Message `ts` deleted (by someone in the channel): Slack no longer knows it.
    pub fn delete(&self, ts: &str) {
        self.messages.lock().unwrap().retain(|m| m.ts != ts);
    }

    /// `n` messages by others after what is there (newer, so they come first in history).
    pub fn add_chatter(&self, n: usize) {
        let mut messages = self.messages.lock().unwrap();
        for i in 0..n {
            let ts = self.next_ts();
            messages.push(Message {
                ts,
                body: json!({"text": format!("later chatter {i}")}),
                edits: 0,
            });
        }
    }

    pub async fn mount(&self, server: &MockServer) {
        for method_name in ["chat.postMessage", "chat.update", "conversations.history"] {
            Mock::given(path(format!("/api/{method_name}")))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path("/api/conversations.list"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "channels": [{"id": "C0000OTHER", "name": "random"}, {"id": CHANNEL_ID, "name": "deploys"}],
                "response_metadata": {"next_cursor": ""},
            })))
            .mount(server)
            .await;
    }
}

fn ok(mut body: Value) -> ResponseTemplate {
    body["ok"] = json!(true);
    ResponseTemplate::new(200).set_body_json(body)
}

impl Respond for Channel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        assert_eq!(
            request.headers["authorization"].to_str().unwrap(),
            format!("Bearer {TOKEN}")
        );
        let method_name = request.url.path().rsplit('/').next().unwrap();
        match method_name {
            "chat.postMessage" => {
                if let Some(hook) = &self.on_post {
                    hook();
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let mut messages = self.messages.lock().unwrap();
                let ts = self.next_ts();
                messages.push(Message {
                    ts: ts.clone(),
                    body,
                    edits: 0,
                });
                ok(json!({"channel": CHANNEL_ID, "ts": ts}))
            }
            "chat.update" => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(body["channel"], CHANNEL_ID, "updates name the channel id");
                let mut messages = self.messages.lock().unwrap();
                let Some(message) = messages.iter_mut().find(|m| body["ts"] == m.ts.as_str())
                else {
                    return ok(json!({}))
                        .set_body_json(json!({"ok": false, "error": "message_not_found"}));
                };
                // No `metadata` in an update keeps the message's own.
                let metadata = message.body["metadata"].clone();
                message.body = body.clone();
                message.body["metadata"] = metadata;
                message.edits += 1;
                ok(json!({"channel": CHANNEL_ID, "ts": message.ts}))
            }
            "conversations.history" => {
                let query: std::collections::HashMap<String, String> =
                    request.url.query_pairs().into_owned().collect();
                assert_eq!(query["channel"], CHANNEL_ID, "history takes the channel id");
                let with_metadata = query
                    .get("include_all_metadata")
                    .is_some_and(|v| v == "true");
                let start: usize = query.get("cursor").map_or(0, |c| c.parse().unwrap());
                let messages = self.messages.lock().unwrap();
                // Newest first, as Slack lists them.
                let page: Vec<Value> = messages
                    .iter()
                    .rev()
                    .skip(start)
                    .take(self.page_size)
                    .map(|m| {
                        let mut shown =
                            json!({"type": "message", "ts": m.ts, "text": m.body["text"]});
                        if with_metadata {
                            shown["metadata"] = m.body["metadata"].clone();
                        } else if m.body.get("metadata").is_some() {
                            // Without the flag Slack names the type but leaves the payload out.
                            shown["metadata"] =
                                json!({"event_type": m.body["metadata"]["event_type"]});
                        }
                        shown
                    })
                    .collect();
                let next = if start + self.page_size < messages.len() {
                    (start + self.page_size).to_string()
                } else {
                    String::new()
                };
                ok(
                    json!({"messages": page, "has_more": !next.is_empty(), "response_metadata": {"next_cursor": next}}),
                )
            }
            other => panic!("unexpected Slack method {other}"),
        }
    }
}
