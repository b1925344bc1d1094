//! The closed set of integrations: their config, one delivery trait, and enum dispatch.

pub mod bitbucket;
pub mod github;
pub mod gitlab;
mod http;
pub mod limit;
pub mod slack;
pub mod slack_app;
pub mod target;
pub mod teams;
pub mod text;
pub mod webhook;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use http::{Answer, OutgoingRequest, http_client};

use crate::config::{Config, HumanDuration};
use crate::event::RunCanceled;
use crate::failure::DeliveryError;
use crate::protocol::EVENT_TYPE;
use crate::render::{TemplateError, Templates};
use crate::route::Filters;

/// One configured integration, tagged by `type:` in the YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum IntegrationConfig {
    /// A signed HTTP POST (Standard Webhooks).
    Webhook(webhook::WebhookConfig),
    /// A Block Kit message to a Slack incoming webhook.
    Slack(slack::SlackConfig),
    /// An Adaptive Card to a Teams Workflows webhook.
    Teams(teams::TeamsConfig),
    /// A commit status on GitHub.
    GithubStatus(github::status::GithubStatusConfig),
    /// A comment on the run's GitHub pull request.
    GithubPrComment(github::comment::GithubPrCommentConfig),
    /// A build status on Bitbucket Cloud.
    BitbucketStatus(bitbucket::BitbucketStatusConfig),
    /// A commit status on GitLab.
    GitlabStatus(gitlab::status::GitlabStatusConfig),
    /// A note on the run's GitLab merge request.
    GitlabMrNote(gitlab::note::GitlabMrNoteConfig),
    /// A Block Kit message posted by a Slack app (bot token), edited instead of repeated.
    SlackApp(slack_app::SlackAppConfig),
}

/// Settings every integration has. Flattened, like [`Filters`], into each integration's own
/// struct, which rejects unknown keys. (A flattened struct must not flatten another: serde
/// would then hand all keys on and the outer struct would reject them.)
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    /// Unique name: retries, dead letters, the ledger and metrics refer to it.
    pub name: String,
    /// Longest wait for one request's answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

impl IntegrationConfig {
    pub fn common(&self) -> &Common {
        match self {
            IntegrationConfig::Webhook(config) => &config.common,
            IntegrationConfig::Slack(config) => &config.common,
            IntegrationConfig::Teams(config) => &config.common,
            IntegrationConfig::GithubStatus(config) => &config.common,
            IntegrationConfig::GithubPrComment(config) => &config.common,
            IntegrationConfig::BitbucketStatus(config) => &config.common,
            IntegrationConfig::GitlabStatus(config) => &config.common,
            IntegrationConfig::GitlabMrNote(config) => &config.common,
            IntegrationConfig::SlackApp(config) => &config.common,
        }
    }

    pub fn filters(&self) -> &Filters {
        match self {
            IntegrationConfig::Webhook(config) => &config.filters,
            IntegrationConfig::Slack(config) => &config.filters,
            IntegrationConfig::Teams(config) => &config.filters,
            IntegrationConfig::GithubStatus(config) => &config.filters,
            IntegrationConfig::GithubPrComment(config) => &config.filters,
            IntegrationConfig::BitbucketStatus(config) => &config.filters,
            IntegrationConfig::GitlabStatus(config) => &config.filters,
            IntegrationConfig::GitlabMrNote(config) => &config.filters,
            IntegrationConfig::SlackApp(config) => &config.filters,
        }
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// The `type:` of the integration, a bounded metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            IntegrationConfig::Webhook(_) => "webhook",
            IntegrationConfig::Slack(_) => "slack",
            IntegrationConfig::Teams(_) => "teams",
            IntegrationConfig::GithubStatus(_) => "github_status",
            IntegrationConfig::GithubPrComment(_) => "github_pr_comment",
            IntegrationConfig::BitbucketStatus(_) => "bitbucket_status",
            IntegrationConfig::GitlabStatus(_) => "gitlab_status",
            IntegrationConfig::GitlabMrNote(_) => "gitlab_mr_note",
            IntegrationConfig::SlackApp(_) => "slack_app",
        }
    }

    /// Rules the YAML grammar cannot express, as plain sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.name();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            problems.push(
                "`name` must be 1 to 64 characters of letters, digits, `-`, `_` and `.`".to_owned(),
            );
        }
        if self.common().timeout.is_zero() {
            problems.push("`timeout` must be longer than 0ms".to_owned());
        }
        match self {
            IntegrationConfig::Webhook(config) => problems.extend(config.problems()),
            IntegrationConfig::Slack(config) => problems.extend(config.problems()),
            IntegrationConfig::Teams(config) => problems.extend(config.problems()),
            IntegrationConfig::GithubStatus(config) => problems.extend(config.problems()),
            IntegrationConfig::GithubPrComment(config) => problems.extend(config.problems()),
            IntegrationConfig::BitbucketStatus(config) => problems.extend(config.problems()),
            IntegrationConfig::GitlabStatus(config) => problems.extend(config.problems()),
            IntegrationConfig::GitlabMrNote(config) => problems.extend(config.problems()),
            IntegrationConfig::SlackApp(config) => problems.extend(config.problems()),
        }
        problems
    }
}

