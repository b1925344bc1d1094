//! What templates see: the variables of an event, and the sample events every template must
//! render when the config loads.

use handlebars::Context;
use serde_json::{Value, json};

use chrono::{DateTime, FixedOffset, SecondsFormat};

use crate::event::{EventType, Reason, RunEvent, RunStatus};

fn rfc3339(time: &DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The variables every template can use. Every key is always present (null when unknown), so
/// strict mode only rejects names that do not exist. Built once per event, as the context
/// templates render against: a fan-out renders several templates of one event, and handlebars
/// would otherwise copy the variables into a context of its own for each.
pub fn variables(event: &RunEvent) -> &Context {
    event.variables.get_or_init(|| Context::from(build(event)))
}

fn build(event: &RunEvent) -> Value {
    let data = &event.data;
    let commit = &data.commit;
    let cancellation = event.cancellation();
    let timeout = event.timeout();
    let status = event.outcome();
    let event_type = event.event_type();
    json!({
        "eventId": event.event_id,
        "eventType": event_type.as_str(),
        "stage": event_type.short(),
        "started": event_type == EventType::Started,
        "finished": event_type == EventType::Finished,
        "timedOut": event_type == EventType::TimedOut,
        "canceled": event_type == EventType::Canceled,
        "terminal": event_type.is_terminal(),
        "time": rfc3339(&event.time),
        "runId": data.run_id,
        "runUrl": data.run_url.as_str(),
        "projectId": data.project_id,
        "projectName": data.project_name,
        "buildId": data.build_id,
        "groupId": data.group_id,
        "tags": data.tags,
        "pullRequest": data.pull_request.map(|pr| pr.0),
        "commit": {
            "sha": commit.sha,
            "shortSha": commit.sha.as_ref().map(|sha| sha.as_str()[..7].to_owned()),
            "branch": commit.branch,
            "defaultBranch": commit.default_branch,
            "message": commit.message,
            "authorName": commit.author_name,
            "authorEmail": commit.author_email,
            "remoteOrigin": commit.remote_origin,
        },
        // Always an object, so that `{{results.passes}}` works for every type: its counts
        // are null while a started run's results are unknown.
        "results": data.results.map_or_else(
            || json!({ "overall": null, "passes": null, "failures": null, "pending": null,
                       "skipped": null, "retries": null, "flaky": null }),
            |results| json!(results),
        ),
        "resultsKnown": data.results.is_some(),
        "status": status,
        "passed": status == Some(RunStatus::Passed),
        "failed": status == Some(RunStatus::Failed),
        "actor": cancellation.map(|c| &c.actor),
        "reason": cancellation.map(|c| c.reason.as_str()),
        "failFast": cancellation.is_some_and(|c| c.reason == Reason::FailFast),
        "canceledAt": cancellation.map(|c| rfc3339(&c.canceled_at)),
        "note": cancellation.and_then(|c| c.note.as_ref()),
        "timedOutAt": timeout.map(|t| rfc3339(&t.timed_out_at)),
        "limitSeconds": timeout.and_then(|t| t.limit_seconds),
        "limit": timeout.and_then(|t| t.limit_seconds).map(duration_text),
    })
}

/// A time limit as people write it: `30m`, `1h30m`, `45s`.
fn duration_text(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// Events every template must render: the documented example (a cancel), a fail-fast cancel,
/// a run outside git, one full of hostile strings, and a run's start (results unknown),
/// finish and timeout.
pub fn sample_events() -> Vec<(&'static str, RunEvent)> {
    let example: Value = serde_json::from_str(include_str!("../../config/example-event.json"))
        .expect("the example event is JSON");
    let parse = |value: &Value| {
        RunEvent::parse(value.to_string().as_bytes()).expect("sample events are valid")
    };

    let mut fail_fast = example.clone();
    fail_fast["data"]["cancellation"]["reason"] = json!("failFast");
    fail_fast["data"]["cancellation"]["actor"] = json!("fail-fast");

    let mut no_commit = example.clone();
    for key in [
        "commit",
        "pullRequest",
        "projectName",
        "buildId",
        "groupId",
        "tags",
    ] {
        no_commit["data"]
            .as_object_mut()
            .expect("data is an object")
            .remove(key);
    }
    no_commit["data"]["results"]["failures"] = json!(0);

    let hostile_text = "\"q\" \\ <script>alert(1)</script> <img src=x> @everyone [x](http://evil) | ` *_~ \n\r\t {{x}}";
    let mut hostile = example.clone();
    hostile["data"]["commit"]["branch"] = json!(hostile_text);
    hostile["data"]["commit"]["message"] = json!(format!("{hostile_text}{}", "x".repeat(10_000)));
    hostile["data"]["commit"]["authorName"] = json!(hostile_text);
    hostile["data"]["cancellation"]["actor"] = json!(hostile_text);
    hostile["data"]["cancellation"]["note"] = json!(hostile_text);
    hostile["data"]["projectName"] = json!(hostile_text);
    hostile["data"]["tags"] = json!([hostile_text, "@team"]);

    let of_type = |kind: EventType, extra: Value| {
        let mut event = example.clone();
        event["type"] = json!(kind.as_str());
        let data = event["data"].as_object_mut().expect("data is an object");
        data.remove("cancellation");
        for (key, value) in extra.as_object().expect("members") {
            data.insert(key.clone(), value.clone());
        }
        event
    };
    let started = of_type(EventType::Started, json!({ "results": null }));
    let finished = of_type(EventType::Finished, json!({}));
    let timed_out = of_type(
        EventType::TimedOut,
        json!({ "timeout": { "timedOutAt": "2026-11-21T10:45:00Z", "limitSeconds": 1800 } }),
    );

    vec![
        ("example", parse(&example)),
        ("fail-fast", parse(&fail_fast)),
        ("no-commit", parse(&no_commit)),
        ("hostile", parse(&hostile)),
        ("started", parse(&started)),
        ("finished", parse(&finished)),
        ("timed-out", parse(&timed_out)),
    ]
}
