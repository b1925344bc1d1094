//! The run lifecycle CloudEvents (`run.started`, `run.finished`, `run.timed_out`,
//! `run.canceled`), parsed at the edge into typed values with every field rule checked.

mod amqp;
mod ids;
mod lifecycle;
mod memo;
mod repo;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::value::RawValue;
use url::Url;

pub use ids::{CommitSha, PullRequestNumber, RunId};
pub use lifecycle::{EventType, Stage, TERMINAL_EVENTS, Timeout};
pub use repo::{Repo, host_and_path, valid_segment, without_credentials};

use crate::echo;
use memo::Memo;

/// Why a message body is not a valid run event; the sentence names the field. Any producer
/// text it quotes is already bounded and escaped ([`echo`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not a CloudEvent: {0}")]
    NotCloudEvent(String),
    #[error("CloudEvent type is `{0}`, but this worker only handles {types}", types = EventType::listed())]
    WrongType(String),
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
    /// A binary-mode message whose headers or body break the AMQP binding.
    #[error("binary-mode CloudEvent: {0}")]
    Binary(String),
    /// A content type this worker does not read.
    #[error("unsupported CloudEvents content: {0}")]
    Unsupported(String),
    /// A message in neither content mode: what was wrong, then what was expected.
    #[error("{problem}; {expected}")]
    NeitherMode {
        problem: String,
        expected: &'static str,
    },
}

/// Something happened to a run (it started, finished, timed out or was cancelled): everything
/// the integrations may use, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// CloudEvents `id` (differs between two cancels of one run).
    pub event_id: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `time`: when it happened, which orders the run's events. A `run.canceled`
    /// event without one happened at `cancellation.canceledAt`.
    pub time: DateTime<FixedOffset>,
    /// The event type, with what it adds to `data` (the timeout, the cancellation).
    pub stage: Stage,
    pub data: RunData,
    /// What templates see, built once however many integrations render the event
    /// ([`crate::render::variables`]).
    pub(crate) variables: Memo<handlebars::Context>,
}

impl RunEvent {
    /// The CloudEvents `type`.
    pub fn event_type(&self) -> EventType {
        self.stage.event_type()
    }

    /// Who cancelled the run, for a `run.canceled` event.
    pub fn cancellation(&self) -> Option<&Cancellation> {
        self.stage.cancellation()
    }

    /// When and after how long the run timed out, for a `run.timed_out` event.
    pub fn timeout(&self) -> Option<&Timeout> {
        self.stage.timeout()
    }

    /// Passed or failed by the results, when they are known (always, but in `run.started`).
    pub fn outcome(&self) -> Option<RunStatus> {
        self.data.results.as_ref().map(Results::status)
    }
}

/// The `data` member of the event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunData {
    pub run_id: RunId,
    #[serde(deserialize_with = "web_url")]
    pub run_url: Url,
    #[serde(deserialize_with = "non_empty")]
    pub project_id: String,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub build_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub commit: Commit,
    #[serde(default)]
    pub pull_request: Option<PullRequestNumber>,
    /// The run's results so far: always there but in a `run.started` event, where absent
    /// means unknown.
    #[serde(default)]
    pub results: Option<Results>,
}

/// The members of `data` that belong to one event type, checked against the type once read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StageData {
    #[serde(default)]
    cancellation: Option<Cancellation>,
    #[serde(default)]
    timeout: Option<Timeout>,
}

/// The run's commit; any part may be missing (a run started outside git).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    #[serde(default)]
    pub sha: Option<CommitSha>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub author_name: Option<String>,
    #[serde(default)]
    pub author_email: Option<String>,
    /// Without its credentials ([`without_credentials`]): no output ever sees them.
    #[serde(default, deserialize_with = "remote_without_credentials")]
    pub remote_origin: Option<String>,
}