impl IntegrationConfig {
    /// Compiles and checks this integration's templates into `templates` (a template that
    /// fails stops the start, never a send).
    pub fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        match self {
            IntegrationConfig::Webhook(_) => Ok(()),
            IntegrationConfig::Slack(config) => config.register_templates(templates, dir),
            IntegrationConfig::Teams(config) => config.register_templates(templates, dir),
            IntegrationConfig::GithubStatus(config) => config.register_templates(templates, dir),
            IntegrationConfig::GithubPrComment(config) => config.register_templates(templates, dir),
            IntegrationConfig::BitbucketStatus(config) => config.register_templates(templates, dir),
            IntegrationConfig::GitlabStatus(config) => config.register_templates(templates, dir),
            IntegrationConfig::GitlabMrNote(config) => config.register_templates(templates, dir),
            IntegrationConfig::SlackApp(config) => config.register_templates(templates, dir),
        }
    }
}

/// Builds every configured integration, compiling all templates first; returns every template
/// problem, not just the first.
pub fn build_all(
    config: &Config,
    client: &reqwest::Client,
) -> Result<Vec<Integration>, Vec<TemplateError>> {
    let mut templates = Templates::new();
    let problems: Vec<TemplateError> = config
        .integrations
        .iter()
        .filter_map(|integration| {
            integration
                .register_templates(&mut templates, &config.templates_dir)
                .err()
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    let templates = Arc::new(templates);
    Ok(config
        .integrations
        .iter()
        .map(|integration| Integration::build(integration, client, &templates))
        .collect())
}

/// What an integration is asked to deliver: one event, to one integration, at one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    pub event: &'a RunCanceled,
    pub integration: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// This attempt took over a ledger row an earlier attempt left (its worker may have died
    /// after the receiver answered and before the record).
    pub resumed: bool,
}

impl Notification<'_> {
    /// Whether an earlier attempt may already have had its effect: a retry, or a takeover.
    /// Integrations that cannot make a repeated send harmless look before they send again.
    pub fn outcome_unknown(&self) -> bool {
        self.attempt > 1 || self.resumed
    }

    /// Stable id of this run's notification to this integration: the same on every retry and
    /// for every event of the same run, so receivers can deduplicate on it.
    pub fn delivery_id(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.event.data.run_id.as_str(),
            EVENT_TYPE,
            self.integration,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        format!("msg_{}", hex::encode(&hash.finalize()[..16]))
    }
}

/// What a delivery achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The receiver took it; the text says what it answered (`HTTP 204`).
    Sent(String),
    /// Nothing to do for this event (for example no commit to put a status on); says why.
    Skipped(String),
}

/// Delivers notifications to one kind of receiver. Implementations check `cancel` between steps
/// and return [`DeliveryError::Canceled`] once it fires.
pub trait Deliver {
    fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Receipt, DeliveryError>> + Send;
}

/// A ready-to-use integration, built once from its config.
#[derive(Debug)]
pub enum Integration {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    Teams(teams::Teams),
    GithubStatus(github::status::GithubStatus),
    GithubPrComment(github::comment::GithubPrComment),
    BitbucketStatus(bitbucket::BitbucketStatus),
    GitlabStatus(gitlab::status::GitlabStatus),
    GitlabMrNote(gitlab::note::GitlabMrNote),
    SlackApp(slack_app::SlackApp),
}

impl Integration {
    pub fn build(
        config: &IntegrationConfig,
        client: &reqwest::Client,
        templates: &Arc<Templates>,
    ) -> Self {
        match config {
            IntegrationConfig::Webhook(config) => {
                Integration::Webhook(webhook::Webhook::new(config.clone(), client.clone()))
            }
            IntegrationConfig::Slack(config) => Integration::Slack(slack::Slack::new(
                config.clone(),
                client.clone(),
                Arc::clone(templates),
            )),
            IntegrationConfig::Teams(config) => Integration::Teams(teams::Teams::new(
                config.clone(),
                client.clone(),
                Arc::clone(templates),
            )),
            IntegrationConfig::GithubStatus(config) => {
                Integration::GithubStatus(github::status::GithubStatus::new(
                    config.clone(),
                    client.clone(),
                    Arc::clone(templates),
                ))
            }
            IntegrationConfig::GithubPrComment(config) => {
                Integration::GithubPrComment(github::comment::GithubPrComment::new(
                    config.clone(),
                    client.clone(),
                    Arc::clone(templates),
                ))
            }
            IntegrationConfig::BitbucketStatus(config) => {
                Integration::BitbucketStatus(bitbucket::BitbucketStatus::new(
                    config.clone(),
                    client.clone(),
                    Arc::clone(templates),
                ))
            }
            IntegrationConfig::GitlabStatus(config) => {
                Integration::GitlabStatus(gitlab::status::GitlabStatus::new(
                    config.clone(),
                    client.clone(),
                    Arc::clone(templates),
                ))
            }
            IntegrationConfig::GitlabMrNote(config) => {
                Integration::GitlabMrNote(gitlab::note::GitlabMrNote::new(
                    config.clone(),
                    client.clone(),
                    Arc::clone(templates),
                ))
            }
            IntegrationConfig::SlackApp(config) => Integration::SlackApp(slack_app::SlackApp::new(
                config.clone(),
                client.clone(),
                Arc::clone(templates),
            )),
        }
    }

