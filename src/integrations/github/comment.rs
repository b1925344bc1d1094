//! The `github_pr_comment` integration: one comment per run on the pull request of the run's
//! commit, edited by the id the ledger kept, or found again by a hidden marker in a comment the
//! worker wrote, so a run never gets two comments even when the ledger has no record of the
//! first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::GithubApi;
use super::client::{GithubClient, classify_answer};
use super::identity::Identity;
use super::pulls::{find_comment, open_pulls_with_head};
use crate::event::{Repo, RunId};
use crate::failure::DeliveryError;
use crate::integrations::kept_comments::{KeptComments, piece};
use crate::integrations::target::repo_on;
use crate::integrations::text::with_marker;
use crate::integrations::{
    Answer, Checks, Common, Draft, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    Step, settings,
};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitHub's limit on a comment body, in characters.
pub const MAX_BODY: usize = 65_536;
/// The body template under `templates_dir` unless `template` names one.
pub const DEFAULT_TEMPLATE: &str = "github/pr_comment.md.hbs";

crate::integrations::keyed! {
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
}

settings!(GithubPrCommentConfig);

impl GithubPrCommentConfig {
    fn template_name(&self) -> String {
        format!("{}/body", self.common.name)
    }
}

impl Checks for GithubPrCommentConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.template
            .iter_mut()
            .chain(self.api.auth.private_key_file.iter_mut())
            .collect()
    }

    /// Compiles the body template (checked against the sample events).
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(GithubPrComment::MARKUP, &self.template_name(), &path)
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
    /// Whom the comment search trusts: only comments this identity wrote are edited.
    identity: Identity,
}

impl GithubPrComment {
    /// The comment's body: the rendered template cut to fit, then the marker.
    pub fn body(&self, notification: &Notification<'_>) -> Result<String, DeliveryError> {
        let event = notification.event;
        let rendered = self
            .templates
            .render(Self::MARKUP, &self.config.template_name(), variables(event))
            .map_err(|err| DeliveryError::permanent(err.to_string()))?;
        Ok(with_marker(
            &rendered,
            &marker(&event.data.run_id),
            MAX_BODY,
        ))
    }

    /// The write for pull request `number`: an edit of the run's earlier comment, by the id the
    /// ledger kept or else found now by its marker, otherwise a new comment.
    async fn comment_on(
        &self,
        repo: &Repo,
        number: u64,
        kept: Option<u64>,
        json: &[u8],
        marker: &str,
        io: &Io<'_>,
    ) -> Result<Step, DeliveryError> {
        // A kept id is edited without reading the pull request's comments. The worker made
        // it (posted it, or found it among its own), so the own-identity rule holds; should
        // it be gone, the delivery plans again without it and searches.
        if let Some(id) = kept {
            let step = self.edit(repo, number, id, json)?;
            return Ok(step.editing_kept(format!("comment {id} on #{number}")));
        }
        match find_comment(&self.client, repo, number, marker, &self.identity, io).await? {
            Some(id) => self.edit(repo, number, id, json),
            None => self.post(repo, number, json),
        }
    }

    /// `PATCH` of comment `id` on pull request `number`, kept for the run's later events.
    fn edit(&self, repo: &Repo, number: u64, id: u64, json: &[u8]) -> Result<Step, DeliveryError> {
        let route = format!("/repos/{}/{}/issues/comments/{id}", repo.owner, repo.name);
        let request = self
            .client
            .request(Method::PATCH, &route, Some(json.to_vec()))?;
        Ok(Step::new(request, move |_: &Answer| {
            format!("updated comment {id} on #{number}")
        })
        .keeping(move |_| Some(piece(number, id))))
    }

    /// `POST` of a new comment on pull request `number`, its id kept for the run's later events.
    fn post(&self, repo: &Repo, number: u64, json: &[u8]) -> Result<Step, DeliveryError> {
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments",
            repo.owner, repo.name
        );
        let request = self
            .client
            .request(Method::POST, &route, Some(json.to_vec()))?;
        Ok(Step::new(request, move |answer: &Answer| {
            // The write is done: an answer we cannot read must not fail (and so repeat) it.
            match answer.id() {
                Some(id) => format!("posted comment {id} on #{number}"),
                None => format!("posted a comment on #{number}"),
            }
        })
        .keeping(move |answer| answer.id().map(|id| piece(number, id))))
    }
}

impl Kind for GithubPrComment {
    const TYPE: &'static str = "github_pr_comment";
    type Config = GithubPrCommentConfig;
    const NO_TRACES: Option<&'static str> = super::NO_TRACES;
    const MARKUP: Format = Format::MARKDOWN;

    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_answer(answer, now)
    }

    fn build(config: GithubPrCommentConfig, parts: &Parts) -> Result<Self, Problems> {
        let client = GithubClient::new(&config.api)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            client,
            identity: Identity::default(),
        })
    }

    fn config(&self) -> &GithubPrCommentConfig {
        &self.config
    }

    /// Reads first: the commit's open pull requests (unless the event names one) and, where
    /// the ledger kept no comment id for one, the run's earlier comment on it, so the plan is
    /// the exact POST or PATCH per pull request.
    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let event = notification.event;
        let api = &self.config.api;
        let repo = match repo_on(event, &api.host)
            .and_then(|repo| api.repositories.admit(&repo).map(|()| repo))
        {
            Ok(repo) => repo,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let body = self.body(notification)?;
        let numbers = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(number), _) => vec![number.0],
            (None, None) => return Ok(Plan::Skip(NO_PULL_REQUEST.to_owned())),
            (None, Some(sha)) => {
                let numbers = open_pulls_with_head(&self.client, &repo, sha, io).await?;
                if numbers.is_empty() {
                    return Ok(Plan::Skip(format!("no open pull request has head {sha}")));
                }
                numbers
            }
        };
        let json =
            serde_json::to_vec(&CommentBody { body: &body }).expect("the comment body serialises");
        let marker = marker(&event.data.run_id);
        let kept = KeptComments::parse(notification.object_id);
        let mut steps = Vec::with_capacity(numbers.len());
        for number in numbers {
            let kept = kept.on(number);
            steps.push(
                self.comment_on(&repo, number, kept, &json, &marker, io)
                    .await?,
            );
        }
        Ok(Plan::Send(steps))
    }

    /// The comment without its reads: a new one (POST) or the run's earlier one (PATCH).
    fn draft(&self, notification: &Notification<'_>) -> Option<Draft> {
        let event = notification.event;
        let repo = repo_on(event, &self.config.api.host).ok()?;
        let body = self.body(notification).ok()?;
        let pull = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(number), _) => format!("pull request #{}", number.0),
            (None, Some(sha)) => format!("each open pull request with head {sha}"),
            (None, None) => return None,
        };
        Some(Draft {
            methods: "POST or PATCH",
            target: format!(
                "a comment on {pull} of {}/{} (PATCH edits the run's earlier comment)",
                repo.owner, repo.name
            ),
            body: serde_json::to_vec(&CommentBody { body: &body })
                .expect("the comment body serialises"),
        })
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.client.send(request, io).await
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
