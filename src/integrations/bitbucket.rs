//! The `bitbucket_status` integration: a Bitbucket Cloud build status on the run's commit,
//! `SUCCESSFUL` or `FAILED` by the outcome rule (reqwest: no Bitbucket crate is well kept).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::limit::{Limiter, RateLimit};
use super::target::CommitTarget;
use super::text::{cut, one_line};
use super::{Common, Deliver, Notification, OutgoingRequest, Receipt};
use crate::config::Secret;
use crate::event::RunStatus;
use crate::failure::DeliveryError;
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// Bitbucket's limit on a build status key.
pub const MAX_KEY: usize = 40;
/// Descriptions are kept to one short line.
pub const MAX_DESCRIPTION: usize = 255;
/// The description template under `templates_dir` unless `description_template` names one.
pub const DEFAULT_TEMPLATE: &str = "bitbucket/status.hbs";
/// The default status name.
pub const DEFAULT_NAME: &str = "{{#if projectName}}{{projectName}}{{else}}{{projectId}}{{/if}}";

/// Config of a `type: bitbucket_status` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketStatusConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    /// The API root.
    #[serde(default = "default_api_url")]
    pub api_url: Url,
    /// Remotes on this host get statuses; others are skipped.
    #[serde(default = "default_host")]
    pub host: String,
    /// `username` + `password` (an app password or API token), or a bearer `token`.
    pub auth: BitbucketAuth,
    /// Handlebars template of the description (plain text); default `bitbucket/status.hbs`.
    #[serde(default)]
    pub description_template: Option<PathBuf>,
    /// Handlebars template of the status name shown on the commit.
    #[serde(default = "default_name")]
    pub name_template: String,
    /// Requests allowed per credential.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
}

fn default_api_url() -> Url {
    Url::parse("https://api.bitbucket.org").expect("a valid URL")
}

fn default_host() -> String {
    "bitbucket.org".to_owned()
}

fn default_name() -> String {
    DEFAULT_NAME.to_owned()
}

/// Bitbucket Cloud allows about 1,000 API calls an hour per user; stay near it by default.
fn default_rate_limit() -> RateLimit {
    RateLimit::new(16, 5)
}

/// `auth:` of a Bitbucket integration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketAuth {
    /// With `password`: basic auth (for API tokens, the Atlassian account's email).
    #[serde(default)]
    pub username: Option<String>,
    /// An app password or API token.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A repository, project or workspace access token (bearer).
    #[serde(default)]
    pub token: Option<Secret>,
}

impl BitbucketAuth {
    /// The `Authorization` header value, or a sentence saying what is wrong.
    pub fn authorization(&self) -> Result<String, String> {
        match (&self.username, &self.password, &self.token) {
            (Some(user), Some(password), None) if !user.is_empty() => {
                let pair = format!("{user}:{}", password.expose());
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None, Some(token)) if !token.expose().trim().is_empty() => {
                Ok(format!("Bearer {}", token.expose()))
            }
            (None, None, None) => Err(
                "`auth` needs `username` and `password` (app password or API token), or `token`"
                    .into(),
            ),
            (_, _, Some(_)) if self.username.is_some() || self.password.is_some() => {
                Err("`auth` takes `username` + `password`, or `token`, not both".into())
            }
            (None, None, Some(_)) => Err("`auth.token` is empty".into()),
            _ => {
                Err("`auth.username` and `auth.password` go together and must not be empty".into())
            }
        }
    }
}

impl BitbucketStatusConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !matches!(self.api_url.scheme(), "http" | "https") {
            problems.push("`api_url` must be an http or https URL".to_owned());
        }
        if let Err(problem) = self.auth.authorization() {
            problems.push(problem);
        } else if reqwest::header::HeaderValue::from_str(
            &self.auth.authorization().unwrap_or_default(),
        )
        .is_err()
        {
            problems
                .push("`auth`: the credential contains characters a header cannot carry".into());
        }
        problems.extend(self.rate_limit.problems());
        problems
    }

    fn template_names(&self) -> (String, String) {
        let name = &self.common.name;
        (format!("{name}/description"), format!("{name}/name"))
    }

    /// Compiles the description and name templates (checked against the sample events).
    pub(crate) fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let (description, name) = self.template_names();
        let path = template_path(dir, self.description_template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Format::Text, &description, &path)?;
        let file = format!("integration `{}`: name_template", self.common.name);
        templates.add(Format::Text, &name, &file, &self.name_template)
    }
}

/// The build status key: the same for every event of one project through one integration
/// (so a later status replaces the earlier one), within Bitbucket's 40 characters.
pub fn status_key(integration: &str, project_id: &str) -> String {
    let readable = format!("{integration}-{project_id}");
    let clean = readable
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if clean && readable.len() <= MAX_KEY {
        return readable;
    }
    let mut hash = Sha256::new();
    hash.update(integration.as_bytes());
    hash.update([0]);
    hash.update(project_id.as_bytes());
    let digest = hex::encode(hash.finalize());
    format!("rn-{}", &digest[..MAX_KEY - 3])
}

