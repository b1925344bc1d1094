//! A GitHub that keeps check runs, for the `github_check_run` tests: wiremock answers the App's
//! token exchange and the check-run routes (create, update, list for a commit) from shared
//! state, so a test sees the check runs a commit would show. Every request it gets can be held
//! against GitHub's OpenAPI description ([`super::openapi`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::config::Spec;

pub use super::fake_github::KEY_FILE;
use super::fake_github::{EXCHANGE, Tokens, app_auth};

/// The App every check-run test authenticates as (see [`app_auth`]), and its installation.
pub const APP_ID: u64 = 123_456;
pub const INSTALLATION_ID: u64 = 4242;
/// Where new check runs go, and where one is updated (`{CHECK_RUNS}/{id}`).
pub const CHECK_RUNS: &str = "/repos/acme/web-app/check-runs";

/// A `github_check_run` against `api_url`, authenticated as the test App.
pub fn github_check_run(name: &str, api_url: &str) -> Spec {
    Spec(json!({
        "name": name,
        "type": "github_check_run",
        "api_url": api_url,
        "auth": app_auth(),
    }))
}

/// A GitHub with the check runs it keeps.
pub struct FakeChecks {
    pub server: MockServer,
    /// Every check run, as GitHub answers it (`id`, `name`, `head_sha`, `external_id`,
    /// `status`, `conclusion`, `output`, `app.id`, …), plus `updates`: how often it was PATCHed.
    pub runs: Arc<Mutex<Vec<Value>>>,
}

impl FakeChecks {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let runs = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .and(path(EXCHANGE))
            .respond_with(Tokens::lasting_an_hour())
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(CHECK_RUNS))
            .respond_with(Create {
                runs: Arc::clone(&runs),
                created: AtomicU64::new(0),
            })
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex(r"^/repos/acme/web-app/check-runs/\d+$"))
            .respond_with(Update(Arc::clone(&runs)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(
                r"^/repos/acme/web-app/commits/[0-9a-f]+/check-runs$",
            ))
            .respond_with(List(Arc::clone(&runs)))
            .mount(&server)
            .await;
        Self { server, runs }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The check runs of run `run_id` (by `external_id`).
    pub fn of_run(&self, run_id: &str) -> Vec<Value> {
        let runs = self.runs.lock().unwrap();
        runs.iter()
            .filter(|run| run["external_id"] == run_id)
            .cloned()
            .collect()
    }

    /// A check run another App (or an earlier life of this one) left on the commit.
    pub fn seed(&self, run: Value) {
        let mut runs = self.runs.lock().unwrap();
        let id = 9_000 + runs.len() as u64;
        let mut run = run;
        run["id"] = json!(id);
        runs.push(run);
    }

    /// Check run `id` deleted, as when its check suite goes: GitHub no longer knows it.
    pub fn delete(&self, id: u64) {
        self.runs.lock().unwrap().retain(|run| run["id"] != id);
    }

    /// The requests the worker made with this method whose path starts with `prefix`.
    pub async fn requests(&self, verb: &str, prefix: &str) -> Vec<Request> {
        let received = self.server.received_requests().await.unwrap_or_default();
        received
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(prefix))
            .collect()
    }
}

/// Creates check runs with ids from 1000 on, never one a deleted check run had.
struct Create {
    runs: Arc<Mutex<Vec<Value>>>,
    created: AtomicU64,
}

impl Respond for Create {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(mut run) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let mut runs = self.runs.lock().unwrap();
        let id = 1_000 + self.created.fetch_add(1, Ordering::SeqCst);
        run["id"] = json!(id);
        run["app"] = json!({"id": APP_ID});
        run["updates"] = json!(0);
        runs.push(run.clone());
        ResponseTemplate::new(201).set_body_json(run)
    }
}

struct Update(Arc<Mutex<Vec<Value>>>);

impl Respond for Update {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id: u64 = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let mut runs = self.0.lock().unwrap();
        let Some(run) = runs.iter_mut().find(|run| run["id"] == id) else {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        if run["app"]["id"] != APP_ID {
            return ResponseTemplate::new(403).set_body_json(
                json!({"message": "Invalid app_id `123456` - check run can only be modified by the GitHub App that created it."}),
            );
        }
        for (key, value) in changes {
            run[key] = value;
        }
        run["updates"] = json!(run["updates"].as_u64().unwrap_or(0) + 1);
        ResponseTemplate::new(200).set_body_json(run.clone())
    }
}

struct List(Arc<Mutex<Vec<Value>>>);

impl Respond for List {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let url: &Url = &request.url;
        let query = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let sha = url.path().split('/').nth(5).unwrap_or_default().to_owned();
        let runs = self.0.lock().unwrap();
        let listed: Vec<Value> = runs
            .iter()
            .filter(|run| run["head_sha"] == sha.as_str())
            .filter(|run| query("check_name").is_none_or(|name| run["name"] == name.as_str()))
            .filter(|run| {
                query("app_id")
                    .is_none_or(|app| app.parse::<u64>().is_ok_and(|app| run["app"]["id"] == app))
            })
            .cloned()
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"total_count": listed.len(), "check_runs": listed}))
    }
}
