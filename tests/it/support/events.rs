//! Event fixtures: the documented example event with fresh ids, and hostile text.

use serde_json::{Value, json};

/// The example event of the README, the one fixture every test starts from.
pub const EXAMPLE_EVENT: &str = include_str!("../../../config/example-event.json");

/// The commit sha of [`EXAMPLE_EVENT`].
pub const SHA: &str = "5a7edc9a156e417068060d67109021351fc7d9b8";

/// Text that tries every injection a rendered message must neutralise.
pub const HOSTILE: &str = "<script>alert(1)</script> <img src=x onerror=alert(1)> @everyone [click](http://evil.example) | break | `code` **bold**\n# heading";

/// A name no other test (or earlier run) uses: `prefix-` and 16 hex digits.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// [`EXAMPLE_EVENT`] for run `run_id`, with a fresh event id and the matching run URL.
pub fn event_for(run_id: &str) -> Value {
    let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
    event["id"] = json!(unique("evt"));
    event["data"]["runId"] = json!(run_id);
    event["data"]["runUrl"] = json!(format!("https://app.example.dev/run/{run_id}"));
    event
}

/// [`EXAMPLE_EVENT`] for a fresh run.
pub fn event() -> Value {
    event_for(&unique("run"))
}

/// An event of `run_id`'s life, built from [`EXAMPLE_EVENT`] with a fresh event id: `kind` is
/// `run.started` (results unknown), `run.finished`, `run.timed_out` (a 30-minute limit) or
/// `run.canceled` (the example), happening at `time` (RFC 3339).
pub fn lifecycle_event(run_id: &str, kind: &str, time: &str) -> Value {
    let mut event = event_for(run_id);
    event["type"] = json!(kind);
    event["time"] = json!(time);
    let data = event["data"].as_object_mut().unwrap();
    if kind != "run.canceled" {
        data.remove("cancellation");
    }
    match kind {
        "run.started" => {
            data.remove("results");
        }
        "run.timed_out" => {
            data.insert(
                "timeout".into(),
                json!({ "timedOutAt": time, "limitSeconds": 1800 }),
            );
        }
        _ => {}
    }
    event
}