    pub fn common(&self) -> &Common {
        match self {
            Integration::Webhook(webhook) => &webhook.config().common,
            Integration::Slack(slack) => &slack.config().common,
            Integration::Teams(teams) => &teams.config().common,
            Integration::GithubStatus(status) => &status.config().common,
            Integration::GithubPrComment(comment) => &comment.config().common,
            Integration::BitbucketStatus(status) => &status.config().common,
            Integration::GitlabStatus(status) => &status.config().common,
            Integration::GitlabMrNote(note) => &note.config().common,
            Integration::SlackApp(app) => &app.config().common,
        }
    }

    pub fn filters(&self) -> &Filters {
        match self {
            Integration::Webhook(webhook) => &webhook.config().filters,
            Integration::Slack(slack) => &slack.config().filters,
            Integration::Teams(teams) => &teams.config().filters,
            Integration::GithubStatus(status) => &status.config().filters,
            Integration::GithubPrComment(comment) => &comment.config().filters,
            Integration::BitbucketStatus(status) => &status.config().filters,
            Integration::GitlabStatus(status) => &status.config().filters,
            Integration::GitlabMrNote(note) => &note.config().filters,
            Integration::SlackApp(app) => &app.config().filters,
        }
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// The `type:` of the integration, a bounded metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Slack(_) => "slack",
            Integration::Teams(_) => "teams",
            Integration::GithubStatus(_) => "github_status",
            Integration::GithubPrComment(_) => "github_pr_comment",
            Integration::BitbucketStatus(_) => "bitbucket_status",
            Integration::GitlabStatus(_) => "gitlab_status",
            Integration::GitlabMrNote(_) => "gitlab_mr_note",
            Integration::SlackApp(_) => "slack_app",
        }
    }

    /// The exact requests a delivery would make now, without sending anything (`preview`);
    /// `Err` says why the integration would skip the event.
    pub fn preview(&self, notification: &Notification<'_>) -> Result<Vec<OutgoingRequest>, String> {
        match self {
            Integration::Webhook(webhook) => Ok(vec![
                webhook.request(notification, chrono::Utc::now().timestamp()),
            ]),
            Integration::Slack(slack) => slack
                .request(notification)
                .map(|request| vec![request])
                .map_err(|err| format!("it cannot build its request: {err}")),
            Integration::Teams(teams) => teams
                .request(notification)
                .map(|request| vec![request])
                .map_err(|err| format!("it cannot build its request: {err}")),
            Integration::GithubStatus(status) => status.preview(notification),
            Integration::GithubPrComment(comment) => comment.preview(notification),
            Integration::BitbucketStatus(status) => match status.request(notification) {
                Ok(Ok(request)) => Ok(vec![request]),
                Ok(Err(reason)) => Err(reason),
                Err(error) => Err(error.to_string()),
            },
            Integration::GitlabStatus(status) => match status.request(notification) {
                Ok(Ok(request)) => Ok(vec![request]),
                Ok(Err(reason)) => Err(reason),
                Err(error) => Err(error.to_string()),
            },
            Integration::GitlabMrNote(note) => note.preview(notification),
            Integration::SlackApp(app) => app
                .post_request(notification)
                .map(|request| vec![request])
                .map_err(|err| format!("it cannot build its request: {err}")),
        }
    }

    pub async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        if cancel.is_cancelled() {
            return Err(DeliveryError::Canceled);
        }
        match self {
            Integration::Webhook(webhook) => webhook.deliver(notification, cancel).await,
            Integration::Slack(slack) => slack.deliver(notification, cancel).await,
            Integration::Teams(teams) => teams.deliver(notification, cancel).await,
            Integration::GithubStatus(status) => status.deliver(notification, cancel).await,
            Integration::GithubPrComment(comment) => comment.deliver(notification, cancel).await,
            Integration::BitbucketStatus(status) => status.deliver(notification, cancel).await,
            Integration::GitlabStatus(status) => status.deliver(notification, cancel).await,
            Integration::GitlabMrNote(note) => note.deliver(notification, cancel).await,
            Integration::SlackApp(app) => app.deliver(notification, cancel).await,
        }
    }
}
