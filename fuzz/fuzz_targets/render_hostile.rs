//! Hostile event data through the shipped templates: every integration of the example config
//! builds its request (`preview`: rendering, escaping, truncation, signing; nothing is sent)
//! for events whose free-text fields come from the fuzz input. Must never panic, and every
//! JSON body must stay valid JSON. The PR comment, the check run and the MR note are left out of
//! the plans: theirs read GitHub or GitLab first (their hostile bodies are checked in
//! `tests/it/github_pr_comment.rs`, `tests/it/github_check_run.rs` and `tests/it/gitlab.rs`);
//! the MR note's template is rendered here directly instead, and no value may mention,
//! reference or start a line with a quick action.
#![no_main]

use std::collections::HashMap;
use std::future::Future as _;
use std::path::Path;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use run_notifier::config::Config;
use run_notifier::event::RunEvent;
use run_notifier::integrations::{Integration, Notification, build_all, http_client};
use run_notifier::render::{Format, Templates, live_markup, variables};
use serde_json::{Value, json};

const EXAMPLE_CONFIG: &str = include_str!("../../config/run-notifier.yaml");
const EXAMPLE_EVENT: &str = include_str!("../../config/example-event.json");

static INTEGRATIONS: LazyLock<Vec<Integration>> = LazyLock::new(|| {
    let mut config = Config::parse(EXAMPLE_CONFIG, HashMap::new()).expect("the example config");
    config.templates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    build_all(&config.integrations, &config.templates_dir, &http_client())
        .expect("the shipped templates")
});

/// The shipped MR note template alone, compiled as `gitlab_mr_note` compiles it.
static MR_NOTE: LazyLock<Templates> = LazyLock::new(|| {
    let mut templates = Templates::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/gitlab/mr_note.md.hbs");
    templates
        .add_file(Format::GITLAB_MARKDOWN, "note", &path)
        .expect("the shipped MR note template");
    templates
});

/// What no value may bring into a GitLab note: a line that starts a quick action, a mention,
/// a reference, an image, a wiki link, an HTML tag or an entity that GitLab would act on.
fn check_gitlab_note(note: &str) {
    assert_eq!(live_markup(note), None, "{note:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Up to five fields, split at NUL, so they can differ from each other.
    let parts: Vec<&str> = text.split('\0').collect();
    let part = |i: usize| parts.get(i % parts.len()).copied().unwrap_or_default();
    let mut event: Value = serde_json::from_str(EXAMPLE_EVENT).expect("the example event");
    let data = &mut event["data"];
    data["projectName"] = json!(part(0));
    data["commit"]["branch"] = json!(part(1));
    data["commit"]["message"] = json!(part(2));
    data["commit"]["authorName"] = json!(part(3));
    data["commit"]["remoteOrigin"] = json!(part(4));
    data["cancellation"]["actor"] = json!(part(1));
    data["cancellation"]["note"] = json!(part(0));
    data["tags"] = json!([part(2), part(3)]);
    let Ok(event) = RunEvent::parse(event.to_string().as_bytes()) else {
        return;
    };
    let note = MR_NOTE
        .render(Format::GITLAB_MARKDOWN, "note", &variables(&event))
        .expect("the note renders");
    check_gitlab_note(&note);
    for integration in INTEGRATIONS.iter() {
        if matches!(
            integration.kind(),
            "github_pr_comment" | "github_check_run" | "gitlab_mr_note"
        ) {
            continue;
        }
        let notification = Notification {
            event: &event,
            integration: integration.name(),
            attempt: 1,
            resumed: false,
        };
        // The other kinds plan without waiting on anything, so one poll finishes the plan.
        let mut plan = std::pin::pin!(integration.preview(&notification));
        let waker = std::task::Waker::noop();
        let Poll::Ready(plan) = plan.as_mut().poll(&mut Context::from_waker(waker)) else {
            panic!("{} did not plan at the first poll", integration.name());
        };
        let Ok(plan) = plan else {
            continue;
        };
        for request in plan.requests() {
            if !request.body.is_empty() {
                serde_json::from_slice::<Value>(&request.body).unwrap_or_else(|err| {
                    panic!("{} would send a body that is not JSON: {err}", integration.name())
                });
            }
        }
    }
});