impl Commit {
    /// The repository named by `remoteOrigin`, when it names one.
    pub fn repo(&self) -> Option<Repo> {
        self.remote_origin.as_deref().and_then(Repo::from_remote)
    }
}

/// The last known results of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub overall: u64,
    pub passes: u64,
    pub failures: u64,
    pub pending: u64,
    pub skipped: u64,
    pub retries: u64,
    pub flaky: u64,
}

impl Results {
    /// The dashboard's documented rule: no failed test so far means the run passed.
    pub fn status(&self) -> RunStatus {
        if self.failures == 0 {
            RunStatus::Passed
        } else {
            RunStatus::Failed
        }
    }
}

/// Outcome of the run by its last known results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Passed,
    Failed,
}

/// Who cancelled the run, when and why.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    #[serde(serialize_with = "rfc3339")]
    pub canceled_at: DateTime<FixedOffset>,
    pub reason: Reason,
    #[serde(deserialize_with = "non_empty")]
    pub actor: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// What cancelled the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    User,
    Api,
    FailFast,
    Ci,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::User, Reason::Api, Reason::FailFast, Reason::Ci];

    /// The name used in events and config (`failFast`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::User => "user",
            Reason::Api => "api",
            Reason::FailFast => "failFast",
            Reason::Ci => "ci",
        }
    }
}

/// The CloudEvents structured-mode envelope; unknown members are ignored. `data` is kept as
/// its JSON text, read once the attributes are known to be right.
#[derive(Deserialize)]
struct Envelope<'a> {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    time: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl RunEvent {
    /// Parses and validates a structured-mode message body (the whole event as JSON).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let envelope: Envelope<'_> = match serde_json::from_slice(body) {
            Ok(envelope) => envelope,
            Err(err) if err.is_data() => {
                return Err(EventError::NotCloudEvent(format!(
                    "expected a JSON object: {}",
                    echo::message(&err.to_string())
                )));
            }
            Err(err) => {
                return Err(EventError::NotJson(
                    echo::message(&err.to_string()).to_string(),
                ));
            }
        };
        let attributes = Attributes {
            specversion: envelope.specversion,
            id: envelope.id,
            source: envelope.source,
            kind: envelope.kind,
            time: envelope.time,
        };
        Self::from_parts(attributes, envelope.data, |name| format!("`{name}`"))
    }

    /// Checks the context attributes and the `data` of an event, whichever content mode
    /// carried them; `describe` names an attribute in errors (binary mode adds its header).
    fn from_parts(
        attributes: Attributes,
        data: Option<&RawValue>,
        describe: impl Fn(&str) -> String,
    ) -> Result<Self, EventError> {
        let required = |value: Option<String>, name: &str| {
            value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                EventError::NotCloudEvent(format!("{} is missing or empty", describe(name)))
            })
        };
        let specversion = required(attributes.specversion, "specversion")?;
        if specversion != "1.0" {
            return Err(EventError::NotCloudEvent(format!(
                "{} is `{}`, expected `1.0`",
                describe("specversion"),
                echo::value(&specversion)
            )));
        }
        let event_id = required(attributes.id, "id")?;
        let source = required(attributes.source, "source")?;
        let kind = required(attributes.kind, "type")?;
        let event_type = EventType::parse(&kind)
            .ok_or_else(|| EventError::WrongType(echo::value(&kind).to_string()))?;
        let time = match attributes.time.filter(|t| !t.trim().is_empty()) {
            None => None,
            Some(text) => Some(DateTime::parse_from_rfc3339(&text).map_err(|err| {
                EventError::NotCloudEvent(format!(
                    "{} is `{}`, not an RFC 3339 time ({err})",
                    describe("time"),
                    echo::value(&text)
                ))
            })?),
        };
        let raw = data.ok_or_else(|| EventError::Field {
            field: "data".into(),
            problem: "is missing".into(),
        })?;
        let data: RunData = read_data(raw)?;
        let stage = stage(event_type, read_data(raw)?, data.results.is_some())?;
        let time = match (time, &stage) {
            (Some(time), _) => time,
            (None, Stage::Canceled(cancellation)) => cancellation.canceled_at,
            (None, _) => {
                return Err(EventError::NotCloudEvent(format!(
                    "{} is missing or empty; a `{event_type}` event must say when it happened, \
                     to be ordered among the run's other events",
                    describe("time")
                )));
            }
        };
        Ok(Self {
            event_id,
            source,
            time,
            stage,
            data,
            variables: Memo::default(),
        })
    }
}

