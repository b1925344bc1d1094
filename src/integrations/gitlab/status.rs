//! The `gitlab_status` integration: a commit status on the run's commit in its GitLab
//! project, `success` or `failed` by the outcome rule (or GitLab's own `canceled`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::project::ProjectPath;
use super::{GitlabApi, GitlabClient, classify_answer};
use crate::event::{CommitSha, EventType, RunStatus};
use crate::failure::DeliveryError;
use crate::integrations::status_texts::StatusTexts;
use crate::integrations::text::cut;
use crate::integrations::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    settings,
};
use crate::render::{TemplateError, Templates};
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

crate::integrations::keyed! {
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
}

fn default_context() -> String {
    DEFAULT_CONTEXT.to_owned()
}

settings!(GitlabStatusConfig);

impl GitlabStatusConfig {
    fn texts(&self) -> StatusTexts<'_> {
        StatusTexts {
            integration: &self.common.name,
        }
    }
}

impl Checks for GitlabStatusConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.description_template.iter_mut().collect()
    }

    /// Compiles the description and name templates (checked against the sample events).
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let file = self.description_template.as_deref();
        self.texts()
            .register(templates, dir, file, DEFAULT_TEMPLATE, &self.context)
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
    /// The status body for this event.
    fn body(&self, notification: &Notification<'_>) -> Result<StatusBody, DeliveryError> {
        let event = notification.event;
        let (description, context) = self.config.texts().render(&self.templates, event)?;
        Ok(StatusBody {
            state: match (event.event_type(), self.config.state, event.outcome()) {
                (EventType::Started, ..) => "running",
                (EventType::Canceled, StateRule::Canceled, _) => "canceled",
                (EventType::TimedOut, ..) | (_, _, Some(RunStatus::Failed)) => "failed",
                (EventType::Finished | EventType::Canceled, ..) => "success",
            },
            name: cut(&context, MAX_DESCRIPTION),
            target_url: event.data.run_url.to_string(),
            description: cut(&description, MAX_DESCRIPTION),
        })
    }
}

fn route(project: &ProjectPath, sha: &CommitSha) -> String {
    format!("/projects/{}/statuses/{sha}", project.encoded())
}

impl Kind for GitlabStatus {
    const TYPE: &'static str = "gitlab_status";
    type Config = GitlabStatusConfig;

    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_answer(answer, now)
    }

    fn build(config: GitlabStatusConfig, parts: &Parts) -> Result<Self, Problems> {
        let client = GitlabClient::new(&config.api)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            client,
        })
    }

    fn config(&self) -> &GitlabStatusConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        _: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let event = notification.event;
        let api = &self.config.api;
        let project = match ProjectPath::of(event, &api.host)
            .and_then(|project| api.repositories.admit(&project).map(|()| project))
        {
            Ok(project) => project,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let Some(sha) = event.data.commit.sha.as_ref() else {
            return Ok(Plan::Skip("the run has no commit sha".to_owned()));
        };
        let json = serde_json::to_vec(&self.body(notification)?).expect("the status serialises");
        let request = self
            .client
            .request(Method::POST, &route(&project, sha), Some(json))?;
        let path = request.url.path().to_owned();
        Ok(Plan::one(request, move |answer: &Answer| {
            if answer.status == StatusCode::BAD_REQUEST {
                format!("already set (GitLab: Cannot transition status) at {path}")
            } else {
                format!("HTTP {} from {path}", answer.status.as_u16())
            }
        }))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.client.send(request, io).await
    }
}
