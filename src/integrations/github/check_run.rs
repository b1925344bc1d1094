//! The `github_check_run` integration: one check run per run on the run's commit, created at
//! the run's first event and updated (`PATCH`) on the later ones, found again by the id the
//! ledger keeps or, without it, by its name and `external_id` (the run id). GitHub Apps only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::GithubApi;
use super::client::{GithubClient, classify_answer};
use super::pulls::PER_PAGE;
use crate::event::{RunEvent, RunStatus, Stage};
use crate::failure::DeliveryError;
use crate::integrations::status_texts::StatusTexts;
use crate::integrations::target::CommitTarget;
use crate::integrations::text::cut;
use crate::integrations::{
    Answer, Checks, Common, Draft, Io, Kind, Notification, OutgoingRequest, Parts, Plan, Problems,
    Step, settings,
};
use crate::render::{Format, TemplateError, Templates, template_path, variables};
use crate::route::Filters;

/// GitHub's limit on `output.summary`, in characters.
pub const MAX_SUMMARY: usize = 65_535;
/// Longer titles are cut, visibly (GitHub shows one line).
pub const MAX_TITLE: usize = 255;
/// The title template under `templates_dir` unless `title_template` names one.
pub const DEFAULT_TITLE_TEMPLATE: &str = "github/check_run_title.hbs";
/// The summary template under `templates_dir` unless `summary_template` names one.
pub const DEFAULT_SUMMARY_TEMPLATE: &str = "github/check_run.md.hbs";
/// The default check name: one check run per project, named after this worker (the project id
/// when the run has no project name).
pub const DEFAULT_CHECK_NAME: &str =
    "run-notifier / {{#if projectName}}{{projectName}}{{else}}{{projectId}}{{/if}}";
/// A guard against a server whose pages never end: 10,000 check runs of one name on a commit
/// (GitHub keeps at most 1,000 per check suite).
const MAX_PAGES: u32 = 100;

/// Why a token cannot do: GitHub lets only Apps write check runs.
const APP_ONLY: &str = "`github_check_run` needs a GitHub App: `auth` takes `app_id`, `installation_id` and `private_key` or `private_key_file`, not a `token` (GitHub lets only Apps create check runs; the App needs the `checks: write` permission)";

crate::integrations::keyed! {
/// Config of a `type: github_check_run` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubCheckRunConfig {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(flatten)]
    pub api: GithubApi,
    /// Handlebars template of the check run's name (plain text, inline); it is also how the
    /// check run is found again, so it should not change while runs are under way.
    #[serde(default = "default_check_name")]
    pub check_name: String,
    /// Handlebars template of `output.title` (plain text); default `github/check_run_title.hbs`.
    #[serde(default)]
    pub title_template: Option<PathBuf>,
    /// Handlebars template of `output.summary` (Markdown); default `github/check_run.md.hbs`.
    #[serde(default)]
    pub summary_template: Option<PathBuf>,
}
}

fn default_check_name() -> String {
    DEFAULT_CHECK_NAME.to_owned()
}

settings!(GithubCheckRunConfig);

impl GithubCheckRunConfig {
    /// The title and the name are one line each, rendered like a status's description and
    /// context.
    fn texts(&self) -> StatusTexts<'_> {
        StatusTexts {
            integration: &self.common.name,
        }
    }

    fn summary_name(&self) -> String {
        format!("{}/summary", self.common.name)
    }
}

impl Checks for GithubCheckRunConfig {
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.title_template
            .iter_mut()
            .chain(self.summary_template.iter_mut())
            .chain(self.api.auth.private_key_file.iter_mut())
            .collect()
    }

    /// Compiles the name, title and summary templates (checked against the sample events).
    fn register_templates(
        &self,
        templates: &mut Templates,
        dir: &Path,
    ) -> Result<(), TemplateError> {
        let title = self.title_template.as_deref();
        self.texts().register(
            templates,
            dir,
            title,
            DEFAULT_TITLE_TEMPLATE,
            &self.check_name,
        )?;
        let path = template_path(
            dir,
            self.summary_template.as_deref(),
            DEFAULT_SUMMARY_TEMPLATE,
        );
        templates.add_file(GithubCheckRun::MARKUP, &self.summary_name(), &path)
    }
}

/// `output` of a check run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRunOutput {
    pub title: String,
    pub summary: String,
}

/// The body of `POST /repos/{o}/{r}/check-runs` (with `head_sha`) and of
/// `PATCH /repos/{o}/{r}/check-runs/{id}` (without it).
#[derive(Debug, Clone, Serialize)]
pub struct CheckRunBody {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    pub external_id: String,
    pub details_url: String,
    /// `in_progress` or `completed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Set once `completed`: `success`, `failure`, `timed_out` or `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub output: CheckRunOutput,
}

