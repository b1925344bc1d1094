//! The `github_status` integration: a commit status on the run's commit, `success` or
//! `failure` by the outcome rule, with a context that overwrites the dashboard's `pending`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::GithubApi;
use super::client::{GithubClient, classify_answer};
use crate::event::{EventType, RunStatus};
use crate::failure::DeliveryError;
use crate::integrations::status_texts::StatusTexts;
use crate::integrations::text::cut;
use crate::integrations::{
    Answer, Checks, Common, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    settings,
};
use crate::render::{TemplateError, Templates};
use crate::route::Filters;

/// GitHub cuts longer descriptions; we cut first, visibly.
pub const MAX_DESCRIPTION: usize = 140;
/// The description template under `templates_dir` unless `description_template` names one.
pub const DEFAULT_TEMPLATE: &str = "github/status.hbs";
/// The default context: one status per project, named after this worker.
pub const DEFAULT_CONTEXT: &str = "run-notifier/{{projectId}}";

crate::integrations::keyed! {
/// Config of a `type: github_status` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubStatusConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(flatten)]
    pub api: GithubApi,
    /// Handlebars template of the description (plain text); default `github/status.hbs`.
    #[serde(default)]
    pub description_template: Option<PathBuf>,
    /// Handlebars template of the status context; set it to the dashboard's context so the
    /// `pending` status it posted is replaced.
    #[serde(default = "default_context")]
    pub context: String,
}
}

fn default_context() -> String {
    DEFAULT_CONTEXT.to_owned()
}

settings!(GithubStatusConfig);

impl GithubStatusConfig {
    fn texts(&self) -> StatusTexts<'_> {
        StatusTexts {
            integration: &self.common.name,
        }
    }
}

impl Checks for GithubStatusConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.description_template
            .iter_mut()
            .chain(self.api.auth.private_key_file.iter_mut())
            .collect()
    }

    /// Compiles the description and context templates (checked against the sample events).
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

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    pub state: &'static str,
    pub target_url: String,
    pub description: String,
    pub context: String,
}

/// A `github_status` integration, ready to send.
#[derive(Debug)]
pub struct GithubStatus {
    config: GithubStatusConfig,
    templates: Arc<Templates>,
    client: GithubClient,
}

impl GithubStatus {
    /// The status for this event's run.
    fn body(&self, notification: &Notification<'_>) -> Result<StatusBody, DeliveryError> {
        let event = notification.event;
        let (description, context) = self.config.texts().render(&self.templates, event)?;
        let description = cut(&description, MAX_DESCRIPTION);
        if context.is_empty() {
            return Err(DeliveryError::permanent(
                "the `context` template rendered nothing: GitHub needs a context",
            ));
        }
        // GitHub has no cancelled state: a cancel keeps the outcome rule, a timeout fails.
        let state = match (event.event_type(), event.outcome()) {
            (EventType::Started, _) => "pending",
            (EventType::TimedOut, _) | (_, Some(RunStatus::Failed)) => "failure",
            (EventType::Finished | EventType::Canceled, _) => "success",
        };
        Ok(StatusBody {
            state,
            target_url: event.data.run_url.to_string(),
            description,
            context,
        })
    }
}

impl Kind for GithubStatus {
    const TYPE: &'static str = "github_status";
    type Config = GithubStatusConfig;
    const NO_TRACES: Option<&'static str> = super::NO_TRACES;

    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_answer(answer, now)
    }

    fn build(config: GithubStatusConfig, parts: &Parts) -> Result<Self, Problems> {
        let client = GithubClient::new(&config.api)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            client,
        })
    }

    fn config(&self) -> &GithubStatusConfig {
        &self.config
    }

    async fn plan(
        &self,
        notification: &Notification<'_>,
        _: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let api = &self.config.api;
        let target = match api.commit_target(notification.event) {
            Ok(target) => target,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let body = self.body(notification)?;
        let route = format!(
            "/repos/{}/{}/statuses/{}",
            target.repo.owner, target.repo.name, target.sha
        );
        let json = serde_json::to_vec(&body).expect("the status body serialises");
        let request = self.client.request(Method::POST, &route, Some(json))?;
        let receipt = format!("status `{}` ({}) on {route}", body.context, body.state);
        Ok(Plan::one(request, move |_: &Answer| receipt.clone()))
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.client.send(request, io).await
    }
}
