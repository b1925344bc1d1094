//! `run-notifier trial`: a local receiver that answers as Slack (webhook and app), Teams, GitHub,
//! GitLab, Bitbucket and a Standard Webhooks receiver do, and prints each delivery readably.
//! The example config points every integration at it by default, so a first run shows every
//! integration succeed without anything leaving the machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::signature::{self, Received, SigningSecret};

mod checks;
mod github;
mod gitlab;
mod slack_app;

/// Where the example config expects the trial receiver.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The example config's webhook secret (for local trials only).
pub const EXAMPLE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Who the worker is to the trial's GitHub and GitLab: every comment and note it keeps was
/// written by this user, so the worker finds its own comment again and edits it.
const TRIAL_USER: &str = "run-notifier-trial";
const TRIAL_USER_ID: u64 = 1;

/// What the receiver remembers: the webhook secret, and PR comments so that a second cancel of
/// the same run edits its comment as on GitHub.
struct Trial {
    secret: SigningSecret,
    bodies: bool,
    /// (owner/repo#number, or project!iid on GitLab) → comments as (id, body).
    comments: Mutex<HashMap<String, Vec<(u64, String)>>>,
    /// Slack channel → messages posted by the app (with their `ts` and metadata).
    messages: Mutex<HashMap<String, Vec<Value>>>,
    /// GitHub check runs as created and updated (each with its `id` and `repository`).
    check_runs: Mutex<Vec<Value>>,
    next_id: Mutex<u64>,
}

type Shared = State<Arc<Trial>>;

/// Serves on `listener` until `shutdown`; `bodies` also prints each request body in full.
pub async fn serve(
    listener: tokio::net::TcpListener,
    secret: SigningSecret,
    bodies: bool,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let trial = Arc::new(Trial {
        secret,
        bodies,
        comments: Mutex::default(),
        messages: Mutex::default(),
        check_runs: Mutex::default(),
        next_id: Mutex::new(1),
    });
    let github = "/github/repos/{owner}/{repo}";
    let gitlab = "/gitlab/api/v4/projects/{project}";
    let app = Router::new()
        .route("/hooks/run-canceled", post(webhook))
        .route("/hooks/slack", post(slack))
        .route("/hooks/teams", post(teams))
        .route("/github/user", get(github::user))
        .route(
            "/github/app/installations/{installation}/access_tokens",
            post(checks::token),
        )
        .route(&format!("{github}/check-runs"), post(checks::create))
        .route(
            &format!("{github}/check-runs/{{id}}"),
            patch(checks::update),
        )
        .route(
            &format!("{github}/commits/{{sha}}/check-runs"),
            get(checks::list),
        )
        .route(&format!("{github}/statuses/{{sha}}"), post(github::status))
        .route(
            &format!("{github}/commits/{{sha}}/pulls"),
            get(github::pulls),
        )
        .route(
            &format!("{github}/issues/{{number}}/comments"),
            get(github::comments).post(github::comment),
        )
        .route(
            &format!("{github}/issues/comments/{{id}}"),
            patch(github::edit),
        )
        .route(
            "/bitbucket/2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build",
            post(bitbucket_status),
        )
        .route("/slack/api/chat.postMessage", post(slack_app::post))
        .route("/slack/api/chat.update", post(slack_app::update))
        .route("/slack/api/conversations.history", get(slack_app::history))
        .route("/slack/api/conversations.list", get(slack_app::list))
        .route("/gitlab/api/v4/user", get(gitlab::user))
        .route(&format!("{gitlab}/statuses/{{sha}}"), post(gitlab::status))
        .route(
            &format!("{gitlab}/repository/commits/{{sha}}/merge_requests"),
            get(gitlab::merge_requests),
        )
        .route(
            &format!("{gitlab}/merge_requests/{{iid}}/notes"),
            get(gitlab::notes).post(gitlab::note),
        )
        .route(
            &format!("{gitlab}/merge_requests/{{iid}}/notes/{{id}}"),
            put(gitlab::edit),
        )
        .fallback(unknown)
        .with_state(trial);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The lines printed when the receiver starts: where each integration of the example config
/// is answered.
pub fn banner(addr: SocketAddr) -> String {
    let base = format!("http://{addr}");
    format!(
        "trial receiver on {base} (nothing leaves this machine); answering as\n\
         \x20 webhook    {base}/hooks/run-canceled   (Standard Webhooks, signature verified)\n\
         \x20 Slack      {base}/hooks/slack\n\
         \x20 Teams      {base}/hooks/teams\n\
         \x20 GitHub     {base}/github               (statuses, check runs, PR comments, pulls)\n\
         \x20 Bitbucket  {base}/bitbucket            (build statuses)\n\
         \x20 GitLab     {base}/gitlab/api/v4        (commit statuses, MR notes, MRs by commit)\n\
         \x20 Slack app  {base}/slack/api            (chat.postMessage, chat.update, history)\n\
         Then start the worker on config/run-notifier.yaml and publish config/example-event.json\n\
         (a GitHub commit), config/example-event-gitlab.json and -bitbucket.json, or a run's\n\
         life: config/example-event-started.json, then -finished.json or -timed-out.json.\n"
    )
}

impl Trial {
    /// One delivery, printed as `time  kind  request → answer` and what it said.
    fn show(&self, kind: &str, request: &str, answer: &str, said: &str, body: &[u8]) {
        let time = chrono::Utc::now().format("%H:%M:%S");
        println!("{time}  {kind:<18} {request} → {answer}");
        if !said.is_empty() {
            println!("          {said}");
        }
        if self.bodies {
            let pretty = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
            println!("{pretty}");
        }
    }

    fn next_id(&self) -> u64 {
        let mut next = self.next_id.lock().expect("not poisoned");
        *next += 1;
        *next - 1
    }
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// The first `text` of a card's elements, wherever it sits (a `TextBlock`, or a `TextRun` in a
/// `RichTextBlock`'s inlines, or deeper in a container).
fn first_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map
            .get("text")
            .and_then(Value::as_str)
            .or_else(|| map.values().find_map(first_text)),
        Value::Array(items) => items.iter().find_map(first_text),
        _ => None,
    }
}