/// Where a check run stands after an event: still going (since when), or done (how, when).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    InProgress {
        since: DateTime<Utc>,
    },
    Completed {
        conclusion: &'static str,
        at: DateTime<Utc>,
    },
}

impl CheckState {
    /// The state a run's event leaves its check run in: in progress since the start, or
    /// completed when the run finished (by the outcome rule the statuses use), timed out or
    /// was cancelled.
    pub fn of(event: &RunEvent) -> Self {
        let utc = |time: &chrono::DateTime<chrono::FixedOffset>| time.with_timezone(&Utc);
        let (conclusion, at) = match &event.stage {
            Stage::Started => {
                return CheckState::InProgress {
                    since: utc(&event.time),
                };
            }
            Stage::Finished => (Self::finished(event.outcome()), utc(&event.time)),
            Stage::TimedOut(timeout) => ("timed_out", utc(&timeout.timed_out_at)),
            Stage::Canceled(cancellation) => ("cancelled", utc(&cancellation.canceled_at)),
        };
        CheckState::Completed { conclusion, at }
    }

    /// The conclusion of a finished run: `failure` with a failed test, else `success`
    /// (a finished run always has results).
    fn finished(outcome: Option<RunStatus>) -> &'static str {
        match outcome {
            Some(RunStatus::Failed) => "failure",
            Some(RunStatus::Passed) | None => "success",
        }
    }
}

/// GitHub's timestamps: ISO 8601 in UTC, whole seconds (`YYYY-MM-DDTHH:MM:SSZ`).
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The parts of a listed check run the lookup needs.
#[derive(Debug, Deserialize)]
struct ListedCheckRun {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
}

/// `GET /repos/{o}/{r}/commits/{ref}/check-runs` answers an object, not a list.
#[derive(Debug, Deserialize)]
struct CheckRunList {
    check_runs: Vec<ListedCheckRun>,
}

/// A `github_check_run` integration, ready to send.
#[derive(Debug)]
pub struct GithubCheckRun {
    config: GithubCheckRunConfig,
    templates: Arc<Templates>,
    client: GithubClient,
}

impl GithubCheckRun {
    /// The check run for this event: name, title and summary rendered, the state set. The
    /// `head_sha` is left for a create to add.
    pub fn body(&self, event: &RunEvent) -> Result<CheckRunBody, DeliveryError> {
        let (title, name) = self.config.texts().render(&self.templates, event)?;
        if name.is_empty() {
            return Err(DeliveryError::permanent(
                "the `check_name` template rendered nothing: GitHub needs a check run name",
            ));
        }
        let summary = self
            .templates
            .render(Self::MARKUP, &self.config.summary_name(), variables(event))
            .map_err(|err| DeliveryError::permanent(err.to_string()))?;
        let (status, started_at, conclusion, completed_at) = match CheckState::of(event) {
            CheckState::InProgress { since } => ("in_progress", Some(timestamp(since)), None, None),
            CheckState::Completed { conclusion, at } => {
                ("completed", None, Some(conclusion), Some(timestamp(at)))
            }
        };
        Ok(CheckRunBody {
            name,
            head_sha: None,
            external_id: event.data.run_id.as_str().to_owned(),
            details_url: event.data.run_url.to_string(),
            status,
            started_at,
            conclusion,
            completed_at,
            output: CheckRunOutput {
                title: cut(&title, MAX_TITLE),
                summary: cut(summary.trim_end(), MAX_SUMMARY),
            },
        })
    }

    /// The id of the run's check run on the commit, if this App made one: its check runs of
    /// `name` listed (every one, not only the latest) and matched on `external_id`.
    async fn find(
        &self,
        target: &CommitTarget,
        name: &str,
        external_id: &str,
        io: &Io<'_>,
    ) -> Result<Option<u64>, DeliveryError> {
        let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let app = match self.config.api.auth.app_id {
            Some(app_id) => format!("&app_id={app_id}"),
            None => String::new(),
        };
        let (repo, sha) = (&target.repo, &target.sha);
        for page in 1..=MAX_PAGES {
            let route = format!(
                "/repos/{}/{}/commits/{sha}/check-runs?check_name={name}&filter=all{app}&per_page={PER_PAGE}&page={page}",
                repo.owner, repo.name
            );
            let (list, next) = self.client.get_json::<CheckRunList>(&route, io).await?;
            let found = list
                .check_runs
                .iter()
                .find(|run| run.external_id.as_deref() == Some(external_id));
            if let Some(run) = found {
                return Ok(Some(run.id));
            }
            if !next {
                break;
            }
        }
        Ok(None)
    }

