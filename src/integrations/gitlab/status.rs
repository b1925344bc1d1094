//! The `gitlab_status` integration: a commit status on the run's commit in its GitLab
//! project, `success` or `failed` by the outcome rule (or GitLab's own `canceled`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::project::ProjectPath;
use super::{GitlabApi, GitlabClient};
use crate::event::{CommitSha, RunStatus};
use crate::failure::DeliveryError;
use crate::integrations::text::{cut, one_line};
use crate::integrations::{Common, Deliver, Notification, OutgoingRequest, Receipt};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitLab's limit on `description` (and `target_url`, `ref`), in characters.
pub const MAX_DESCRIPTION: usize = 255;
/// The description template under `templates_dir` unless `description_template` names one.
pub const DEFAULT_TEMPLATE: &str = "gitlab/status.hbs";
/// The default status name: one per project, named after this worker.
pub const DEFAULT_CONTEXT: &str = "run-notifier/{{projectId}}";

/// Which state a cancelled run's status gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRule {
    /// `success` when the last known results have no failure, else `failed`.
    #[default]
    Outcome,
    /// GitLab's own `canceled`.
    Canceled,
}

/// Config of a `type: gitlab_status` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabStatusConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(flatten)]
    pub api: GitlabApi,
    /// `outcome` (default: `success`/`failed`) or `canceled`.
    #[serde(default)]
    pub state: StateRule,
    /// Handlebars template of the status name GitLab shows (its `name`, the role of GitHub's
    /// context); set it to the dashboard's name so its `pending` status is replaced.
    #[serde(default = "default_context")]
    pub context: String,
    /// Handlebars template of the description (plain text); default `gitlab/status.hbs`.
    #[serde(default)]
    pub description_template: Option<PathBuf>,
}

fn default_context() -> String {
    DEFAULT_CONTEXT.to_owned()
}

impl GitlabStatusConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        self.api.problems()
    }

    fn template_names(&self) -> (String, String) {
        let name = &self.common.name;
        (format!("{name}/description"), format!("{name}/context"))
    }

    /// Compiles the description and name templates (checked against the sample events).
    pub(crate) fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let (description, context) = self.template_names();
        let path = template_path(dir, self.description_template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Format::Text, &description, &path)?;
        let file = format!("integration `{}`: context", self.common.name);
        templates.add(Format::Text, &context, &file, &self.context)
    }
}

/// The body of `POST /projects/:id/statuses/:sha`.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    pub state: &'static str,
    pub name: String,
    pub target_url: String,
    pub description: String,
}

/// A `gitlab_status` integration, ready to send.
#[derive(Debug)]
pub struct GitlabStatus {
    config: GitlabStatusConfig,
    templates: Arc<Templates>,
    client: GitlabClient,
}

impl GitlabStatus {
    pub fn new(
        config: GitlabStatusConfig,
        http: reqwest::Client,
        templates: Arc<Templates>,
    ) -> Self {
        let client = GitlabClient::new(&config.api, http, *config.common.timeout);
        Self {
            config,
            templates,
            client,
        }
    }

    pub fn config(&self) -> &GitlabStatusConfig {
        &self.config
    }

    /// The exact request of a delivery; `Ok(Err(reason))` when the event is skipped.
    pub fn request(
        &self,
        notification: &Notification<'_>,
    ) -> Result<Result<OutgoingRequest, String>, DeliveryError> {
        let event = notification.event;
        let project = match ProjectPath::of(event, &self.config.api.host) {
            Ok(project) => project,
            Err(reason) => return Ok(Err(reason)),
        };
        let Some(sha) = event.data.commit.sha.as_ref() else {
            return Ok(Err("the run has no commit sha".to_owned()));
        };
        let values = variables(event);
        let (description, context) = self.config.template_names();
        let render = |template: &str| {
            self.templates
                .render(Format::Text, template, &values)
                .map(|text| cut(&one_line(&text), MAX_DESCRIPTION))
                .map_err(|err| DeliveryError::permanent(err.to_string()))
        };
        let body = StatusBody {
            state: match (self.config.state, event.data.results.status()) {
                (StateRule::Canceled, _) => "canceled",
                (StateRule::Outcome, RunStatus::Passed) => "success",
                (StateRule::Outcome, RunStatus::Failed) => "failed",
            },
            name: render(&context)?,
            target_url: event.data.run_url.to_string(),
            description: render(&description)?,
        };
        let json = serde_json::to_vec(&body).expect("the status serialises");
        let route = route(&project, sha);
        self.client
            .request(Method::POST, &route, Some(json))
            .map(Ok)
    }
}

fn route(project: &ProjectPath, sha: &CommitSha) -> String {
    format!("/projects/{}/statuses/{sha}", project.encoded())
}

impl Deliver for GitlabStatus {
    async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        let request = match self.request(notification)? {
            Ok(request) => request,
            Err(reason) => return Ok(Receipt::Skipped(reason)),
        };
        let path = request.url.path().to_owned();
        let answer = self.client.send(request, cancel).await?;
        Ok(Receipt::Sent(if answer.status == StatusCode::BAD_REQUEST {
            format!("already set (GitLab: Cannot transition status) at {path}")
        } else {
            format!("HTTP {} from {path}", answer.status.as_u16())
        }))
    }
}
