//! What templates see: the variables of an event, and the sample events every template must
//! render when the config loads.

use serde_json::{Value, json};

use crate::event::{Reason, RunCanceled};

/// The variables every template can use. Every key is always present (null when unknown), so
/// strict mode only rejects names that do not exist.
pub fn variables(event: &RunCanceled) -> Value {
    let data = &event.data;
    let commit = &data.commit;
    let results = &data.results;
    let cancellation = &data.cancellation;
    let status = results.status();
    json!({
        "eventId": event.event_id,
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
        "results": results,
        "status": status,
        "passed": status == crate::event::RunStatus::Passed,
        "failed": status == crate::event::RunStatus::Failed,
        "actor": cancellation.actor,
        "reason": cancellation.reason.as_str(),
        "failFast": cancellation.reason == Reason::FailFast,
        "canceledAt": cancellation.canceled_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "note": cancellation.note,
    })
}

/// Events every template must render: the documented example, a fail-fast cancel, a run
/// outside git, and one full of hostile strings.
pub fn sample_events() -> Vec<(&'static str, RunCanceled)> {
    let example: Value = serde_json::from_str(include_str!("../../config/example-event.json"))
        .expect("the example event is JSON");
    let parse = |value: &Value| {
        RunCanceled::parse(value.to_string().as_bytes()).expect("sample events are valid")
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

    vec![
        ("example", parse(&example)),
        ("fail-fast", parse(&fail_fast)),
        ("no-commit", parse(&no_commit)),
        ("hostile", parse(&hostile)),
    ]
}
