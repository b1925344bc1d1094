//! `preview`: the exact requests an event would cause, integration by integration, and why the
//! others would skip it, without sending anything. Secrets never appear in the output.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::config::Config;
use crate::event::RunCanceled;
use crate::integrations::{Notification, OutgoingRequest, build_all, http_client};
use crate::protocol::USER_AGENT;
use crate::render::TemplateError;

/// Shown instead of a secret: a sensitive header value, the path of a secret webhook URL.
pub const REDACTED: &str = "***";

/// Reads the event at `path` and renders what `config`'s integrations would do with it.
pub fn preview_file(config: &Config, path: &Path) -> anyhow::Result<String> {
    let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let event = match RunCanceled::parse(&body) {
        Ok(event) => event,
        Err(err) => bail!(
            "{}: the worker would dead-letter this event, so nothing would be sent: {err}",
            path.display()
        ),
    };
    preview(config, &event)
}

/// What each integration would send for `event` (first attempts, as the worker routes a new
/// event), or why it would skip it.
pub fn preview(config: &Config, event: &RunCanceled) -> anyhow::Result<String> {
    let integrations = build_all(config, &http_client()).map_err(TemplateError::all)?;
    let mut out = format!(
        "Preview of event {} (run {}); nothing is sent.\n",
        event.event_id, event.data.run_id
    );
    for integration in &integrations {
        let name = integration.name();
        let kind = integration.kind();
        let outcome = integration.filters().admit(&event.data).and_then(|()| {
            integration.preview(&Notification {
                event,
                integration: name,
                attempt: 1,
                resumed: false,
            })
        });
        match outcome {
            Ok(requests) => {
                for request in requests {
                    let _ = write!(out, "\n== {name} ({kind}): would send\n{}", show(&request));
                }
            }
            Err(reason) => {
                let _ = writeln!(out, "\n== {name} ({kind}): skipped: {reason}");
            }
        }
    }
    Ok(out)
}

/// One request as text: request line, headers (secrets as `***`), a blank line, the body
/// (pretty when it is JSON).
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
    let body = match serde_json::from_slice::<Value>(&request.body) {
        Ok(json) => serde_json::to_string_pretty(&json).expect("a JSON value serialises"),
        Err(_) => String::from_utf8_lossy(&request.body).into_owned(),
    };
    let _ = writeln!(out, "\n{body}");
    out
}
