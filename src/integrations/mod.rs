//! The integrations: one module per kind behind the [`Kind`] trait, listed once in the registry
//! below. An event travels as: `plan` (the exact requests, or a reason to skip) then `send`;
//! `preview` prints the plan.

pub mod bitbucket;
pub mod github;
pub mod gitlab;
mod http;
pub(crate) mod keys;
mod kind;
pub mod limit;
mod notification;
mod registry;
pub mod repositories;
pub mod slack;
pub mod slack_app;
mod status_texts;
pub mod target;
pub mod teams;
pub mod text;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use http::{Answer, OutgoingRequest, http_client};
pub use keys::Keys;
pub(crate) use keys::keyed;
pub(crate) use kind::settings;
pub use kind::{Checks, Common, Draft, Io, Kind, Parts, Plan, Settings, Step, http_status};
pub use notification::{Notification, Receipt};

use crate::failure::DeliveryError;
use crate::render::{TemplateError, Templates};
use crate::route::Filters;

// The registry: one line per kind. The variant's snake_case name is its `type:`.
registry::registry! {
    /// A signed HTTP POST (Standard Webhooks).
    Webhook => webhook::Webhook,
    /// A Block Kit message to a Slack incoming webhook.
    Slack => slack::Slack,
    /// An Adaptive Card to a Teams Workflows webhook.
    Teams => teams::Teams,
    /// A commit status on GitHub.
    GithubStatus => github::status::GithubStatus,
    /// A comment on the run's GitHub pull request.
    GithubPrComment => github::comment::GithubPrComment,
    /// A build status on Bitbucket Cloud.
    BitbucketStatus => bitbucket::BitbucketStatus,
    /// A commit status on GitLab.
    GitlabStatus => gitlab::status::GitlabStatus,
    /// A note on the run's GitLab merge request.
    GitlabMrNote => gitlab::note::GitlabMrNote,
    /// A Block Kit message posted by a Slack app (bot token), edited instead of repeated.
    SlackApp => slack_app::SlackApp,
}

impl IntegrationConfig {
    pub fn common(&self) -> &Common {
        self.settings().common()
    }

    pub fn filters(&self) -> &Filters {
        self.settings().filters()
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// Rules the YAML grammar cannot express, as plain sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.common().problems();
        if self.common().send_traceparent && self.kind().starts_with("github") {
            problems.push("`send_traceparent` is not available for GitHub integrations: GitHub's API does not join traces".to_owned());
        }
        problems.extend(self.own_problems());
        problems
    }
}

/// Builds every configured integration, compiling all templates (under `templates_dir` unless
/// an integration names its own) first; returns every template problem, not just the first.
pub fn build_all(
    configs: &[IntegrationConfig],
    templates_dir: &Path,
    client: &reqwest::Client,
) -> Result<Vec<Integration>, Vec<TemplateError>> {
    let mut templates = Templates::new();
    let problems: Vec<TemplateError> = configs
        .iter()
        .filter_map(|config| {
            config
                .register_templates(&mut templates, templates_dir)
                .err()
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    let parts = Parts {
        templates: Arc::new(templates),
        client: client.clone(),
    };
    Ok(configs.iter().map(|config| config.build(&parts)).collect())
}

/// A ready-to-use integration, built once from its config.
#[derive(Debug)]
pub struct Integration {
    built: Built,
    client: reqwest::Client,
}

impl Integration {
    pub fn common(&self) -> &Common {
        self.built.settings().common()
    }

    pub fn filters(&self) -> &Filters {
        self.built.settings().filters()
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// The `type:` of the integration, a bounded metrics label.
    pub fn kind(&self) -> &'static str {
        self.built.kind()
    }

    fn io<'a>(&'a self, cancel: &'a CancellationToken, now: DateTime<Utc>) -> Io<'a> {
        Io {
            client: &self.client,
            timeout: *self.common().timeout,
            cancel,
            now,
        }
    }

    /// What a delivery at `now` would do: the exact requests, or why it skips the event.
    /// Reads what it must (never writes); `cancel` stops those reads.
    pub async fn plan(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
        now: DateTime<Utc>,
    ) -> Result<Plan, DeliveryError> {
        self.built.plan(notification, &self.io(cancel, now)).await
    }

    /// The plan of a delivery now (`preview`).
    pub async fn preview(&self, notification: &Notification<'_>) -> Result<Plan, DeliveryError> {
        self.plan(notification, &CancellationToken::new(), Utc::now())
            .await
    }

    /// What a delivery would write if its reads answered (`preview` after a failed read), for
    /// kinds that read before they write.
    pub fn draft(&self, notification: &Notification<'_>) -> Option<Draft> {
        self.built.draft(notification)
    }

    /// Plans and sends. Checks `cancel` between steps and returns [`DeliveryError::Canceled`]
    /// once it fires.
    pub async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        if cancel.is_cancelled() {
            return Err(DeliveryError::Canceled);
        }
        let io = self.io(cancel, Utc::now());
        let steps = match self.built.plan(notification, &io).await? {
            // Logged at debug level by the dispatcher, like every skip.
            Plan::Skip(reason) => return Ok(Receipt::Skipped(reason)),
            Plan::Send(steps) => steps,
        };
        let mut done = Vec::with_capacity(steps.len());
        for step in steps {
            if cancel.is_cancelled() {
                return Err(DeliveryError::Canceled);
            }
            let (request, receipt) = step.into_parts();
            let answer = self.built.send(request, &io).await?;
            done.push(receipt(&answer));
        }
        Ok(Receipt::Sent(done.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_under_its_own_type() {
        for kind in IntegrationConfig::TYPES {
            let yaml = format!("type: {kind}\nname: x\n");
            let error = serde_saphyr::from_str::<IntegrationConfig>(&yaml)
                .expect_err("a config of only a name is incomplete");
            assert!(
                !error.to_string().contains("unknown variant"),
                "`{kind}` is not the serde name of its variant: {error}"
            );
        }
    }
}