async fn webhook(State(trial): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    let received = Received {
        id: &id,
        timestamp: &header("webhook-timestamp"),
        header: &header("webhook-signature"),
        body: &body,
    };
    let checked = signature::verify(
        &trial.secret,
        &received,
        chrono::Utc::now().timestamp(),
        300,
    );
    let event = json_of(&body);
    let request = "POST /hooks/run-canceled";
    match checked {
        Ok(()) => {
            // A start has no results yet; only a cancel says who.
            let status = event["status"].as_str().unwrap_or("running");
            let by = event["cancellation"]["actor"]
                .as_str()
                .map(|actor| format!(" by {actor}"))
                .unwrap_or_default();
            let said = format!(
                "signature valid, {id}: {} run {} {status}{by}",
                text(&event["event"]),
                text(&event["runId"]),
            );
            trial.show("webhook", request, "204", &said, &body);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => {
            trial.show(
                "webhook",
                request,
                "401",
                &format!("REJECTED: {err}"),
                &body,
            );
            (StatusCode::UNAUTHORIZED, err.to_string()).into_response()
        }
    }
}

async fn slack(State(trial): Shared, body: Bytes) -> Response {
    let message = json_of(&body);
    // Slack answers `200 ok`, or a 400 with the reason in the body.
    let (status, answer) = match message["text"].as_str() {
        Some(text) if !text.trim().is_empty() => (StatusCode::OK, "ok"),
        _ => (StatusCode::BAD_REQUEST, "invalid_payload"),
    };
    let said = format!("\"{}\"", text(&message["text"]));
    let answer_line = format!("{} {answer}", status.as_u16());
    trial.show("slack", "POST /hooks/slack", &answer_line, &said, &body);
    (status, answer).into_response()
}

async fn teams(State(trial): Shared, body: Bytes) -> Response {
    let message = json_of(&body);
    let card = &message["attachments"][0]["content"];
    let said = format!(
        "Adaptive Card {}: \"{}\"",
        text(&card["version"]),
        first_text(&card["body"]).unwrap_or("?")
    );
    trial.show("teams", "POST /hooks/teams", "202", &said, &body);
    StatusCode::ACCEPTED.into_response()
}

async fn bitbucket_status(
    State(trial): Shared,
    Path((workspace, slug, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let status = json_of(&body);
    let request = format!(
        "POST /2.0/repositories/{workspace}/{slug}/commit/{}/statuses/build",
        short(&sha)
    );
    let said = format!(
        "{} `{}` ({}): {}",
        text(&status["state"]),
        text(&status["name"]),
        text(&status["key"]),
        text(&status["description"])
    );
    trial.show("bitbucket status", &request, "201", &said, &body);
    created(status)
}

async fn unknown(State(trial): Shared, method: Method, uri: Uri, body: Bytes) -> Response {
    let request = format!("{method} {uri}");
    trial.show(
        "?",
        &request,
        "404",
        "the trial receiver has no such route",
        &body,
    );
    not_found()
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found"})),
    )
        .into_response()
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}
