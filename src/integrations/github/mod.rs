//! The GitHub integrations: commit statuses, check runs and pull request comments.

pub mod auth;
pub mod check_run;
pub mod client;
pub mod comment;
pub mod identity;
pub mod pulls;
pub mod status;

use serde::Deserialize;
use url::Url;

use self::auth::GithubAuth;
use super::limit::RateLimit;
use super::repositories::Repositories;
use super::target::CommitTarget;
use crate::event::RunEvent;

/// The media type GitHub documents for its REST API.
pub const ACCEPT_JSON: &str = "application/vnd.github+json";
/// The REST API version the requests are written against.
pub const API_VERSION: &str = "2022-11-28";

/// Why GitHub integrations refuse `send_traceparent` (see [`Kind::NO_TRACES`](super::Kind::NO_TRACES)).
pub const NO_TRACES: Option<&str> = Some("GitHub integrations: GitHub's API does not join traces");

/// Where the GitHub API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Remotes on this host are GitHub's unless `host` says otherwise.
pub const DEFAULT_HOST: &str = "github.com";
/// GitHub's documented secondary limit is 80 content-creating requests a minute per
/// credential; stay under it by default.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit::new(75, 5);

/// Where and as whom an integration talks to GitHub: the settings both GitHub integrations
/// share, flattened into each one's config.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubApi {
    /// The API root (`https://github.example.com/api/v3` for GitHub Enterprise Server).
    #[serde(default = "default_api_url")]
    pub api_url: Url,
    /// Remotes on this host apply; others are skipped.
    #[serde(default = "default_host")]
    pub host: String,
    /// A token, or a GitHub App installation.
    pub auth: GithubAuth,
    /// The repositories (`owner/repo` globs) the integration may write to; events for others
    /// are skipped. Left out: every repository the credential reaches.
    #[serde(default)]
    pub repositories: Repositories,
    /// Content-creating requests allowed per credential.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

impl GithubApi {
    /// The event's commit on this host, if its repository is one the integration may write to;
    /// otherwise why it is skipped.
    pub(crate) fn commit_target(&self, event: &RunEvent) -> Result<CommitTarget, String> {
        let target = CommitTarget::of(event, &self.host)?;
        self.repositories.admit(&target.repo)?;
        Ok(target)
    }
}

fn default_api_url() -> Url {
    Url::parse(DEFAULT_API_URL).expect("a valid URL")
}

fn default_host() -> String {
    DEFAULT_HOST.to_owned()
}

fn default_rate_limit() -> RateLimit {
    DEFAULT_RATE_LIMIT
}

/// Checks of where the API is and which remotes apply.
pub(crate) fn api_problems(api_url: &Url, host: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !matches!(api_url.scheme(), "http" | "https") || api_url.host_str().is_none() {
        problems.push("`api_url` must be an http or https URL".to_owned());
    } else if api_url.query().is_some() || api_url.fragment().is_some() {
        problems.push("`api_url` must not have a query or fragment".to_owned());
    } else if octocrab::Octocrab::builder()
        .base_uri(api_url.as_str())
        .is_err()
    {
        problems.push("`api_url` is not a URL GitHub's client accepts".to_owned());
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
    {
        problems.push("`host` must be a host name such as `github.com`".to_owned());
    }
    problems
}
