//! `preview`: each integration's plan for an event, printed. The requests are the ones a delivery
//! would send (body bytes exactly as sent and signed), or the reason it would skip the event.
//! Nothing is written; an integration that must look something up first (a pull request, its
//! earlier comment) makes those reads. Secrets never appear in the output.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use reqwest::header::ACCEPT;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::RunEvent;
use crate::integrations::{
    Integration, Notification, OutgoingRequest, Plan, build_all, http_client,
};
use crate::protocol::USER_AGENT;

/// Shown instead of a secret: a sensitive header value, the path of a secret webhook URL.
pub const REDACTED: &str = "***";

/// Introduces the pretty copy of a JSON body, after the exact bytes.
pub const PRETTY_LABEL: &str = "-- the same body pretty-printed, for reading only (the line above is what is sent and signed):";

/// Reads the event at `path` and renders what `config`'s integrations would do with it.
pub async fn preview_file(config: &Config, path: &Path) -> anyhow::Result<String> {
    let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let event = match RunEvent::parse(&body) {
        Ok(event) => event,
        Err(err) => bail!(
            "{}: the worker would dead-letter this event, so nothing would be sent: {err}",
            path.display()
        ),
    };
    preview(config, &event).await
}

/// What each integration would send for `event` now (first attempts, as the worker routes a
/// new event), or why it would skip it.
pub async fn preview(config: &Config, event: &RunEvent) -> anyhow::Result<String> {
    let integrations = build_all(&config.integrations, &config.templates_dir, &http_client())?;
    Ok(render(&integrations, event, Utc::now()).await)
}

/// The preview of `event` through `integrations`, planned as at `now` (webhook signatures
/// cover their timestamp).
pub async fn render(integrations: &[Integration], event: &RunEvent, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "Preview of event {} (run {}); nothing is sent (lookups a plan needs are read).\n",
        event.event_id, event.data.run_id
    );
    let cancel = CancellationToken::new();
    for integration in integrations {
        let name = integration.name();
        let kind = integration.kind();
        if let Err(reason) = integration.admit(event) {
            let _ = writeln!(out, "\n== {name} ({kind}): skipped: {reason}");
            continue;
        }
        let notification = Notification {
            event,
            integration: name,
            attempt: 1,
            resumed: false,
            object_id: None,
        };
        match integration.plan(&notification, &cancel, now).await {
            Ok(Plan::Send(steps)) => {
                for step in steps {
                    let _ = write!(
                        out,
                        "\n== {name} ({kind}): would send\n{}",
                        show(&step.request)
                    );
                }
            }
            Ok(Plan::Skip(reason)) => {
                let _ = writeln!(out, "\n== {name} ({kind}): skipped: {reason}");
            }
            Err(error) => {
                let _ = writeln!(out, "\n== {name} ({kind}): would fail: {error}");
                // The lookup failed, not the template: what it would write still shows.
                if let Some(draft) = integration.draft(&notification) {
                    let _ = write!(
                        out,
                        "once that lookup answers, it would {} {} with this body:\n{}",
                        draft.methods,
                        draft.target,
                        show_body(&draft.body)
                    );
                }
            }
        }
    }
    out
}

/// One request as text: request line, headers (secrets as `***`, and the client's own
/// `user-agent` and default `accept`), a blank line, the body bytes exactly as sent, then a
/// labelled pretty copy when the body is JSON.
pub fn show(request: &OutgoingRequest) -> String {
    let mut out = format!("{} {}\n", request.method, request.shown_url());
    for (name, value) in &request.headers {
        let value = if value.is_sensitive() {
            REDACTED
        } else {
            value.to_str().unwrap_or("(not text)")
        };
        let _ = writeln!(out, "{name}: {value}");
    }
    let _ = writeln!(out, "user-agent: {USER_AGENT}");
    if !request.headers.contains_key(ACCEPT) {
        let _ = writeln!(out, "accept: */*");
    }
    out.push_str(&show_body(&request.body));
    out
}

/// A blank line, the body bytes exactly as sent, then a labelled pretty copy when it is JSON.
fn show_body(body: &[u8]) -> String {
    let mut out = format!("\n{}\n", String::from_utf8_lossy(body));
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        let pretty = serde_json::to_string_pretty(&json).expect("a JSON value serialises");
        if pretty.as_bytes() != body {
            let _ = writeln!(out, "{PRETTY_LABEL}\n{pretty}");
        }
    }
    out
}
