//! The `gitlab_mr_note` integration: one note per run on the merge request of the run's
//! commit, found again by a hidden marker on any page of the notes and edited with `PUT`, so a
//! run never gets two notes even when the ledger has no record of the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::pages::{PER_PAGE, find_note, open_merge_requests_with_head};
use super::project::ProjectPath;
use super::{GitlabApi, GitlabClient};
use crate::failure::DeliveryError;
use crate::integrations::github::comment::marker;
use crate::integrations::text::cut;
use crate::integrations::{Common, Deliver, Notification, OutgoingRequest, Receipt};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitLab's limit on a note body, in characters.
pub const MAX_BODY: usize = 1_000_000;
/// The body template under `templates_dir` unless `template` names one.
pub const DEFAULT_TEMPLATE: &str = "gitlab/mr_note.md.hbs";

/// Why a run without `pullRequest` and without a commit sha gets no note.
const NO_MERGE_REQUEST: &str =
    "the run has neither a pullRequest (merge request IID) nor a commit sha to find one by";

/// Config of a `type: gitlab_mr_note` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabMrNoteConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(flatten)]
    pub api: GitlabApi,
    /// Handlebars template of the body (GitLab Markdown); default `gitlab/mr_note.md.hbs`.
    #[serde(default)]
    pub template: Option<PathBuf>,
}

impl GitlabMrNoteConfig {
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
        templates.add_file(Format::GitlabMarkdown, &self.template_name(), &path)
    }
}

#[derive(Debug, Serialize)]
struct NoteBody<'a> {
    body: &'a str,
}

/// The parts of a created note the receipt names.
#[derive(Debug, Deserialize)]
struct Created {
    id: u64,
}

/// A `gitlab_mr_note` integration, ready to send.
#[derive(Debug)]
pub struct GitlabMrNote {
    config: GitlabMrNoteConfig,
    templates: Arc<Templates>,
    client: GitlabClient,
}

impl GitlabMrNote {
    pub fn new(
        config: GitlabMrNoteConfig,
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

    pub fn config(&self) -> &GitlabMrNoteConfig {
        &self.config
    }

    /// The note's body: the rendered template cut to fit, then the marker.
    pub fn body(&self, notification: &Notification<'_>) -> Result<String, DeliveryError> {
        let event = notification.event;
        let rendered = self
            .templates
            .render(
                Format::GitlabMarkdown,
                &self.config.template_name(),
                &variables(event),
            )
            .map_err(|err| DeliveryError::permanent(err.to_string()))?;
        let marker = marker(&event.data.run_id);
        let room = MAX_BODY - marker.chars().count() - 2;
        Ok(format!("{}\n\n{marker}", cut(rendered.trim_end(), room)))
    }

    fn notes_route(project: &ProjectPath, iid: u64) -> String {
        format!("/projects/{}/merge_requests/{iid}/notes", project.encoded())
    }

    /// The requests a delivery would start with (`preview`): with a known merge request the
    /// POST of the note (a PUT at send time when the run's earlier note is found), otherwise
    /// the lookup of the commit's merge requests.
    pub fn preview(&self, notification: &Notification<'_>) -> Result<Vec<OutgoingRequest>, String> {
        let event = notification.event;
        let project = ProjectPath::of(event, &self.config.api.host)?;
        let request = match event.data.pull_request {
            Some(iid) => {
                let body = self.body(notification).map_err(|e| e.to_string())?;
                let json = serde_json::to_vec(&NoteBody { body: &body }).expect("serialises");
                let route = Self::notes_route(&project, iid.0);
                self.client.request(Method::POST, &route, Some(json))
            }
            None => {
                let sha = event.data.commit.sha.as_ref().ok_or(NO_MERGE_REQUEST)?;
                let route = format!(
                    "/projects/{}/repository/commits/{sha}/merge_requests?per_page={PER_PAGE}&page=1",
                    project.encoded()
                );
                self.client.request(Method::GET, &route, None)
            }
        };
        request.map(|r| vec![r]).map_err(|e| e.to_string())
    }

    async fn note_on(
        &self,
        project: &ProjectPath,
        iid: u64,
        body: &str,
        marker: &str,
        cancel: &CancellationToken,
    ) -> Result<String, DeliveryError> {
        let json = serde_json::to_vec(&NoteBody { body }).expect("the note serialises");
        let notes = Self::notes_route(project, iid);
        match find_note(&self.client, project, iid, marker, cancel).await? {
            Some(id) => {
                let request =
                    self.client
                        .request(Method::PUT, &format!("{notes}/{id}"), Some(json))?;
                self.client.send(request, cancel).await?;
                Ok(format!("updated note {id} on !{iid}"))
            }
            None => {
                let request = self.client.request(Method::POST, &notes, Some(json))?;
                let answer = self.client.send(request, cancel).await?;
                Ok(match serde_json::from_str::<Created>(&answer.body) {
                    Ok(created) => format!("posted note {} on !{iid}", created.id),
                    Err(_) => format!("posted a note on !{iid}"),
                })
            }
        }
    }
}

impl Deliver for GitlabMrNote {
    async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        let event = notification.event;
        let project = match ProjectPath::of(event, &self.config.api.host) {
            Ok(project) => project,
            Err(reason) => return Ok(Receipt::Skipped(reason)),
        };
        let body = self.body(notification)?;
        let iids = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(iid), _) => vec![iid.0],
            (None, None) => return Ok(Receipt::Skipped(NO_MERGE_REQUEST.to_owned())),
            (None, Some(sha)) => {
                let iids =
                    open_merge_requests_with_head(&self.client, &project, sha, cancel).await?;
                if iids.is_empty() {
                    let reason = format!("no open merge request has head {sha}");
                    return Ok(Receipt::Skipped(reason));
                }
                iids
            }
        };
        let marker = marker(&event.data.run_id);
        let mut done = Vec::new();
        for iid in iids {
            done.push(self.note_on(&project, iid, &body, &marker, cancel).await?);
        }
        Ok(Receipt::Sent(done.join("; ")))
    }
}
