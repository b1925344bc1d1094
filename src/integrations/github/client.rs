//! The GitHub API for one integration: requests built as values (what `preview` shows is what
//! is sent) and sent through the process's shared reqwest client, with writes paced per
//! credential. octocrab is used only to exchange a GitHub App's JWT for installation tokens,
//! which it caches and refreshes; its errors are classified in [`crate::failure`] too.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderName, LINK};
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::Credential;
use super::{ACCEPT_JSON, API_VERSION, GithubApi, api_problems};
use crate::failure::{
    DeliveryError, FailureKind, classify_response, classify_transport, error_chain,
};
use crate::integrations::http::api_route;
use crate::integrations::limit::Limiter;
use crate::integrations::{Answer, Io, OutgoingRequest, Problems};

/// How much of a page of results is read: 100 comments of up to 65,536 characters each.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// A cached installation token is used while it has this long left.
const TOKEN_BUFFER: chrono::Duration = chrono::Duration::seconds(30);
/// Longer than an installation token ever lives (an hour): asks for a new one.
const FRESH: chrono::Duration = chrono::Duration::hours(2);

/// One page of a list, and whether GitHub says there is another.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: bool,
}

/// A GitHub API client for one integration.
#[derive(Debug)]
pub struct GithubClient {
    api_url: Url,
    credential: Credential,
    /// For a GitHub App only, built at the first send: octocrab spawns a task, so it needs the
    /// worker's runtime (`check-config` builds integrations without one).
    app: OnceLock<Result<Octocrab, DeliveryError>>,
    writes: Limiter,
}

impl GithubClient {
    /// The client of `api`: its credential read (a private key parsed) now, or every problem
    /// of the settings (where the API is, the credential, the rate limit).
    pub fn new(api: &GithubApi) -> Result<Self, Problems> {
        let mut problems = Problems::from(api_problems(&api.api_url, &api.host));
        let credential = problems.take(api.auth.credential());
        problems.extend(api.rate_limit.problems());
        problems.extend(api.repositories.problems_for_paths_of(2, "owner/repo"));
        let credential = problems.or_built(credential)?;
        let mut parts = vec!["github".to_owned(), api.api_url.to_string()];
        parts.extend(credential.limiter_parts());
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(Self {
            api_url: api.api_url.clone(),
            writes: Limiter::for_credential(&parts, api.rate_limit),
            credential,
            app: OnceLock::new(),
        })
    }

    /// The credential, read at build.
    pub(super) fn credential(&self) -> &Credential {
        &self.credential
    }

    /// `api_url` joined with an API route such as `/repos/o/r/statuses/sha`.
    pub fn url(&self, route: &str) -> Result<Url, DeliveryError> {
        api_route(&self.api_url, route, "GitHub")
    }

    /// The complete request for `route`: GitHub's media type and API version, and the
    /// credential (marked sensitive; for an App, a stand-in that [`send`](Self::send) replaces
    /// with the current installation token).
    pub fn request(
        &self,
        method: Method,
        route: &str,
        body: Option<Vec<u8>>,
    ) -> Result<OutgoingRequest, DeliveryError> {
        let url = self.url(route)?;
        let mut request = match body {
            Some(body) => OutgoingRequest::post_json(url, body),
            None => OutgoingRequest::get(url).with_max_answer(MAX_PAGE_BYTES),
        };
        request.method = method;
        request.header(ACCEPT, ACCEPT_JSON, false);
        request.header(
            HeaderName::from_static("x-github-api-version"),
            API_VERSION,
            false,
        );
        request.header(AUTHORIZATION, &self.credential.authorization(), true);
        Ok(request)
    }

    /// Sends a request made by [`request`](Self::request): writes wait for the credential's
    /// rate limiter; an App's installation token goes in last.
    pub async fn send(
        &self,
        mut request: OutgoingRequest,
        io: &Io<'_>,
    ) -> Result<Answer, DeliveryError> {
        if request.method != Method::GET {
            self.writes.acquire(io.cancel).await?;
        }
        if !matches!(self.credential, Credential::App { .. }) {
            return io.send(request).await;
        }
        let token = self.installation_token(io, TOKEN_BUFFER).await?;
        request.header(AUTHORIZATION, &format!("Bearer {token}"), true);
        match io.send(request.clone()).await {
            // A token revoked before its expiry: one more try with a fresh one (a 401 did
            // nothing, so repeating a write is safe).
            Err(DeliveryError::Permanent { message }) if message.starts_with("HTTP 401") => {
                let token = self.installation_token(io, FRESH).await?;
                request.header(AUTHORIZATION, &format!("Bearer {token}"), true);
                io.send(request).await
            }
            answer => answer,
        }
    }