/// Reads `data` as `T`, an error naming the member's path within the event.
fn read_data<'de, T: Deserialize<'de>>(data: &'de RawValue) -> Result<T, EventError> {
    // Valid events, nearly all of them, are read once without the path tracking (which adds a
    // wrapper to every value read); only a bad one is read again to say where it is bad.
    if let Ok(read) = serde_json::from_str(data.get()) {
        return Ok(read);
    }
    let mut reader = serde_json::Deserializer::from_str(data.get());
    serde_path_to_error::deserialize(&mut reader).map_err(|err| {
        let path = err.path().to_string();
        EventError::Field {
            field: if path == "." {
                "data".into()
            } else {
                format!("data.{}", echo::value(&path))
            },
            // serde quotes the value it did not expect, whatever its size.
            problem: echo::message(&without_position(&err.into_inner())).to_string(),
        }
    })
}

/// Checks that `data` has what its type needs and nothing that belongs to another type.
fn stage(event_type: EventType, parts: StageData, has_results: bool) -> Result<Stage, EventError> {
    let missing = |member: &str, why: &str| EventError::Field {
        field: "data".into(),
        problem: format!("missing field `{member}` ({why})"),
    };
    let misplaced = |member: &str, owner: EventType| EventError::Field {
        field: format!("data.{member}"),
        problem: format!("only a `{owner}` event has it, and this one is `{event_type}`"),
    };
    if !has_results && event_type != EventType::Started {
        return Err(missing(
            "results",
            "only a `run.started` event may leave the results out",
        ));
    }
    if event_type != EventType::Canceled && parts.cancellation.is_some() {
        return Err(misplaced("cancellation", EventType::Canceled));
    }
    if event_type != EventType::TimedOut && parts.timeout.is_some() {
        return Err(misplaced("timeout", EventType::TimedOut));
    }
    Ok(match event_type {
        EventType::Started => Stage::Started,
        EventType::Finished => Stage::Finished,
        EventType::TimedOut => Stage::TimedOut(parts.timeout.ok_or_else(|| {
            missing(
                "timeout",
                "a `run.timed_out` event says when the run timed out",
            )
        })?),
        EventType::Canceled => Stage::Canceled(parts.cancellation.ok_or_else(|| {
            missing(
                "cancellation",
                "a `run.canceled` event says who cancelled the run",
            )
        })?),
    })
}

/// serde_json's message without the position it appends, which would count from the start of
/// `data` rather than of the message: the field's path says where.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// The context attributes the worker checks, as the content mode delivered them.
#[derive(Debug, Default)]
struct Attributes {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    /// RFC 3339 text (binary mode turns the other forms of `time` into it).
    time: Option<String>,
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        Err(de::Error::custom("must not be empty"))
    } else {
        Ok(text)
    }
}

/// An http or https URL, without user-info: a link in a message never carries credentials.
fn web_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    let mut url =
        Url::parse(&text).map_err(|err| de::Error::custom(format!("not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(de::Error::custom("must be an http or https URL"));
    }
    // Cannot fail: an http(s) URL has a host.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    Ok(url)
}

fn remote_without_credentials<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let remote = Option::<String>::deserialize(deserializer)?;
    Ok(remote.map(|remote| without_credentials(&remote).into_owned()))
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn rfc3339<S: serde::Serializer>(time: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests;
