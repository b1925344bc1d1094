//! The HTTP side shared by integrations: one client, a request value that can be sent or
//! previewed, and sending with cancellation and classification.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, redirect};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::failure::{DeliveryError, classify_transport};
use crate::protocol::USER_AGENT;

/// Response bodies are read up to this size by default; the rest is not needed to classify an
/// answer. Requests whose answer is data (a page of GitHub comments) allow more.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The one HTTP client of the process: connection pooling across integrations, no redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("a client with static settings builds")
}

/// An HTTP request, complete, before it is sent. Header values marked sensitive are secrets.
#[derive(Clone)]
pub struct OutgoingRequest {
    pub method: Method,
    pub url: Url,
    /// The URL itself is a credential (Slack and Teams webhook URLs): never shown.
    pub secret_url: bool,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The most of the answer's body that is read.
    pub max_answer: usize,
}

/// How a kind reads a receiver's answer at `now`: `Ok` when it says yes, else the failure.
pub type Classifier = fn(&Answer, DateTime<Utc>) -> Result<(), DeliveryError>;

/// A receiver's answer: its status, headers and (possibly cut) body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `id` of the object a JSON answer describes (a check run, comment or note just
    /// created), if it names one.
    pub fn id(&self) -> Option<u64> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|value| value["id"].as_u64())
    }
}

impl std::fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("url", &self.shown_url())
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl OutgoingRequest {
    pub fn post_json(url: Url, body: Vec<u8>) -> Self {
        let mut request = Self::get(url);
        request.method = Method::POST;
        request.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request.body = body;
        request
    }

    pub fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            secret_url: false,
            headers: HeaderMap::new(),
            body: Vec::new(),
            max_answer: MAX_RESPONSE_BODY,
        }
    }

    /// Reads up to `bytes` of the answer (for answers that are data, not just a verdict).
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// Marks the URL as a credential: [`shown_url`](Self::shown_url) keeps only its origin.
    pub fn with_secret_url(mut self) -> Self {
        self.secret_url = true;
        self
    }

    /// The URL as it may be printed: `https://hooks.slack.com/***` when it is a secret
    /// (the path and query carry the token; user info never appears).
    pub fn shown_url(&self) -> String {
        if self.secret_url {
            format!("{}/***", self.url.origin().ascii_serialization())
        } else {
            self.url.to_string()
        }
    }

    /// Adds a header; a value that is not a valid header value is a config error caught at load.
    pub fn header(&mut self, name: HeaderName, value: &str, sensitive: bool) {
        if let Ok(mut value) = HeaderValue::from_str(value) {
            value.set_sensitive(sensitive);
            self.headers.insert(name, value);
        }
    }

    /// Sends the request exactly as it is and reads the answer with `classify` (the kind's
    /// way of telling success from failure). Returns an answer `classify` took.
    pub async fn send(
        mut self,
        client: &reqwest::Client,
        timeout: Duration,
        cancel: &CancellationToken,
        classify: Classifier,
    ) -> Result<Answer, DeliveryError> {
        crate::telemetry::otel::inject(&mut self.headers);
        let max_answer = self.max_answer;
        let request = client
            .request(self.method, self.url)
            .headers(self.headers)
            .body(self.body)
            .timeout(timeout);
        let exchange = async {
            // URLs may carry tokens (Slack, Teams): errors never include them.
            let mut response = request
                .send()
                .await
                .map_err(|err| classify_transport(&err.without_url()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            while body.len() < max_answer {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(err) => return Err(classify_transport(&err.without_url())),
                }
            }
            let answer = Answer {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            classify(&answer, Utc::now())?;
            Ok(answer)
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(DeliveryError::Canceled),
            result = exchange => result,
        }
    }
}

/// `route` (starting with `/`, already encoded) under the API root `base`; `api` names the
/// provider in the error.
pub fn api_route(base: &Url, route: &str, api: &str) -> Result<Url, DeliveryError> {
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{route}"))
        .map_err(|err| DeliveryError::permanent(format!("cannot build a {api} URL: {err}")))
}

/// Parses a webhook URL kept as a secret (Slack, Teams): it must be http(s). The error names
/// `field` and never quotes the value, which holds the credential.
pub fn secret_url(field: &str, secret: &crate::secret::Secret) -> Result<Url, String> {
    let url = Url::parse(secret.expose().trim()).map_err(|err| {
        format!(
            "`{field}` is not a valid URL ({err}); it is not shown because it holds a credential"
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!("`{field}` must be an http or https URL"));
    }
    Ok(url)
}
