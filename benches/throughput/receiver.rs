//! The benchmark's receiver: answers every webhook, Slack and Teams post at once, counts them,
//! and for posts whose run id carries a publish time (`lat-<µs>-<n>`) records the latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;

/// What the receiver has seen; shared with the benchmark.
pub struct Seen {
    /// The benchmark's clock origin: publish times are microseconds since this.
    pub epoch: Instant,
    pub requests: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Seen {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Takes the latencies recorded so far.
    pub fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.latencies_us.lock().unwrap())
    }

    /// Microseconds since the epoch, for publish stamps.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn note(&self, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = stamp(body) {
            let latency = self.now_us().saturating_sub(sent);
            self.latencies_us.lock().unwrap().push(latency);
        }
    }
}

/// The publish time in a `"runId":"lat-<µs>-<n>"` field, found without parsing the whole body.
fn stamp(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"runId\":\"lat-")? + "\"runId\":\"lat-".len();
    let digits = &text[start..];
    let end = digits.find('-')?;
    digits[..end].parse().ok()
}

/// Starts the receiver on a free port of 127.0.0.1; returns its base URL.
pub async fn start() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen {
        epoch: Instant::now(),
        requests: AtomicU64::new(0),
        latencies_us: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/hook/{name}", post(hook))
        .route("/slack", post(slack))
        .route("/teams", post(hook))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn hook(State(seen): State<Arc<Seen>>, body: Bytes) -> &'static str {
    seen.note(&body);
    ""
}

/// Slack's incoming webhooks answer `ok`.
async fn slack(State(seen): State<Arc<Seen>>, body: Bytes) -> &'static str {
    seen.note(&body);
    "ok"
}
