//! The `gitlab_mr_note` integration: one note per run on the merge request of the run's
//! commit, edited with `PUT` by the id the ledger kept, or found again by a hidden marker in a
//! note the worker wrote (on any page of the notes), so a run never gets two notes even when
//! the ledger has no record of the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::pages::{find_note, open_merge_requests_with_head};
use super::project::ProjectPath;
use super::{GitlabApi, GitlabClient, classify_answer};
use crate::failure::DeliveryError;
use crate::integrations::github::comment::marker;
use crate::integrations::kept_comments::{KeptComments, piece};
use crate::integrations::text::with_marker;
use crate::integrations::{
    Answer, Checks, Common, Draft, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    Step, settings,
};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitLab's limit on a note body, in characters.
pub const MAX_BODY: usize = 1_000_000;
/// The body template under `templates_dir` unless `template` names one.
pub const DEFAULT_TEMPLATE: &str = "gitlab/mr_note.md.hbs";

/// Why a run without `pullRequest` and without a commit sha gets no note.
const NO_MERGE_REQUEST: &str =
    "the run has neither a pullRequest (merge request IID) nor a commit sha to find one by";

crate::integrations::keyed! {
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
}

settings!(GitlabMrNoteConfig);

impl GitlabMrNoteConfig {
    fn template_name(&self) -> String {
        format!("{}/body", self.common.name)
    }
}

impl Checks for GitlabMrNoteConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.template.iter_mut().collect()
    }

    /// Compiles the body template (checked against the sample events).
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let path = template_path(dir, self.template.as_deref(), DEFAULT_TEMPLATE);
        templates.add_file(GitlabMrNote::MARKUP, &self.template_name(), &path)
    }
}

#[derive(Debug, Serialize)]
struct NoteBody<'a> {
    body: &'a str,
}

/// A `gitlab_mr_note` integration, ready to send.
#[derive(Debug)]
pub struct GitlabMrNote {
    config: GitlabMrNoteConfig,
    templates: Arc<Templates>,
    client: GitlabClient,
    /// Whom the note search trusts: only notes this identity wrote are edited.
    identity: Identity,
}

impl GitlabMrNote {
    /// The note's body: the rendered template cut to fit, then the marker.
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

    /// The step for merge request `iid`: a PUT of the run's earlier note, by the id the ledger
    /// kept or else found now by its marker (searched on every page), otherwise a POST.
    async fn note_on(
        &self,
        project: &ProjectPath,
        iid: u64,
        kept: Option<u64>,
        json: &[u8],
        marker: &str,
        io: &Io<'_>,
    ) -> Result<Step, DeliveryError> {
        // A kept id is edited without reading the merge request's notes. The worker made it
        // (posted it, or found it among its own), so the own-identity rule holds; should it
        // be gone, the delivery plans again without it and searches.
        if let Some(id) = kept {
            let step = self.edit(project, iid, id, json)?;
            return Ok(step.editing_kept(format!("note {id} on !{iid}")));
        }
        match find_note(&self.client, project, iid, marker, &self.identity, io).await? {
            Some(id) => self.edit(project, iid, id, json),
            None => self.post(project, iid, json),
        }
    }

    /// `…/merge_requests/{iid}/notes` of the project.
    fn notes(project: &ProjectPath, iid: u64) -> String {
        format!("/projects/{}/merge_requests/{iid}/notes", project.encoded())
    }

    /// `PUT` of note `id` on merge request `iid`, kept for the run's later events.
    fn edit(
        &self,
        project: &ProjectPath,
        iid: u64,
        id: u64,
        json: &[u8],
    ) -> Result<Step, DeliveryError> {
        let route = format!("{}/{id}", Self::notes(project, iid));
        let request = self
            .client
            .request(Method::PUT, &route, Some(json.to_vec()))?;
        Ok(Step::new(request, move |_: &Answer| {
            format!("updated note {id} on !{iid}")
        })
        .keeping(move |_| Some(piece(iid, id))))
    }

    /// `POST` of a new note on merge request `iid`, its id kept for the run's later events.
    fn post(&self, project: &ProjectPath, iid: u64, json: &[u8]) -> Result<Step, DeliveryError> {
        let request = self.client.request(
            Method::POST,
            &Self::notes(project, iid),
            Some(json.to_vec()),
        )?;
        Ok(
            Step::new(request, move |answer: &Answer| match answer.id() {
                Some(id) => format!("posted note {id} on !{iid}"),
                None => format!("posted a note on !{iid}"),
            })
            .keeping(move |answer| answer.id().map(|id| piece(iid, id))),
        )
    }
}

impl Kind for GitlabMrNote {
    const TYPE: &'static str = "gitlab_mr_note";
    type Config = GitlabMrNoteConfig;
    const MARKUP: Format = Format::GITLAB_MARKDOWN;

    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_answer(answer, now)
    }

    fn build(config: GitlabMrNoteConfig, parts: &Parts) -> Result<Self, Problems> {
        let client = GitlabClient::new(&config.api)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            client,
            identity: Identity::default(),
        })
    }

    fn config(&self) -> &GitlabMrNoteConfig {
        &self.config
    }

    /// Reads first: the commit's open merge requests (unless the event names one) and, where
    /// the ledger kept no note id for one, the run's earlier note on it, so the plan is the
    /// exact POST or PUT per merge request.
    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let event = notification.event;
        let api = &self.config.api;
        let project = match ProjectPath::of(event, &api.host)
            .and_then(|project| api.repositories.admit(&project).map(|()| project))
        {
            Ok(project) => project,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let body = self.body(notification)?;
        let iids = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(iid), _) => vec![iid.0],
            (None, None) => return Ok(Plan::Skip(NO_MERGE_REQUEST.to_owned())),
            (None, Some(sha)) => {
                let iids = open_merge_requests_with_head(&self.client, &project, sha, io).await?;
                if iids.is_empty() {
                    return Ok(Plan::Skip(format!("no open merge request has head {sha}")));
                }
                iids
            }
        };
        let json = serde_json::to_vec(&NoteBody { body: &body }).expect("the note serialises");
        let marker = marker(&event.data.run_id);
        let kept = KeptComments::parse(notification.object_id);
        let mut steps = Vec::with_capacity(iids.len());
        for iid in iids {
            let kept = kept.on(iid);
            steps.push(
                self.note_on(&project, iid, kept, &json, &marker, io)
                    .await?,
            );
        }
        Ok(Plan::Send(steps))
    }

    /// The note without its reads: a new one (POST) or the run's earlier one (PUT).
    fn draft(&self, notification: &Notification<'_>) -> Option<Draft> {
        let event = notification.event;
        let project = ProjectPath::of(event, &self.config.api.host).ok()?;
        let body = self.body(notification).ok()?;
        let merge_request = match (event.data.pull_request, &event.data.commit.sha) {
            (Some(iid), _) => format!("merge request !{}", iid.0),
            (None, Some(sha)) => format!("each open merge request with head {sha}"),
            (None, None) => return None,
        };
        Some(Draft {
            methods: "POST or PUT",
            target: format!(
                "a note on {merge_request} of {} (PUT edits the run's earlier note)",
                project.as_str()
            ),
            body: serde_json::to_vec(&NoteBody { body: &body }).expect("the note serialises"),
        })
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.client.send(request, io).await
    }
}
