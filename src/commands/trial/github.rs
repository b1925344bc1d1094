//! The trial receiver's GitHub: commit statuses, pull requests by commit, and PR comments that
//! are kept, so that a second cancel of a run edits its comment as on GitHub.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Shared, TRIAL_USER, TRIAL_USER_ID, created, first_line, json_of, not_found, short, text,
};

/// `GET /user`: the token's user, who wrote every comment kept here.
pub(super) async fn user(State(trial): Shared) -> Response {
    trial.show("github user", "GET /user", "200", TRIAL_USER, b"");
    axum::Json(json!({"login": TRIAL_USER, "id": TRIAL_USER_ID})).into_response()
}

pub(super) async fn status(
    State(trial): Shared,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let status = json_of(&body);
    let request = format!("POST /repos/{owner}/{repo}/statuses/{}", short(&sha));
    let said = format!(
        "{} `{}`: {}",
        text(&status["state"]),
        text(&status["context"]),
        text(&status["description"])
    );
    trial.show("github status", &request, "201", &said, &body);
    let id = trial.next_id();
    created(json!({"id": id, "state": status["state"], "context": status["context"]}))
}

pub(super) async fn pulls(
    State(trial): Shared,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    let request = format!("GET /repos/{owner}/{repo}/commits/{}/pulls", short(&sha));
    trial.show("github pulls", &request, "200", "open pull request #1", b"");
    axum::Json(json!([{"number": 1, "state": "open", "head": {"sha": sha}}])).into_response()
}

pub(super) async fn comments(
    State(trial): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let key = format!("{owner}/{repo}#{number}");
    let comments = trial.comments.lock().expect("not poisoned");
    let list: Vec<Value> = comments
        .get(&key)
        .into_iter()
        .flatten()
        .map(|(id, body)| json!({"id": id, "body": body, "user": {"login": TRIAL_USER}}))
        .collect();
    let request = format!("GET /repos/{owner}/{repo}/issues/{number}/comments");
    let said = format!("{} comment(s)", list.len());
    trial.show("github comments", &request, "200", &said, b"");
    axum::Json(Value::Array(list)).into_response()
}

pub(super) async fn comment(
    State(trial): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let comment = text(&json_of(&body)["body"]).to_owned();
    let id = trial.next_id();
    let request = format!("POST /repos/{owner}/{repo}/issues/{number}/comments");
    let said = format!("comment {id}: {}", first_line(&comment));
    trial.show("github pr comment", &request, "201", &said, &body);
    trial
        .comments
        .lock()
        .expect("not poisoned")
        .entry(format!("{owner}/{repo}#{number}"))
        .or_default()
        .push((id, comment.clone()));
    created(json!({"id": id, "body": comment}))
}

pub(super) async fn edit(
    State(trial): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let comment = text(&json_of(&body)["body"]).to_owned();
    let mut comments = trial.comments.lock().expect("not poisoned");
    let found = comments
        .values_mut()
        .flatten()
        .find(|(existing, _)| *existing == id);
    let request = format!("PATCH /repos/{owner}/{repo}/issues/comments/{id}");
    match found {
        Some((_, old)) => {
            *old = comment.clone();
            let said = format!("comment {id} edited: {}", first_line(&comment));
            trial.show("github pr comment", &request, "200", &said, &body);
            axum::Json(json!({"id": id, "body": comment})).into_response()
        }
        None => {
            trial.show(
                "github pr comment",
                &request,
                "404",
                "no such comment",
                &body,
            );
            not_found()
        }
    }
}