    /// GETs one page of a list.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        route: &str,
        io: &Io<'_>,
    ) -> Result<Page<T>, DeliveryError> {
        let (items, next) = self.get_json(route, io).await?;
        Ok(Page { items, next })
    }

    /// GETs one page of an answer that wraps its list in an object (check runs), and whether
    /// GitHub says there is another page.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        route: &str,
        io: &Io<'_>,
    ) -> Result<(T, bool), DeliveryError> {
        let answer = self
            .send(self.request(Method::GET, route, None)?, io)
            .await?;
        let page = serde_json::from_str(&answer.body).map_err(|err| {
            DeliveryError::transient(format!("GitHub answered with unexpected JSON: {err}"))
        })?;
        let next = answer
            .headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|link| link.contains("rel=\"next\""));
        Ok((page, next))
    }

    /// An installation token of the App valid for at least `buffer` (octocrab caches it and
    /// fetches a new one when the cached one expires sooner).
    async fn installation_token(
        &self,
        io: &Io<'_>,
        buffer: chrono::Duration,
    ) -> Result<String, DeliveryError> {
        use secrecy::ExposeSecret as _;
        let app = self
            .app
            .get_or_init(|| build(&self.api_url, &self.credential, io.client))
            .as_ref()
            .map_err(Clone::clone)?;
        let exchange = tokio::time::timeout(io.timeout, app.installation_token_with_buffer(buffer));
        tokio::select! {
            biased;
            () = io.cancel.cancelled() => Err(DeliveryError::Canceled),
            result = exchange => match result {
                Ok(token) => token
                    .map(|token| token.expose_secret().to_owned())
                    .map_err(classify),
                Err(_) => Err(DeliveryError::Retryable {
                    kind: FailureKind::Timeout,
                    message: format!(
                        "GitHub did not hand out an installation token within {:?}",
                        io.timeout
                    ),
                    retry_after: None,
                }),
            },
        }
    }
}

/// The octocrab of a GitHub App installation, for its tokens; its own retries are off (the
/// broker retries).
fn build(
    api_url: &Url,
    credential: &Credential,
    http: &reqwest::Client,
) -> Result<Octocrab, DeliveryError> {
    let fail = |err: octocrab::Error| {
        DeliveryError::permanent(format!(
            "cannot set up the GitHub client: {}",
            error_chain(&err)
        ))
    };
    let Credential::App {
        app_id,
        installation_id,
        key,
    } = credential
    else {
        return Err(DeliveryError::permanent("a token needs no exchange"));
    };
    Octocrab::builder()
        .base_uri(api_url.as_str())
        .map_err(fail)?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .add_header(ACCEPT, ACCEPT_JSON.to_owned())
        .add_header(
            HeaderName::from_static("x-github-api-version"),
            API_VERSION.to_owned(),
        )
        .app(*app_id, key.clone())
        .build_with_reqwest(http.clone())
        .and_then(|app| app.installation(*installation_id))
        .map_err(fail)
}

/// How the GitHub REST API answers: the status code says it, and an error's JSON body carries
/// a `message` and maybe `errors`, which is what the failure quotes.
pub fn classify_answer(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
    let body = github_message(&answer.body);
    classify_response(answer.status, &answer.headers, &body, now)
}

/// `message: [errors]` from a GitHub error body, or the body itself when it is not that JSON.
fn github_message(body: &str) -> String {
    let Ok(serde_json::Value::Object(error)) = serde_json::from_str(body) else {
        return body.to_owned();
    };
    let Some(message) = error.get("message").and_then(|m| m.as_str()) else {
        return body.to_owned();
    };
    match error.get("errors") {
        Some(serde_json::Value::Array(errors)) if !errors.is_empty() => {
            format!("{message}: {}", serde_json::Value::from(errors.clone()))
        }
        _ => message.to_owned(),
    }
}

/// Maps an octocrab error into the one classification: GitHub's answers by status and
/// headers (rate limits wait for their reset), transport failures as transient.
pub fn classify(error: octocrab::Error) -> DeliveryError {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let mut body = source.message.clone();
            if let Some(errors) = source.errors.as_ref().filter(|e| !e.is_empty()) {
                body = format!("{body}: {}", serde_json::Value::from(errors.clone()));
            }
            let headers = source.headers.clone().unwrap_or_default();
            match classify_response(source.status_code, &headers, &body, Utc::now()) {
                Err(error) => error,
                Ok(()) => DeliveryError::permanent(format!("GitHub: {body}")),
            }
        }
        octocrab::Error::Reqwest { source, .. } => classify_transport(&source.without_url()),
        octocrab::Error::JWT { source, .. } => DeliveryError::permanent(format!(
            "cannot sign the GitHub App's JWT: {}",
            error_chain(&source)
        )),
        octocrab::Error::Json { .. } | octocrab::Error::Serde { .. } => {
            DeliveryError::transient(format!(
                "GitHub answered with unexpected JSON: {}",
                error_chain(&error)
            ))
        }
        octocrab::Error::Service { .. } | octocrab::Error::Hyper { .. } => transport(&error),
        other => {
            DeliveryError::permanent(format!("GitHub request failed: {}", error_chain(&other)))
        }
    }
}

/// A failure below HTTP: a timeout or dropped connection, found anywhere in the cause chain.
fn transport(error: &octocrab::Error) -> DeliveryError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(err) = cause.downcast_ref::<reqwest::Error>() {
            if err.is_timeout() {
                return DeliveryError::Retryable {
                    kind: FailureKind::Timeout,
                    message: error_chain(error),
                    retry_after: None,
                };
            }
            break;
        }
        source = cause.source();
    }
    DeliveryError::transient(error_chain(error))
}
