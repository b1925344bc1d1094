//! The GitLab integrations (gitlab.com and self-managed): commit statuses and merge request
//! notes, over GitLab's REST API v4 with reqwest (no GitLab crate is needed for four routes).

mod answer;
pub mod auth;
pub mod identity;
pub mod note;
pub mod pages;
pub mod project;
pub mod status;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderName};
use serde::Deserialize;
use url::Url;

use self::auth::GitlabAuth;
use super::http::api_route;
use super::limit::{Limiter, RateLimit};
use super::repositories::Repositories;
use super::{Answer, Io, OutgoingRequest, Problems};
use crate::failure::DeliveryError;
use crate::secret::Secret;

/// Where the GitLab API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";
/// Remotes on this host are GitLab's unless `host` says otherwise.
pub const DEFAULT_HOST: &str = "gitlab.com";
/// Pages are parsed whole: read up to this much of an answer (100 notes of any length).
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// Where and as whom an integration talks to GitLab: the settings both GitLab integrations
/// share, flattened into each one's config.
#[derive(Debug, Clone, Deserialize)]
pub struct GitlabApi {
    /// The API root, `https://gitlab.example.com/api/v4` for a self-managed GitLab.
    #[serde(default = "default_api_url")]
    pub api_url: Url,
    /// Remotes on this host apply; others are skipped.
    #[serde(default = "default_host")]
    pub host: String,
    /// An access token (`token`) or an OAuth token (`oauth_token`).
    pub auth: GitlabAuth,
    /// The projects (globs over full paths, `acme/**` for a group and its subgroups) the
    /// integration may write to; events for others are skipped. Left out: every project the
    /// credential reaches.
    #[serde(default)]
    pub repositories: Repositories,
    /// Requests allowed per credential.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

fn default_api_url() -> Url {
    Url::parse(DEFAULT_API_URL).expect("a valid URL")
}

fn default_host() -> String {
    DEFAULT_HOST.to_owned()
}

/// gitlab.com allows 2,000 authenticated requests a minute per user and self-managed GitLab
/// limits note creation to 300 a minute by default; stay well under both.
fn default_rate_limit() -> RateLimit {
    RateLimit::new(240, 10)
}

/// How GitLab's REST API answers (both GitLab kinds' [`Kind::classify`](super::Kind::classify)).
pub fn classify_answer(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
    answer::classify(answer.status, &answer.headers, &answer.body, now)
}

impl GitlabApi {
    /// Rules of where the API is and which remotes apply, as sentences.
    fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        let url = &self.api_url;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            problems.push("`api_url` must be an http or https URL".to_owned());
        } else if url.query().is_some() || url.fragment().is_some() {
            problems.push("`api_url` must not have a query or fragment".to_owned());
        }
        let host = &self.host;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        {
            problems.push("`host` must be a host name such as `gitlab.com`".to_owned());
        }
        problems
    }
}

/// Requests to one GitLab, as one credential, paced by that credential's limiter.
#[derive(Debug)]
pub struct GitlabClient {
    api_url: Url,
    /// The credential's header, its value a secret (never in `Debug`).
    auth: (HeaderName, Secret),
    limiter: Limiter,
}

impl GitlabClient {
    /// The client of `api`, or every problem of the settings (where the API is, the
    /// credential, the rate limit).
    pub fn new(api: &GitlabApi) -> Result<Self, Problems> {
        let mut problems = api.problems();
        let auth = problems.take(api.auth.header());
        problems.extend(api.rate_limit.problems());
        let (name, value) = problems.or_built(auth)?;
        let limiter =
            Limiter::for_credential(&["gitlab", api.api_url.as_str(), &value], api.rate_limit);
        Ok(Self {
            api_url: api.api_url.clone(),
            auth: (name, Secret::new(value)),
            limiter,
        })
    }

    /// `route` (starting with `/`, already encoded) under `api_url`.
    pub fn url(&self, route: &str) -> Result<Url, DeliveryError> {
        api_route(&self.api_url, route, "GitLab")
    }

    /// A complete request: JSON body if any, the credential (marked sensitive).
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
        request.header(ACCEPT, "application/json", false);
        let (name, value) = &self.auth;
        request.header(name.clone(), value.expose(), true);
        Ok(request)
    }

    /// Sends `request` once a permit of the credential's limiter is free.
    pub async fn send(
        &self,
        request: OutgoingRequest,
        io: &Io<'_>,
    ) -> Result<Answer, DeliveryError> {
        self.limiter.acquire(io.cancel).await?;
        io.send(request).await
    }
}
