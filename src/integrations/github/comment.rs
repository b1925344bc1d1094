//! The `github_pr_comment` integration: one comment per run on the pull request of the run's
//! commit, found again by a hidden marker and edited, so a run never gets two comments even
//! when the ledger has no record of the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ACCEPT_JSON;
use super::GithubApi;
use super::client::{GithubClient, Write};
use super::pulls::{PER_PAGE, find_comment, open_pulls_with_head};
use crate::event::Repo;
use crate::event::RunId;
use crate::failure::DeliveryError;
use crate::integrations::target::repo_on;
use crate::integrations::text::cut;
use crate::integrations::{Common, Deliver, Notification, OutgoingRequest, Receipt};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitHub's limit on a comment body, in characters.
pub const MAX_BODY: usize = 65_536;
/// The body template under `templates_dir` unless `template` names one.
pub const DEFAULT_TEMPLATE: &str = "github/pr_comment.md.hbs";

/// Config of a `type: github_pr_comment` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubPrCommentConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(flatten)]
    pub api: GithubApi,
    /// Handlebars template of the body (Markdown); default `github/pr_comment.md.hbs`.
    #[serde(default)]
    pub template: Option<PathBuf>,
}

impl GithubPrCommentConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        self.api.problems()
    }

    fn template_name(&self) -> String {
        format!("{}/body", self.common.name)
    }

    /// Compiles the body template (checked against the sample events).
    pub(crate) fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(Format::Markdown, &self.template_name(), &path)
    }
}

/// The hidden line that names the run in its comment. Characters that could end the HTML
/// comment (or confuse a search) are percent-encoded.
pub fn marker(run_id: &RunId) -> String {
    let mut encoded = String::new();
    for byte in run_id.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("<!-- run-notifier:run={encoded} -->")
}

/// Why a run without `pullRequest` and without a commit sha gets no comment.
const NO_PULL_REQUEST: &str = "the run has neither a pullRequest nor a commit sha to find one by";

#[derive(Debug, Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

/// A `github_pr_comment` integration, ready to send.
#[derive(Debug)]
pub struct GithubPrComment {
    config: GithubPrCommentConfig,
    templates: Arc<Templates>,
    client: GithubClient,
}

impl GithubPrComment {
    pub fn new(
        config: GithubPrCommentConfig,
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

    pub fn config(&self) -> &GithubPrCommentConfig {
        &self.config
    }

    /// The comment's body: the rendered template cut to fit, then the marker.
    pub fn body(&self, notification: &Notification<'_>) -> Result<String, DeliveryError> {
        let event = notification.event;
        let rendered = self
            .templates
            .render(
                Format::Markdown,
                &self.config.template_name(),
                &variables(event),
            )
            .map_err(|err| DeliveryError::permanent(err.to_string()))?;
        let marker = marker(&event.data.run_id);
        let room = MAX_BODY - marker.chars().count() - 2;
        Ok(format!("{}\n\n{marker}", cut(rendered.trim_end(), room)))
    }

    /// The requests a delivery would start with (`preview`). With a known pull request that is
    /// the POST of the comment (at send time it becomes a PATCH when the run's earlier comment
    /// is found); otherwise the lookup of the commit's pull requests, since which PR gets the
    /// comment is only known then.
    pub fn preview(&self, notification: &Notification<'_>) -> Result<Vec<OutgoingRequest>, String> {
        let event = notification.event;
        let repo = &repo_on(event, &self.config.api.host)?;
        let credential = self.client.credential().map_err(|e| e.to_string())?;
        let mut request = match event.data.pull_request {
            Some(number) => {
                let body = self.body(notification).map_err(|e| e.to_string())?;
                let json = serde_json::to_vec(&CommentBody { body: &body })
                    .expect("the comment body serialises");
                let route = format!(
                    "/repos/{}/{}/issues/{}/comments",
                    repo.owner, repo.name, number.0
                );
                OutgoingRequest::post_json(self.client.url(&route), json)
            }
            None => {
                let sha = event.data.commit.sha.as_ref().ok_or(NO_PULL_REQUEST)?;
                let route = format!(
                    "/repos/{}/{}/commits/{sha}/pulls?per_page={PER_PAGE}",
                    repo.owner, repo.name
                );
                OutgoingRequest::get(self.client.url(&route))
            }
        };
        request.header(ACCEPT, ACCEPT_JSON, false);
        request.header(AUTHORIZATION, &credential.preview_authorization(), true);
        Ok(vec![request])
    }

    async fn comment_on(
        &self,
        repo: &Repo,
        number: u64,
        body: &str,
        marker: &str,
        cancel: &CancellationToken,
    ) -> Result<String, DeliveryError> {
        let payload = CommentBody { body };
        match find_comment(&self.client, repo, number, marker, cancel).await? {
            Some(id) => {
                let route = format!("/repos/{}/{}/issues/comments/{id}", repo.owner, repo.name);
                self.client
                    .write(Write::Patch, &route, &payload, cancel)
                    .await?;
                Ok(format!("updated comment {id} on #{number}"))
            }
            None => {
                let route = format!(
                    "/repos/{}/{}/issues/{number}/comments",
                    repo.owner, repo.name
                );
                let id = self
                    .client
                    .write(Write::Post, &route, &payload, cancel)
                    .await?;
                Ok(match id {
                    Some(id) => format!("posted comment {id} on #{number}"),
                    None => format!("posted a comment on #{number}"),
                })
            }
        }
    }
}

impl Deliver for GithubPrComment {
    async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        let event = notification.event;
        let repo = match repo_on(event, &self.config.api.host) {
            Ok(repo) => repo,
            Err(reason) => return Ok(Receipt::Skipped(reason)),
        };
        let body = self.body(notification)?;
        let numbers = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(number), _) => vec![number.0],
            (None, None) => return Ok(Receipt::Skipped(NO_PULL_REQUEST.to_owned())),
            (None, Some(sha)) => {
                let numbers = open_pulls_with_head(&self.client, &repo, sha, cancel).await?;
                if numbers.is_empty() {
                    let reason = format!("no open pull request has head {sha}");
                    return Ok(Receipt::Skipped(reason));
                }
                numbers
            }
        };
        let marker = marker(&event.data.run_id);
        let mut done = Vec::new();
        for number in numbers {
            done.push(
                self.comment_on(&repo, number, &body, &marker, cancel)
                    .await?,
            );
        }
        Ok(Receipt::Sent(done.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_cannot_end_its_html_comment() {
        let id = RunId::parse("run-1 --> <b>@x</b>").unwrap();
        assert_eq!(
            marker(&id),
            "<!-- run-notifier:run=run-1%20--%3E%20%3Cb%3E%40x%3C%2Fb%3E -->"
        );
        let plain = RunId::parse("950a13c3edf4f28b6e8ce301a404b4aa").unwrap();
        assert_eq!(
            marker(&plain),
            "<!-- run-notifier:run=950a13c3edf4f28b6e8ce301a404b4aa -->"
        );
    }
}