/// The body of `POST …/commit/{sha}/statuses/build`.
#[derive(Debug, Serialize)]
pub struct BuildStatus {
    pub key: String,
    pub state: &'static str,
    pub name: String,
    pub url: String,
    pub description: String,
}

/// A `bitbucket_status` integration, ready to send.
#[derive(Debug)]
pub struct BitbucketStatus {
    config: BitbucketStatusConfig,
    templates: Arc<Templates>,
    client: reqwest::Client,
    limiter: Limiter,
}

impl BitbucketStatus {
    pub fn new(
        config: BitbucketStatusConfig,
        client: reqwest::Client,
        templates: Arc<Templates>,
    ) -> Self {
        let authorization = config.auth.authorization().unwrap_or_default();
        let limiter = Limiter::for_credential(
            &["bitbucket", config.api_url.as_str(), &authorization],
            config.rate_limit,
        );
        Self {
            config,
            templates,
            client,
            limiter,
        }
    }

    pub fn config(&self) -> &BitbucketStatusConfig {
        &self.config
    }

    /// The exact request of a delivery; `Ok(Err(reason))` when the event is skipped.
    pub fn request(
        &self,
        notification: &Notification<'_>,
    ) -> Result<Result<OutgoingRequest, String>, DeliveryError> {
        let event = notification.event;
        let target = match CommitTarget::of(event, &self.config.host) {
            Ok(target) => target,
            Err(reason) => return Ok(Err(reason)),
        };
        let values = variables(event);
        let (description, name) = self.config.template_names();
        let render = |template: &str| {
            self.templates
                .render(Format::Text, template, &values)
                .map(|text| one_line(&text))
                .map_err(|err| DeliveryError::permanent(err.to_string()))
        };
        let body = BuildStatus {
            key: status_key(notification.integration, &event.data.project_id),
            state: match event.data.results.status() {
                RunStatus::Passed => "SUCCESSFUL",
                RunStatus::Failed => "FAILED",
            },
            name: cut(&render(&name)?, MAX_DESCRIPTION),
            url: event.data.run_url.to_string(),
            description: cut(&render(&description)?, MAX_DESCRIPTION),
        };
        // Workspace ids and repository slugs are lower case on Bitbucket.
        let (workspace, slug) = (
            target.repo.owner.to_ascii_lowercase(),
            target.repo.name.to_ascii_lowercase(),
        );
        let mut url = self.config.api_url.clone();
        url.path_segments_mut()
            .map_err(|()| DeliveryError::permanent("`api_url` cannot have a path"))?
            .pop_if_empty()
            .extend([
                "2.0",
                "repositories",
                &workspace,
                &slug,
                "commit",
                target.sha.as_str(),
                "statuses",
                "build",
            ]);
        let json = serde_json::to_vec(&body).expect("the build status serialises");
        let mut request = OutgoingRequest::post_json(url, json);
        let authorization = self
            .config
            .auth
            .authorization()
            .map_err(DeliveryError::permanent)?;
        request.header(AUTHORIZATION, &authorization, true);
        Ok(Ok(request))
    }
}

impl Deliver for BitbucketStatus {
    async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        let request = match self.request(notification)? {
            Ok(request) => request,
            Err(reason) => return Ok(Receipt::Skipped(reason)),
        };
        self.limiter.acquire(cancel).await?;
        let url = request.url.path().to_owned();
        let (status, _) = request
            .send(&self.client, *self.config.common.timeout, cancel)
            .await?;
        Ok(Receipt::Sent(format!(
            "HTTP {} from {url}",
            status.as_u16()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_when_short_and_hashed_when_long() {
        assert_eq!(status_key("bitbucket", "Xm2k9"), "bitbucket-Xm2k9");
        let long = status_key("bitbucket-status-for-the-platform-team", "Xm2k9");
        assert_eq!(long.len(), MAX_KEY);
        assert!(long.starts_with("rn-"));
        assert_eq!(
            long,
            status_key("bitbucket-status-for-the-platform-team", "Xm2k9")
        );
        assert_ne!(
            long,
            status_key("bitbucket-status-for-the-platform-team", "other")
        );
        assert_eq!(
            status_key("b", "a b").len(),
            MAX_KEY,
            "spaces are hashed away"
        );
    }

    #[test]
    fn auth_combinations_are_explained_without_secrets() {
        let auth =
            |user: Option<&str>, password: Option<&str>, token: Option<&str>| BitbucketAuth {
                username: user.map(str::to_owned),
                password: password.map(Secret::new),
                token: token.map(Secret::new),
            };
        assert_eq!(
            auth(Some("ci"), Some("pw"), None).authorization().unwrap(),
            "Basic Y2k6cHc="
        );
        assert_eq!(
            auth(None, None, Some("tk")).authorization().unwrap(),
            "Bearer tk"
        );
        for (case, expected) in [
            (auth(None, None, None), "needs `username` and `password`"),
            (auth(Some("ci"), None, Some("tk")), "not both"),
            (auth(Some("ci"), None, None), "go together"),
            (auth(None, Some("secret-pw"), None), "go together"),
            (auth(None, None, Some(" ")), "is empty"),
        ] {
            let problem = case.authorization().unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains("secret-pw"));
        }
    }
}
