//! The benchmark's receivers: one local HTTP server per run, one route per integration
//! (`/<name>`), each answering as its scenario asks, recording when each run id arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

/// How a route answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 200 `ok` at once (Slack wants the `ok` body; the others ignore it).
    Ok,
    /// Accepts the request and never answers: the worker's timeout ends it.
    Hang,
    /// 200 `ok` after this long.
    After(Duration),
    /// 500 at once.
    Fail,
}

/// What the receiver has seen.
struct Seen {
    /// Run ids are `<tag><n>`: the tag is unique to one run of a scenario.
    tag: String,
    answers: HashMap<String, Answer>,
    /// Per route: (run number, arrival) of every request, repeats included.
    arrivals: Mutex<HashMap<String, Vec<(usize, Instant)>>>,
}

/// A receiver listening on 127.0.0.1.
pub struct Receiver {
    pub url: String,
    seen: Arc<Seen>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free port; `answers` maps each route name to its behaviour.
    pub async fn start(tag: &str, answers: &[(&str, Answer)]) -> Self {
        let seen = Arc::new(Seen {
            tag: tag.to_owned(),
            answers: answers
                .iter()
                .map(|(name, answer)| ((*name).to_owned(), *answer))
                .collect(),
            arrivals: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/{name}", post(receive))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, seen, server }
    }

    /// Every (run number, arrival) recorded on route `name`, in arrival order.
    pub fn arrivals(&self, name: &str) -> Vec<(usize, Instant)> {
        let arrivals = self.seen.arrivals.lock().unwrap();
        arrivals.get(name).cloned().unwrap_or_default()
    }

    /// The first arrival of each run number on route `name`.
    pub fn first_arrivals(&self, name: &str) -> HashMap<usize, Instant> {
        let mut first = HashMap::new();
        for (n, at) in self.arrivals(name) {
            first.entry(n).or_insert(at);
        }
        first
    }

    /// How many requests route `name` got.
    pub fn requests(&self, name: &str) -> usize {
        self.arrivals(name).len()
    }

    /// Whether route `name` has seen every run in `runs`.
    pub fn has_all(&self, name: &str, runs: impl IntoIterator<Item = usize>) -> bool {
        let first = self.first_arrivals(name);
        runs.into_iter().all(|n| first.contains_key(&n))
    }
}

impl Drop for Receiver {
    /// Closing the listener also drops the hung requests, so the worker's clients see a reset.
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(seen): State<Arc<Seen>>,
    Path(name): Path<String>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let now = Instant::now();
    if let Some(n) = run_number(&seen.tag, &body) {
        let mut arrivals = seen.arrivals.lock().unwrap();
        arrivals.entry(name.clone()).or_default().push((n, now));
    }
    match seen.answers.get(&name).copied().unwrap_or(Answer::Ok) {
        Answer::Ok => (StatusCode::OK, "ok"),
        Answer::Hang => std::future::pending().await,
        Answer::After(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok")
        }
        Answer::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "storm"),
    }
}

/// The `<n>` of the first `<tag><n>` in a body (webhook JSON, Slack blocks, Teams card: each
/// holds the run id or the run's URL).
fn run_number(tag: &str, body: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find(tag)? + tag.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
