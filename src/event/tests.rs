//! Field rules of the run events, one test per rule.

use serde_json::{Value, json};

use super::*;

const EXAMPLE: &str = include_str!("../../config/example-event.json");

fn example() -> Value {
    serde_json::from_str(EXAMPLE).unwrap()
}

fn parse(value: &Value) -> Result<RunEvent, EventError> {
    RunEvent::parse(value.to_string().as_bytes())
}

fn field_error(value: &Value) -> (String, String) {
    match parse(value) {
        Err(EventError::Field { field, problem }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn the_documented_example_parses_into_typed_values() {
    let event = RunEvent::parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(event.event_id, "evt_01JD3X9Q8W7Y");
    let data = &event.data;
    assert_eq!(data.run_id.as_str(), "950a13c3edf4f28b6e8ce301a404b4aa");
    assert_eq!(data.results.unwrap().failures, 2);
    assert_eq!(event.outcome(), Some(RunStatus::Failed));
    assert_eq!(event.event_type(), EventType::Canceled);
    assert_eq!(event.cancellation().unwrap().reason, Reason::User);
    assert_eq!(event.time.to_rfc3339(), "2026-11-21T10:15:02+00:00");
    assert_eq!(data.pull_request, Some(PullRequestNumber(42)));
    assert_eq!(data.commit.repo().unwrap().to_string(), "acme/web-app");
}

#[test]
fn outcome_rule_is_passed_only_without_failures() {
    let mut results = RunEvent::parse(EXAMPLE.as_bytes())
        .unwrap()
        .data
        .results
        .unwrap();
    results.failures = 0;
    assert_eq!(results.status(), RunStatus::Passed);
    results.failures = 1;
    assert_eq!(results.status(), RunStatus::Failed);
}

#[test]
fn optional_members_may_be_missing_or_null() {
    let mut event = example();
    let data = event["data"].as_object_mut().unwrap();
    for key in [
        "projectName",
        "buildId",
        "groupId",
        "tags",
        "commit",
        "pullRequest",
    ] {
        data.remove(key);
    }
    let parsed = parse(&event).unwrap();
    assert_eq!(parsed.data.commit, Commit::default());
    assert!(parsed.data.tags.is_empty());

    let mut event = example();
    event["data"]["commit"] = Value::Null;
    event["data"]["tags"] = Value::Null;
    assert_eq!(parse(&event).unwrap().data.commit.repo(), None);
}

#[test]
fn partial_commit_is_accepted() {
    let mut event = example();
    event["data"]["commit"] = json!({ "branch": "main" });
    let commit = parse(&event).unwrap().data.commit;
    assert_eq!(commit.branch.as_deref(), Some("main"));
    assert_eq!(commit.sha, None);
}

#[test]
fn unknown_members_are_ignored() {
    let mut event = example();
    event["extension"] = json!("x");
    event["data"]["futureField"] = json!({ "a": 1 });
    event["data"]["results"]["newCount"] = json!(3);
    assert!(parse(&event).is_ok());
}

#[test]
fn not_json_is_named_as_such() {
    for body in [&b"{not json"[..], b"", b"\xff\xfe"] {
        assert!(
            matches!(RunEvent::parse(body), Err(EventError::NotJson(_))),
            "{body:?}"
        );
    }
}

#[test]
fn json_that_is_no_cloudevent_is_rejected() {
    for body in [json!([1, 2]), json!("text"), json!({ "hello": "world" })] {
        assert!(
            matches!(parse(&body), Err(EventError::NotCloudEvent(_))),
            "{body}"
        );
    }
    let mut event = example();
    event["specversion"] = json!("0.3");
    assert!(
        parse(&event)
            .unwrap_err()
            .to_string()
            .contains("`specversion` is `0.3`")
    );
    for member in ["id", "source", "specversion", "type"] {
        let mut event = example();
        event.as_object_mut().unwrap().remove(member);
        let message = parse(&event).unwrap_err().to_string();
        assert!(
            message.contains(&format!("`{member}` is missing")),
            "{message}"
        );
    }
}

#[test]
fn another_event_type_is_rejected_by_name() {
    let mut event = example();
    event["type"] = json!("run.paused");
    let err = parse(&event).unwrap_err();
    assert_eq!(err, EventError::WrongType("run.paused".into()));
    assert_eq!(
        err.to_string(),
        "CloudEvent type is `run.paused`, but this worker only handles `run.started`, \
         `run.finished`, `run.timed_out`, `run.canceled`"
    );
}

#[test]
fn every_required_data_member_is_named_when_missing() {
    for path in [
        "runId",
        "runUrl",
        "projectId",
        "results",
        "results.overall",
        "results.passes",
        "results.failures",
        "results.pending",
        "results.skipped",
        "results.retries",
        "results.flaky",
        "cancellation",
        "cancellation.canceledAt",
        "cancellation.reason",
        "cancellation.actor",
    ] {
        let mut event = example();
        let (parent, key) = match path.rsplit_once('.') {
            Some((parent, key)) => (&mut event["data"][parent], key),
            None => (&mut event["data"], path),
        };
        parent.as_object_mut().unwrap().remove(key);
        let message = parse(&event).unwrap_err().to_string();
        assert!(
            message.contains(&format!("missing field `{key}`")),
            "{path}: {message}"
        );
    }
    let mut event = example();
    event.as_object_mut().unwrap().remove("data");
    assert_eq!(field_error(&event).0, "data");
}

#[test]
fn counts_must_be_non_negative_integers() {
    for (bad, expected) in [
        (json!(-1), "invalid value: integer `-1`, expected u64"),
        (
            json!(1.5),
            "invalid type: floating point `1.5`, expected u64",
        ),
        (json!("3"), "invalid type: string \"3\", expected u64"),
        (Value::Null, "invalid type: null, expected u64"),
    ] {
        let mut event = example();
        event["data"]["results"]["passes"] = bad.clone();
        let (field, problem) = field_error(&event);
        assert_eq!(field, "data.results.passes", "{bad}: {problem}");
        // Said without a position inside `data`: the path says where.
        assert_eq!(problem, expected);
    }
}

#[test]
fn reason_is_one_of_the_four() {
    for (text, reason) in [
        ("user", Reason::User),
        ("api", Reason::Api),
        ("failFast", Reason::FailFast),
        ("ci", Reason::Ci),
    ] {
        let mut event = example();
        event["data"]["cancellation"]["reason"] = json!(text);
        assert_eq!(
            parse(&event).unwrap().cancellation().unwrap().reason,
            reason
        );
        assert_eq!(reason.as_str(), text);
    }
    let mut event = example();
    event["data"]["cancellation"]["reason"] = json!("timeout");
    let (field, problem) = field_error(&event);
    assert_eq!(field, "data.cancellation.reason");
    assert!(problem.contains("unknown variant `timeout`"), "{problem}");
}

#[test]
fn strings_that_break_a_rule_name_their_field() {
    for (path, bad) in [
        ("runId", json!("")),
        ("runId", json!("a\nb")),
        ("runId", json!("x".repeat(201))),
        ("runUrl", json!("not a url")),
        ("runUrl", json!("javascript:alert(1)")),
        ("projectId", json!("  ")),
        ("pullRequest", json!(0)),
        ("pullRequest", json!(-4)),
        ("tags", json!("nightly")),
    ] {
        let mut event = example();
        event["data"][path] = bad.clone();
        assert_eq!(field_error(&event).0, format!("data.{path}"), "{bad}");
    }
    for (path, bad) in [
        ("commit.sha", json!("not-a-sha")),
        ("commit.sha", json!("abc")),
        ("cancellation.actor", json!("")),
        ("cancellation.canceledAt", json!("yesterday")),
    ] {
        let mut event = example();
        let (parent, key) = path.split_once('.').unwrap();
        event["data"][parent][key] = bad.clone();
        assert_eq!(field_error(&event).0, format!("data.{path}"), "{bad}");
    }
}

#[test]
fn hostile_strings_are_kept_verbatim_for_the_integrations_to_escape() {
    let hostile = "\"quote\" \\back\\slash <script>alert(1)</script> @everyone\nnew line";
    let long = "x".repeat(10_000);
    let mut event = example();
    event["data"]["commit"]["branch"] = json!(hostile);
    event["data"]["commit"]["message"] = json!(long);
    event["data"]["cancellation"]["actor"] = json!(hostile);
    event["data"]["tags"] = json!([hostile]);
    let event = parse(&event).unwrap();
    let data = &event.data;
    assert_eq!(data.commit.branch.as_deref(), Some(hostile));
    assert_eq!(data.commit.message.as_deref(), Some(long.as_str()));
    assert_eq!(event.cancellation().unwrap().actor, hostile);
}

#[test]
fn sha_is_normalised_to_lower_case() {
    let sha = CommitSha::parse("5A7EDC9A156E417068060D67109021351FC7D9B8").unwrap();
    assert_eq!(sha.as_str(), "5a7edc9a156e417068060d67109021351fc7d9b8");
}

/// The example turned into an event of `kind`: the cancellation dropped, `extra` merged into
/// `data`.
fn lifecycle(kind: &str, extra: Value) -> Value {
    let mut event = example();
    event["type"] = json!(kind);
    let data = event["data"].as_object_mut().unwrap();
    data.remove("cancellation");
    for (key, value) in extra.as_object().unwrap() {
        data.insert(key.clone(), value.clone());
    }
    event
}

#[test]
fn each_lifecycle_type_parses_with_what_it_adds() {
    let mut started = lifecycle("run.started", json!({}));
    started["data"].as_object_mut().unwrap().remove("results");
    let started = parse(&started).unwrap();
    assert_eq!(started.stage, Stage::Started);
    assert_eq!(started.data.results, None);
    assert_eq!(started.outcome(), None);

    let finished = parse(&lifecycle("run.finished", json!({}))).unwrap();
    assert_eq!(finished.stage, Stage::Finished);
    assert_eq!(finished.outcome(), Some(RunStatus::Failed));

    let timed_out = parse(&lifecycle(
        "run.timed_out",
        json!({ "timeout": { "timedOutAt": "2026-11-21T10:45:00Z", "limitSeconds": 1800 } }),
    ))
    .unwrap();
    let timeout = timed_out.timeout().unwrap();
    assert_eq!(timeout.limit_seconds, Some(1800));
    assert_eq!(
        timeout.timed_out_at.to_rfc3339(),
        "2026-11-21T10:45:00+00:00"
    );
    let no_limit = parse(&lifecycle(
        "run.timed_out",
        json!({ "timeout": { "timedOutAt": "2026-11-21T10:45:00Z" } }),
    ))
    .unwrap();
    assert_eq!(no_limit.timeout().unwrap().limit_seconds, None);
}

#[test]
fn time_is_required_but_for_a_cancel_which_falls_back_to_canceled_at() {
    let mut cancel = example();
    cancel.as_object_mut().unwrap().remove("time");
    assert_eq!(
        parse(&cancel).unwrap().time.to_rfc3339(),
        "2026-11-21T10:15:01+00:00"
    );
    for kind in ["run.started", "run.finished"] {
        let mut event = lifecycle(kind, json!({}));
        event.as_object_mut().unwrap().remove("time");
        assert_eq!(
            parse(&event).unwrap_err().to_string(),
            format!(
                "not a CloudEvent: `time` is missing or empty; a `{kind}` event must say when \
                 it happened, to be ordered among the run's other events"
            )
        );
    }
    let mut event = lifecycle("run.finished", json!({}));
    event["time"] = json!("yesterday");
    let message = parse(&event).unwrap_err().to_string();
    assert!(
        message.starts_with("not a CloudEvent: `time` is `yesterday`, not an RFC 3339 time"),
        "{message}"
    );
}

#[test]
fn a_huge_attribute_is_quoted_bounded_in_the_error() {
    let huge = "x".repeat(600_000);
    let mut wrong_type = example();
    wrong_type["type"] = json!(huge);
    let mut wrong_version = example();
    wrong_version["specversion"] = json!(huge);
    let mut wrong_reason = example();
    wrong_reason["data"]["cancellation"]["reason"] = json!(huge);
    let mut wrong_count = example();
    wrong_count["data"]["results"]["failures"] = json!(huge);
    for (event, starts) in [
        (wrong_type, "CloudEvent type is `xxxx"),
        (wrong_version, "not a CloudEvent: `specversion` is `xxxx"),
        (
            wrong_reason,
            "field `data.cancellation.reason`: unknown variant `xxxx",
        ),
        (
            wrong_count,
            "field `data.results.failures`: invalid type: string \"xxxx",
        ),
    ] {
        let error = parse(&event).unwrap_err().to_string();
        assert!(error.starts_with(starts), "{error}");
        assert!(error.len() < 1_200, "{} bytes: {starts}", error.len());
        assert!(error.contains(" bytes"), "{error}");
    }
    // What was expected, said after the value, is kept.
    let mut wrong_count = example();
    wrong_count["data"]["results"]["failures"] = json!(huge);
    assert!(
        parse(&wrong_count)
            .unwrap_err()
            .to_string()
            .ends_with("\", expected u64"),
    );
}

#[test]
fn each_type_says_what_it_misses_or_must_not_carry() {
    let cases = [
        (
            lifecycle("run.finished", json!({ "results": null })),
            "data",
            "missing field `results` (only a `run.started` event may leave the results out)",
        ),
        (
            lifecycle("run.timed_out", json!({})),
            "data",
            "missing field `timeout` (a `run.timed_out` event says when the run timed out)",
        ),
        (
            lifecycle(
                "run.timed_out",
                json!({ "timeout": { "timedOutAt": "2026-11-21T10:45:00Z", "limitSeconds": 0 } }),
            ),
            "data.timeout.limitSeconds",
            "must be a positive number of seconds (or left out)",
        ),
        (
            lifecycle(
                "run.timed_out",
                json!({ "timeout": { "limitSeconds": 60 } }),
            ),
            "data.timeout",
            "missing field `timedOutAt`",
        ),
        (
            lifecycle(
                "run.started",
                json!({ "cancellation": example()["data"]["cancellation"] }),
            ),
            "data.cancellation",
            "only a `run.canceled` event has it, and this one is `run.started`",
        ),
        (
            {
                let mut cancel = example();
                cancel["data"]["timeout"] = json!({ "timedOutAt": "2026-11-21T10:45:00Z" });
                cancel
            },
            "data.timeout",
            "only a `run.timed_out` event has it, and this one is `run.canceled`",
        ),
    ];
    for (event, field, problem) in cases {
        assert_eq!(
            field_error(&event),
            (field.to_owned(), problem.to_owned()),
            "{event}"
        );
    }
    // A null member of another type is the same as none.
    let finished = lifecycle(
        "run.finished",
        json!({ "cancellation": null, "timeout": null }),
    );
    assert_eq!(parse(&finished).unwrap().stage, Stage::Finished);
}

#[test]
fn control_characters_in_a_quoted_value_are_escaped() {
    let mut event = example();
    event["type"] = json!("\u{1b}[2J\u{1b}[31mrun.canceled\r\u{7}");
    assert_eq!(
        parse(&event).unwrap_err().to_string(),
        "CloudEvent type is `\\u{1b}[2J\\u{1b}[31mrun.canceled\\r\\u{7}`, but this worker only handles `run.started`, `run.finished`, `run.timed_out`, `run.canceled`"
    );
}

#[test]
fn credentials_in_the_remote_and_the_run_url_are_dropped_at_parse() {
    let mut event = example();
    event["data"]["commit"]["remoteOrigin"] =
        json!("https://gitlab-ci-token:glcbt-64_s3cr3t@gitlab.com/acme/web-app.git");
    event["data"]["runUrl"] = json!("https://viewer:pa55@dashboard.example.com/runs/1");
    let data = parse(&event).unwrap().data;
    assert_eq!(
        data.commit.remote_origin.as_deref(),
        Some("https://gitlab.com/acme/web-app.git")
    );
    assert_eq!(
        data.run_url.as_str(),
        "https://dashboard.example.com/runs/1"
    );
    // Nothing the outputs are made from still holds them.
    let debug = format!("{data:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("pa55"),
        "{debug}"
    );
    assert_eq!(data.commit.repo().unwrap().to_string(), "acme/web-app");
}
