//! The `bitbucket_status` integration: a Bitbucket Cloud build status on the run's commit,
//! `SUCCESSFUL` or `FAILED` by the outcome rule (reqwest: no Bitbucket crate is well kept).

mod auth;
mod key;

pub use auth::BitbucketAuth;
pub use key::{MAX_KEY, status_key};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::event::{EventType, RunStatus};
use crate::failure::DeliveryError;
use crate::integrations::limit::{Limiter, RateLimit};
use crate::integrations::repositories::Repositories;
use crate::integrations::target::CommitTarget;
use crate::integrations::text::{cut, one_line};
use crate::integrations::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    settings,
};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;
use crate::secret::Secret;

/// Descriptions are kept to one short line.
pub const MAX_DESCRIPTION: usize = 255;
/// The description template under `templates_dir` unless `description_template` names one.
pub const DEFAULT_TEMPLATE: &str = "bitbucket/status.hbs";
/// The default status name.
pub const DEFAULT_NAME: &str = "{{#if projectName}}{{projectName}}{{else}}{{projectId}}{{/if}}";

crate::integrations::keyed! {
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
    /// `email` + `api_token` (an Atlassian API token, basic auth), or a bearer access `token`.
    pub auth: BitbucketAuth,
    /// The repositories (`workspace/slug` globs) the integration may write to; events for
    /// others are skipped. Left out: every repository the credential reaches.
    #[serde(default)]
    pub repositories: Repositories,
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

settings!(BitbucketStatusConfig);

impl BitbucketStatusConfig {
    fn template_names(&self) -> (String, String) {
        let name = &self.common.name;
        (format!("{name}/description"), format!("{name}/name"))
    }
}

impl BitbucketStatusConfig {
    /// The `Authorization` header's value, or every problem of the settings.
    fn authorization(&self) -> Result<Secret, Problems> {
        let mut problems = Problems::new();
        if !matches!(self.api_url.scheme(), "http" | "https") {
            problems.push("`api_url` must be an http or https URL");
        }
        let authorization = problems.take(self.auth.authorization().and_then(|value| {
            match reqwest::header::HeaderValue::from_str(&value) {
                Ok(_) => Ok(Secret::new(value)),
                Err(_) => {
                    Err("`auth`: the credential contains characters a header cannot carry".into())
                }
            }
        }));
        problems.extend(self.rate_limit.problems());
        problems.extend(self.repositories.problems_for_paths_of(2, "workspace/slug"));
        problems.or_built(authorization)
    }
}

impl Checks for BitbucketStatusConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.description_template.iter_mut().collect()
    }

    /// Compiles the description and name templates (checked against the sample events).
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let (description, name) = self.template_names();
        let path = template_path(dir, self.description_template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Format::TEXT, &description, &path)?;
        let file = format!("integration `{}`: name_template", self.common.name);
        templates.add(Format::TEXT, &name, &file, &self.name_template)
    }
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
    /// The `Authorization` header's value, made once.
    authorization: Secret,
    limiter: Limiter,
}

impl BitbucketStatus {
    /// The status body for this event.
    fn body(&self, notification: &Notification<'_>) -> Result<BuildStatus, DeliveryError> {
        let event = notification.event;
        let values = variables(event);
        let (description, name) = self.config.template_names();
        let render = |template: &str| {
            self.templates
                .render(Format::TEXT, template, values)
                .map(|text| one_line(&text))
                .map_err(|err| DeliveryError::permanent(err.to_string()))
        };
        Ok(BuildStatus {
            key: status_key(notification.integration, &event.data.project_id),
            state: match (event.event_type(), event.outcome()) {
                (EventType::Started, _) => "INPROGRESS",
                (EventType::TimedOut, _) | (_, Some(RunStatus::Failed)) => "FAILED",
                (EventType::Finished | EventType::Canceled, _) => "SUCCESSFUL",
            },
            name: cut(&render(&name)?, MAX_DESCRIPTION),
            url: event.data.run_url.to_string(),
            description: cut(&render(&description)?, MAX_DESCRIPTION),
        })
    }
}

impl Kind for BitbucketStatus {
    const TYPE: &'static str = "bitbucket_status";
    type Config = BitbucketStatusConfig;

    fn build(config: BitbucketStatusConfig, parts: &Parts) -> Result<Self, Problems> {
        let authorization = config.authorization()?;
        let limiter = Limiter::for_credential(
            &["bitbucket", config.api_url.as_str(), authorization.expose()],
            config.rate_limit,
        );
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            authorization,
            limiter,
        })
    }

    fn config(&self) -> &BitbucketStatusConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        _: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let config = &self.config;
        let target = match CommitTarget::of(notification.event, &config.host)
            .and_then(|target| config.repositories.admit(&target.repo).map(|()| target))
        {
            Ok(target) => target,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let body = self.body(notification)?;
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
        request.header(AUTHORIZATION, self.authorization.expose(), true);
        let path = request.url.path().to_owned();
        Ok(Plan::one(request, move |answer: &Answer| {
            format!("HTTP {} from {path}", answer.status.as_u16())
        }))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.limiter.acquire(io.cancel).await?;
        io.send(request).await
    }
}
