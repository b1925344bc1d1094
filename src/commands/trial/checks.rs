//! The trial receiver's GitHub check runs: an App's installation token handed out for any
//! JWT, and check runs kept per commit, so that a run's later events update its check run as on
//! GitHub (found again by name and `external_id`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, created, json_of, not_found, short, text};

/// `POST /app/installations/{id}/access_tokens`: a token for an hour, whatever the JWT.
pub(super) async fn token(State(trial): Shared, Path(installation): Path<u64>) -> Response {
    let request = format!("POST /app/installations/{installation}/access_tokens");
    trial.show("github app token", &request, "201", "", b"");
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    created(json!({
        "token": "ghs_trial_installation_token",
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "permissions": {"checks": "write"},
    }))
}

/// What a check run says, on one line: `completed: cancelled `name`: title`.
fn said(id: u64, run: &Value) -> String {
    let state = match run["conclusion"].as_str() {
        Some(conclusion) => format!("completed: {conclusion}"),
        None => text(&run["status"]).to_owned(),
    };
    format!(
        "check run {id} {state} `{}`: {}",
        text(&run["name"]),
        text(&run["output"]["title"])
    )
}

pub(super) async fn create(
    State(trial): Shared,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut run = json_of(&body);
    let id = trial.next_id();
    run["id"] = json!(id);
    run["repository"] = json!(format!("{owner}/{repo}"));
    let request = format!(
        "POST /repos/{owner}/{repo}/check-runs ({})",
        short(text(&run["head_sha"]))
    );
    trial.show("github check run", &request, "201", &said(id, &run), &body);
    trial
        .check_runs
        .lock()
        .expect("not poisoned")
        .push(run.clone());
    created(run)
}

pub(super) async fn update(
    State(trial): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let request = format!("PATCH /repos/{owner}/{repo}/check-runs/{id}");
    let mut runs = trial.check_runs.lock().expect("not poisoned");
    let (Some(run), Value::Object(changes)) =
        (runs.iter_mut().find(|run| run["id"] == id), json_of(&body))
    else {
        trial.show(
            "github check run",
            &request,
            "404",
            "no such check run",
            &body,
        );
        return not_found();
    };
    for (key, value) in changes {
        run[key] = value;
    }
    trial.show("github check run", &request, "200", &said(id, run), &body);
    axum::Json(run.clone()).into_response()
}

/// `GET /repos/{o}/{r}/commits/{sha}/check-runs?check_name=…`: the commit's check runs of
/// that name.
pub(super) async fn list(
    State(trial): Shared,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default().as_bytes();
    let check_name = url::form_urlencoded::parse(query)
        .find(|(key, _)| key == "check_name")
        .map(|(_, name)| name.into_owned());
    let full_name = format!("{owner}/{repo}");
    let runs = trial.check_runs.lock().expect("not poisoned");
    let listed: Vec<Value> = runs
        .iter()
        .filter(|run| run["repository"] == full_name.as_str() && run["head_sha"] == sha.as_str())
        .filter(|run| check_name.as_deref().is_none_or(|name| run["name"] == name))
        .cloned()
        .collect();
    let request = format!("GET /repos/{full_name}/commits/{}/check-runs", short(&sha));
    let said = format!("{} check run(s)", listed.len());
    trial.show("github check runs", &request, "200", &said, b"");
    axum::Json(json!({"total_count": listed.len(), "check_runs": listed})).into_response()
}
