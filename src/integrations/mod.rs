//! The integrations: one module per kind behind the [`Kind`] trait, listed once in the registry
//! below. An event travels as: `plan` (the exact requests, or a reason to skip) then `send`;
//! `preview` prints the plan.

pub mod bitbucket;
mod delivery;
pub mod github;
pub mod gitlab;
mod http;
pub(crate) mod kept_comments;
pub(crate) mod keys;
mod kind;
pub mod limit;
mod name;
mod notification;
mod problems;
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

pub use delivery::Delivered;
pub use http::{Answer, Classifier, OutgoingRequest, http_client};
pub use keys::Keys;
pub(crate) use keys::keyed;
pub(crate) use kind::settings;
pub use kind::{Checks, Common, Draft, Io, Kind, Parts, Plan, Settings, Step, http_status};
pub use name::IntegrationName;
pub use notification::{Notification, Receipt};
pub use problems::Problems;

use crate::event::{EventType, RunEvent};
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
    /// A check run on GitHub (GitHub Apps only), created at the run's first event and updated.
    GithubCheckRun => github::check_run::GithubCheckRun,
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

    pub fn name(&self) -> &IntegrationName {
        &self.common().name
    }

    /// The event types the integration gets: `events:`, or its kind's default.
    pub fn events(&self) -> &[EventType] {
        self.filters().events(self.default_events())
    }

    /// Rules the YAML grammar cannot express, as plain sentences: what building it finds
    /// (its templates are checked by [`build_all`]).
    pub fn problems(&self) -> Vec<String> {
        self.built(&Parts::default())
            .err()
            .map(Problems::into_vec)
            .unwrap_or_default()
    }

    /// Builds its kind, or every problem of its common settings and of its own.
    fn built(&self, parts: &Parts) -> Result<Built, Problems> {
        let mut problems = Problems::from(self.common().problems());
        if self.filters().events.as_ref().is_some_and(Vec::is_empty) {
            problems.push(format!(
                "`events` must name at least one of {} (leave it out for the kind's default)",
                EventType::listed()
            ));
        }
        if let Some(why) = self.no_traces().filter(|_| self.common().send_traceparent) {
            problems.push(format!("`send_traceparent` is not available for {why}"));
        }
        let built = problems.take_all(self.build_kind(parts));
        problems.or_built(built)
    }
}

/// Why the integrations cannot be built: one line per problem, under a heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildErrors {
    heading: &'static str,
    lines: Vec<String>,
}

impl std::ops::Deref for BuildErrors {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.lines
    }
}

impl std::fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:\n{}", self.heading, self.lines.join("\n"))
    }
}

impl std::error::Error for BuildErrors {}

/// Builds every configured integration, compiling all templates (under `templates_dir` unless
/// an integration names its own) first; returns every template problem, not just the first
/// (and every config problem, for configs that were not checked at load).
pub fn build_all(
    configs: &[IntegrationConfig],
    templates_dir: &Path,
    client: &reqwest::Client,
) -> Result<Vec<Integration>, BuildErrors> {
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
        return Err(BuildErrors {
            heading: "templates cannot be used",
            lines: problems.iter().map(ToString::to_string).collect(),
        });
    }
    let parts = Parts {
        templates: Arc::new(templates),
    };
    let mut integrations = Vec::with_capacity(configs.len());
    let mut problems = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        match config.built(&parts) {
            Ok(built) => integrations.push(Integration {
                built,
                client: client.clone(),
            }),
            Err(found) => problems.extend(
                found
                    .into_vec()
                    .into_iter()
                    .map(|problem| format!("integrations[{index}] ({}): {problem}", config.name())),
            ),
        }
    }
    if problems.is_empty() {
        Ok(integrations)
    } else {
        Err(BuildErrors {
            heading: "integrations cannot be built",
            lines: problems,
        })
    }
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

    /// `Ok` when the integration gets this event (its type is among its events, and the run
    /// passes its filters), otherwise why not, as a sentence.
    pub fn admit(&self, event: &RunEvent) -> Result<(), String> {
        self.filters().admit(event, self.built.default_events())
    }

    pub fn name(&self) -> &IntegrationName {
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
            classify: self.built.classifier(),
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

    /// A config built without the checks at load (made in code, say) cannot give an
    /// integration that fails at delivery: building it reports every problem, as loading does.
    #[test]
    fn an_unchecked_config_does_not_build_and_names_every_problem() {
        let yaml = "type: slack\nname: chat\nwebhook_url: not a url\nrate_limit: {per_minute: 0}\n";
        let config: IntegrationConfig = serde_saphyr::from_str(yaml).unwrap();
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let errors = build_all(std::slice::from_ref(&config), &templates, &http_client())
            .expect_err("a config with problems must not build");
        assert_eq!(
            errors.to_vec(),
            vec![
                "integrations[0] (chat): `webhook_url` is not a valid URL (relative URL without a base); it is not shown because it holds a credential",
                "integrations[0] (chat): `rate_limit.per_minute` must be at least 1",
            ]
        );
        assert_eq!(config.problems().len(), 2, "the same problems as at load");
    }
}
