//! The `github_status` integration: a commit status on the run's commit, `success` or
//! `failure` by the outcome rule, with a context that overwrites the dashboard's `pending`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::GithubApi;
use super::client::{GithubClient, Write};
use crate::event::RunStatus;
use crate::failure::DeliveryError;
use crate::integrations::target::CommitTarget;
use crate::integrations::text::{cut, one_line};
use crate::integrations::{Common, Deliver, Notification, OutgoingRequest, Receipt};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitHub cuts longer descriptions; we cut first, visibly.
pub const MAX_DESCRIPTION: usize = 140;
/// The description template under `templates_dir` unless `description_template` names one.
pub const DEFAULT_TEMPLATE: &str = "github/status.hbs";
/// The default context: one status per project, named after this worker.
pub const DEFAULT_CONTEXT: &str = "run-notifier/{{projectId}}";

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

fn default_context() -> String {
    DEFAULT_CONTEXT.to_owned()
}

impl GithubStatusConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        self.api.problems()
    }

    fn template_names(&self) -> (String, String) {
        let name = &self.common.name;
        (format!("{name}/description"), format!("{name}/context"))
    }

    /// Compiles the description and context templates (checked against the sample events).
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
    pub fn new(
        config: GithubStatusConfig,
        http: reqwest::Client,
        templates: Arc<Templates>,
    ) -> Self {
        let client = GithubClient::new(&config.api, http, *config.common.timeout);
        Self {
            config,
            templates,
            client,
        }
    }

    pub fn config(&self) -> &GithubStatusConfig {
        &self.config
    }

    /// Where the status goes and what it says, or why it is not sent.
    fn plan(&self, notification: &Notification<'_>) -> Result<(String, StatusBody), Skip> {
        let event = notification.event;
        let target = CommitTarget::of(event, &self.config.api.host).map_err(Skip::Because)?;
        let values = variables(event);
        let (description, context) = self.config.template_names();
        let render = |name: &str| {
            self.templates
                .render(Format::Text, name, &values)
                .map(|text| one_line(&text))
                .map_err(|err| Skip::Failed(DeliveryError::permanent(err.to_string())))
        };
        let description = cut(&render(&description)?, MAX_DESCRIPTION);
        let context = render(&context)?;
        if context.is_empty() {
            return Err(Skip::Failed(DeliveryError::permanent(
                "the `context` template rendered nothing: GitHub needs a context",
            )));
        }
        let state = match event.data.results.status() {
            RunStatus::Passed => "success",
            RunStatus::Failed => "failure",
        };
        let route = format!(
            "/repos/{}/{}/statuses/{}",
            target.repo.owner, target.repo.name, target.sha
        );
        Ok((
            route,
            StatusBody {
                state,
                target_url: event.data.run_url.to_string(),
                description,
                context,
            },
        ))
    }

    /// The request a delivery would send (`preview`).
    pub fn preview(&self, notification: &Notification<'_>) -> Result<Vec<OutgoingRequest>, String> {
        let (route, body) = match self.plan(notification) {
            Ok(plan) => plan,
            Err(Skip::Because(reason)) => return Err(reason),
            Err(Skip::Failed(error)) => return Err(error.to_string()),
        };
        let credential = self.client.credential().map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&body).expect("the status body serialises");
        let mut request = OutgoingRequest::post_json(self.client.url(&route), body);
        request.header(ACCEPT, super::ACCEPT_JSON, false);
        request.header(AUTHORIZATION, &credential.preview_authorization(), true);
        Ok(vec![request])
    }
}

/// Why a delivery does not send: a reason to skip, or a failure.
pub(crate) enum Skip {
    Because(String),
    Failed(DeliveryError),
}

impl Deliver for GithubStatus {
    async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        let (route, body) = match self.plan(notification) {
            Ok(plan) => plan,
            // Logged at debug level by the dispatcher, like every skip.
            Err(Skip::Because(reason)) => return Ok(Receipt::Skipped(reason)),
            Err(Skip::Failed(error)) => return Err(error),
        };
        self.client
            .write(Write::Post, &route, &body, cancel)
            .await?;
        Ok(Receipt::Sent(format!(
            "status `{}` ({}) on {}",
            body.context, body.state, route
        )))
    }
}
