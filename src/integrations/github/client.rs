//! The GitHub API through octocrab: one octocrab per integration over the process's shared
//! reqwest client, with octocrab's own retries off (the broker retries, and octocrab would
//! re-POST comments), every request cancellable, timed out, and classified in
//! [`crate::failure`].

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use octocrab::{FromResponse, Octocrab, Page};
use reqwest::header::{ACCEPT, HeaderName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::GithubApi;
use super::auth::Credential;
use crate::failure::{
    DeliveryError, FailureKind, classify_response, classify_transport, error_chain,
};
use crate::integrations::limit::Limiter;

/// A write to GitHub (these count against the content-creation limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Post,
    Patch,
}

/// A GitHub API client for one integration.
#[derive(Debug)]
pub struct GithubClient {
    api_url: Url,
    credential: Result<Credential, String>,
    http: reqwest::Client,
    /// Built at the first delivery: octocrab spawns a task, so it needs the worker's runtime
    /// (`check-config` builds integrations without one).
    octocrab: OnceLock<Result<Octocrab, String>>,
    writes: Limiter,
    timeout: Duration,
}

impl GithubClient {
    pub fn new(api: &GithubApi, http: reqwest::Client, timeout: Duration) -> Self {
        let (api_url, auth, rate_limit) = (&api.api_url, &api.auth, api.rate_limit);
        let credential = auth.credential();
        let mut parts = vec!["github".to_owned(), api_url.to_string()];
        if let Ok(credential) = &credential {
            parts.extend(credential.limiter_parts());
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Self {
            api_url: api_url.clone(),
            credential,
            http,
            octocrab: OnceLock::new(),
            writes: Limiter::for_credential(&parts, rate_limit),
            timeout,
        }
    }

    /// The credential, or the configuration problem (caught at load; kept for safety).
    pub fn credential(&self) -> Result<&Credential, DeliveryError> {
        self.credential
            .as_ref()
            .map_err(|problem| DeliveryError::permanent(problem.clone()))
    }

    /// `api_url` joined with an API route such as `/repos/o/r/statuses/sha`.
    pub fn url(&self, route: &str) -> Url {
        let base = self.api_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{route}")).expect("api_url plus a route is a URL")
    }

    fn octocrab(&self) -> Result<&Octocrab, DeliveryError> {
        self.octocrab
            .get_or_init(|| match &self.credential {
                Ok(credential) => build(&self.api_url, credential, &self.http),
                Err(problem) => Err(problem.clone()),
            })
            .as_ref()
            .map_err(|problem| DeliveryError::permanent(problem.clone()))
    }

    /// GETs one page of a list.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        route: &str,
        cancel: &CancellationToken,
    ) -> Result<Page<T>, DeliveryError> {
        let octocrab = self.octocrab()?;
        self.exchange(cancel, async {
            let response = octocrab._get(route).await?;
            let response = octocrab::map_github_error(response).await?;
            Page::<T>::from_response(response).await
        })
        .await
    }

    /// POSTs or PATCHes `body`, after waiting for the credential's rate limiter. Returns the
    /// `id` of what was created or changed, when the answer names one.
    pub async fn write<B: Serialize + Sync>(
        &self,
        method: Write,
        route: &str,
        body: &B,
        cancel: &CancellationToken,
    ) -> Result<Option<u64>, DeliveryError> {
        let octocrab = self.octocrab()?;
        self.writes.acquire(cancel).await?;
        self.exchange(cancel, async {
            let response = match method {
                Write::Post => octocrab._post(route, Some(body)).await?,
                Write::Patch => octocrab._patch(route, Some(body)).await?,
            };
            let response = octocrab::map_github_error(response).await?;
            // The write is done: an answer we cannot read must not fail (and repeat) it.
            let answer = octocrab.body_to_string(response).await.unwrap_or_default();
            Ok(serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|value| value["id"].as_u64()))
        })
        .await
    }

    async fn exchange<T>(
        &self,
        cancel: &CancellationToken,
        request: impl Future<Output = octocrab::Result<T>>,
    ) -> Result<T, DeliveryError> {
        if cancel.is_cancelled() {
            return Err(DeliveryError::Canceled);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(DeliveryError::Canceled),
            result = tokio::time::timeout(self.timeout, request) => match result {
                Ok(result) => result.map_err(classify),
                Err(_) => Err(DeliveryError::Retryable {
                    kind: FailureKind::Timeout,
                    message: format!("GitHub did not answer within {:?}", self.timeout),
                    retry_after: None,
                }),
            },
        }
    }
}

fn build(
    api_url: &Url,
    credential: &Credential,
    http: &reqwest::Client,
) -> Result<Octocrab, String> {
    let fail =
        |err: octocrab::Error| format!("cannot set up the GitHub client: {}", error_chain(&err));
    let builder = Octocrab::builder()
        .base_uri(api_url.as_str())
        .map_err(fail)?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .add_header(ACCEPT, super::ACCEPT_JSON.to_owned())
        .add_header(
            HeaderName::from_static("x-github-api-version"),
            super::API_VERSION.to_owned(),
        );
    match credential {
        Credential::Token(token) => builder
            .personal_token(token.expose().to_owned())
            .build_with_reqwest(http.clone())
            .map_err(fail),
        // octocrab exchanges the App's JWT for an installation token, caches it, and fetches a
        // new one when it has less than 30 s left (or after a 401).
        Credential::App {
            app_id,
            installation_id,
            key,
        } => builder
            .app(*app_id, key.clone())
            .build_with_reqwest(http.clone())
            .and_then(|app| app.installation(*installation_id))
            .map_err(fail),
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
