//! The trial receiver's GitLab REST API v4: commit statuses, merge requests by commit, and MR
//! notes that are kept, so that a second cancel of a run edits its note as on GitLab.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Shared, TRIAL_USER, TRIAL_USER_ID, created, first_line, json_of, not_found, short, text,
};

/// `GET /user`: the token's user, who wrote every note kept here.
pub(super) async fn user(State(trial): Shared) -> Response {
    trial.show("gitlab user", "GET /user", "200", TRIAL_USER, b"");
    Json(json!({"id": TRIAL_USER_ID, "username": TRIAL_USER})).into_response()
}

/// Lists fit on one page: GitLab says so with an empty `x-next-page`.
fn last_page(list: Value) -> Response {
    (StatusCode::OK, [("x-next-page", "")], Json(list)).into_response()
}

pub(super) async fn status(
    State(trial): Shared,
    Path((project, sha)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let status = json_of(&body);
    let request = format!("POST /projects/{project}/statuses/{}", short(&sha));
    let said = format!(
        "{} `{}`: {}",
        text(&status["state"]),
        text(&status["name"]),
        text(&status["description"])
    );
    trial.show("gitlab status", &request, "201", &said, &body);
    created(json!({"id": trial.next_id(), "status": status["state"], "name": status["name"]}))
}

pub(super) async fn merge_requests(
    State(trial): Shared,
    Path((project, sha)): Path<(String, String)>,
) -> Response {
    let request = format!(
        "GET /projects/{project}/repository/commits/{}/merge_requests",
        short(&sha)
    );
    trial.show("gitlab MRs", &request, "200", "open merge request !1", b"");
    last_page(json!([{"iid": 1, "state": "opened", "sha": sha}]))
}

fn key(project: &str, iid: u64) -> String {
    format!("gitlab:{project}!{iid}")
}

pub(super) async fn notes(
    State(trial): Shared,
    Path((project, iid)): Path<(String, u64)>,
) -> Response {
    let notes: Vec<Value> = trial
        .comments
        .lock()
        .expect("not poisoned")
        .get(&key(&project, iid))
        .into_iter()
        .flatten()
        .map(|(id, body)| {
            let author = json!({"id": TRIAL_USER_ID, "username": TRIAL_USER});
            json!({"id": id, "body": body, "system": false, "author": author})
        })
        .collect();
    let request = format!("GET /projects/{project}/merge_requests/{iid}/notes");
    let said = format!("{} note(s)", notes.len());
    trial.show("gitlab notes", &request, "200", &said, b"");
    last_page(Value::Array(notes))
}

pub(super) async fn note(
    State(trial): Shared,
    Path((project, iid)): Path<(String, u64)>,
    body: Bytes,
) -> Response {
    let note = text(&json_of(&body)["body"]).to_owned();
    let id = trial.next_id();
    let request = format!("POST /projects/{project}/merge_requests/{iid}/notes");
    let said = format!("note {id}: {}", first_line(&note));
    trial.show("gitlab mr note", &request, "201", &said, &body);
    trial
        .comments
        .lock()
        .expect("not poisoned")
        .entry(key(&project, iid))
        .or_default()
        .push((id, note.clone()));
    created(json!({"id": id, "body": note}))
}

pub(super) async fn edit(
    State(trial): Shared,
    Path((project, iid, id)): Path<(String, u64, u64)>,
    body: Bytes,
) -> Response {
    let note = text(&json_of(&body)["body"]).to_owned();
    let mut comments = trial.comments.lock().expect("not poisoned");
    let found = comments
        .get_mut(&key(&project, iid))
        .and_then(|notes| notes.iter_mut().find(|(existing, _)| *existing == id));
    let request = format!("PUT /projects/{project}/merge_requests/{iid}/notes/{id}");
    match found {
        Some((_, old)) => {
            *old = note.clone();
            let said = format!("note {id} edited: {}", first_line(&note));
            trial.show("gitlab mr note", &request, "200", &said, &body);
            Json(json!({"id": id, "body": note})).into_response()
        }
        None => {
            trial.show("gitlab mr note", &request, "404", "no such note", &body);
            not_found()
        }
    }
}
