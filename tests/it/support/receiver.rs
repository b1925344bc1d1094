//! A wiremock receiver that answers from a script and records every request with its arrival time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Answers with the scripted responses in order, then with `then` forever.
struct Script {
    queue: Mutex<VecDeque<ResponseTemplate>>,
    then: ResponseTemplate,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.log.lock().unwrap().push(Received {
            at: Instant::now(),
            path: request.url.path().to_owned(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        });
        self.queue
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.then.clone())
    }
}

/// A mock HTTP receiver and what it has received.
pub struct Receiver {
    pub server: MockServer,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers 200 to every POST.
    pub async fn ok() -> Self {
        Self::scripted(vec![], ResponseTemplate::new(200)).await
    }

    /// Answers `script` in order, then `then`.
    pub async fn scripted(script: Vec<ResponseTemplate>, then: ResponseTemplate) -> Self {
        let server = MockServer::start().await;
        let log = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .respond_with(Script {
                queue: Mutex::new(script.into()),
                then,
                log: Arc::clone(&log),
            })
            .mount(&server)
            .await;
        Self { server, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.uri())
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits until at least `count` requests arrived, and returns all of them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        super::poll::wait_until(
            &format!("the receiver got {count} request(s)"),
            Duration::from_secs(20),
            || async { self.count() >= count },
        )
        .await;
        self.received()
    }
}