    /// The write: the check run `id` updated, or a new one on the commit.
    fn write(
        &self,
        target: &CommitTarget,
        id: Option<u64>,
        mut body: CheckRunBody,
    ) -> Result<Step, DeliveryError> {
        let (repo, state) = (&target.repo, state_words(&body));
        Ok(match id {
            Some(id) => {
                let route = format!("/repos/{}/{}/check-runs/{id}", repo.owner, repo.name);
                let json = serde_json::to_vec(&body).expect("the check run body serialises");
                let request = self.client.request(Method::PATCH, &route, Some(json))?;
                Step::new(request, move |_: &Answer| {
                    format!("updated check run {id} ({state})")
                })
                .keeping(move |_| Some(id.to_string()))
            }
            None => {
                body.head_sha = Some(target.sha.as_str().to_owned());
                let route = format!("/repos/{}/{}/check-runs", repo.owner, repo.name);
                let json = serde_json::to_vec(&body).expect("the check run body serialises");
                let request = self.client.request(Method::POST, &route, Some(json))?;
                Step::new(request, move |answer: &Answer| {
                    // The write is done: an answer we cannot read must not fail (and so
                    // repeat) it.
                    match answer.id() {
                        Some(id) => format!("created check run {id} ({state})"),
                        None => format!("created a check run ({state})"),
                    }
                })
                .keeping(|answer| answer.id().map(|id| id.to_string()))
            }
        })
    }
}

/// `in_progress`, or `completed: cancelled`, for receipts.
fn state_words(body: &CheckRunBody) -> String {
    match body.conclusion {
        Some(conclusion) => format!("{}: {conclusion}", body.status),
        None => body.status.to_owned(),
    }
}

impl Kind for GithubCheckRun {
    const TYPE: &'static str = "github_check_run";
    type Config = GithubCheckRunConfig;
    const NO_TRACES: Option<&'static str> = super::NO_TRACES;
    /// The summary's; the name and the title are plain text.
    const MARKUP: Format = Format::MARKDOWN;

    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_answer(answer, now)
    }

    /// Refuses a token (only Apps write check runs) along with every other problem of the
    /// GitHub settings.
    fn build(config: GithubCheckRunConfig, parts: &Parts) -> Result<Self, Problems> {
        let mut problems = Problems::new();
        if config.api.auth.token.is_some() {
            problems.push(APP_ONLY);
        }
        let client = problems.take_all(GithubClient::new(&config.api));
        let client = problems.or_built(client)?;
        Ok(Self {
            config,
            templates: Arc::clone(&parts.templates),
            client,
        })
    }

    fn config(&self) -> &GithubCheckRunConfig {
        &self.config
    }

    /// Reads first, unless the ledger kept the run's check run id: the run's check run on the
    /// commit, so the plan is the exact PATCH, or the POST of a new one. Either way the id is
    /// kept for the run's later events.
    async fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> Result<Plan, DeliveryError> {
        let event = notification.event;
        let api = &self.config.api;
        let target = match api.commit_target(event) {
            Ok(target) => target,
            Err(reason) => return Ok(Plan::Skip(reason)),
        };
        let body = self.body(event)?;
        // The id the ledger kept from the run's earlier event is patched without a lookup
        // (should GitHub no longer know it, the delivery plans again without it).
        if let Some(id) = notification.object_id.and_then(|id| id.parse().ok()) {
            let step = self.write(&target, Some(id), body)?;
            return Ok(Plan::Send(vec![
                step.editing_kept(format!("check run {id}")),
            ]));
        }
        // Without it (a fresh ledger, another replica's event), GitHub is asked.
        let id = self
            .find(&target, &body.name, &body.external_id, io)
            .await?;
        Ok(Plan::Send(vec![self.write(&target, id, body)?]))
    }

    /// The check run without its reads: a new one (POST) or the run's earlier one (PATCH).
    fn draft(&self, notification: &Notification<'_>) -> Option<Draft> {
        let event = notification.event;
        let target = CommitTarget::of(event, &self.config.api.host).ok()?;
        let mut body = self.body(event).ok()?;
        body.head_sha = Some(target.sha.as_str().to_owned());
        Some(Draft {
            methods: "POST or PATCH",
            target: format!(
                "the check run `{}` on {} at {} (PATCH, without `head_sha`, updates the run's earlier check run)",
                body.name, target.repo, target.sha
            ),
            body: serde_json::to_vec(&body).expect("the check run body serialises"),
        })
    }

    async fn send(&self, request: OutgoingRequest, io: &Io<'_>) -> Result<Answer, DeliveryError> {
        self.client.send(request, io).await
    }
}
