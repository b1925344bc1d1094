//! What one kind of integration is: the [`Kind`] trait, and the [`Plan`] that turns an event into
//! requests. Delivery is plan + send; `preview` is plan alone.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::IntegrationName;
use super::http::{Answer, Classifier, OutgoingRequest};
use super::keys::Keys;
use super::notification::Notification;
use super::problems::Problems;
use crate::duration::HumanDuration;
use crate::event::EventType;
use crate::failure::{DeliveryError, classify_response};
use crate::render::{Format, TemplateError, Templates};
use crate::route::Filters;

/// Settings every integration has. Flattened, like [`Filters`], into each integration's own
/// config struct, which rejects unknown keys. (A flattened struct must not flatten another:
/// serde would then hand all keys on and the outer struct would reject them.)
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    /// Unique name: retries, dead letters, the ledger and metrics refer to it.
    pub name: IntegrationName,
    /// Longest wait for one request's answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Deliveries to this integration under way at once; beyond that its work waits in its
    /// own durable queue, so a slow receiver holds only its own share of the worker.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// When to pause the integration after consecutive failures.
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Send the delivery span's W3C `traceparent` (and `tracestate`) header on each post, so a
    /// receiver that traces can join the trace; only while tracing is on. Not for kinds whose
    /// receiver cannot ([`Kind::NO_TRACES`]: GitHub's API).
    #[serde(default)]
    pub send_traceparent: bool,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

fn default_concurrency() -> usize {
    16
}

/// Pauses an integration whose receiver keeps failing: its work stays queued (nothing is
/// dropped) until a probe after `cool_down` gets an answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Consecutive transient failures (no answer, timeouts, 5xx) that open it; 0 never does.
    pub failures: u32,
    /// How long it stays open before one probe.
    pub cool_down: HumanDuration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failures: 5,
            cool_down: HumanDuration::secs(30),
        }
    }
}

impl Common {
    /// Rules of the common settings the grammar cannot express.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(self.name.problem());
        if self.timeout.is_zero() {
            problems.push("`timeout` must be longer than 0ms".to_owned());
        }
        if !(1..=1024).contains(&self.concurrency) {
            problems.push("`concurrency` must be between 1 and 1024".to_owned());
        }
        if self.circuit_breaker.cool_down.is_zero() {
            problems.push("`circuit_breaker.cool_down` must be longer than 0ms".to_owned());
        }
        problems
    }
}

/// The settings of an integration's config that every kind shares: its [`Common`] settings and
/// routing [`Filters`], both flattened into the config struct. Implemented by the crate's
/// `settings!` macro.
pub trait Settings {
    fn common(&self) -> &Common;
    fn filters(&self) -> &Filters;
}

/// What a kind's config checks at load besides what [`Kind::build`] finds: its templates.
pub trait Checks {
    /// Compiles and checks its templates into `templates` (a template that fails stops the
    /// start, never a send). Kinds without templates keep this default.
    fn register_templates(&self, _: &mut Templates, _: &Path) -> Result<(), TemplateError> {
        Ok(())
    }

    /// Every file path it names (templates, key files), so that the config resolves relative
    /// ones against its own folder. Kinds that name no file keep this default.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }
}

/// Implements [`Settings`] for config structs with `common` and `filters` fields.
macro_rules! settings {
    ($($config:ty),+ $(,)?) => {$(
        impl $crate::integrations::Settings for $config {
            fn common(&self) -> &$crate::integrations::Common {
                &self.common
            }
            fn filters(&self) -> &$crate::route::Filters {
                &self.filters
            }
        }
    )+};
}
pub(crate) use settings;

/// What building an integration may use besides its config. The default (no templates) is
/// what the config's checks at load build with: they need the problems, not the integration.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// Every integration's compiled templates.
    pub templates: Arc<Templates>,
}

/// What a plan or a send may use: the HTTP client, the integration's timeout, the attempt's
/// cancellation and its clock (one instant per attempt, so a signature and its timestamp agree),
/// and how its kind reads an answer.
#[derive(Debug, Clone, Copy)]
pub struct Io<'a> {
    pub client: &'a reqwest::Client,
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
    pub now: DateTime<Utc>,
    /// The kind's [`Kind::classify`].
    pub classify: Classifier,
}

impl Io<'_> {
    /// Sends `request` as it is and classifies the answer the kind's way.
    pub async fn send(&self, request: OutgoingRequest) -> Result<Answer, DeliveryError> {
        request
            .send(self.client, self.timeout, self.cancel, self.classify)
            .await
    }
}

/// What a delivery will do for one event: send these requests in order, or skip the event.
#[derive(Debug)]
pub enum Plan {
    Send(Vec<Step>),
    /// Nothing to do for this event (no commit to put a status on, say); the reason, as a
    /// sentence.
    Skip(String),
}

impl Plan {
    /// A plan of one request.
    pub fn one(
        request: OutgoingRequest,
        receipt: impl Fn(&Answer) -> String + Send + Sync + 'static,
    ) -> Self {
        Plan::Send(vec![Step::new(request, receipt)])
    }

    /// The requests of the plan (none when it skips).
    pub fn requests(&self) -> Vec<OutgoingRequest> {
        match self {
            Plan::Send(steps) => steps.iter().map(|step| step.request.clone()).collect(),
            Plan::Skip(_) => Vec::new(),
        }
    }
}

/// What a step's answer names as the run's object at the provider (a message `ts`).
type ObjectOf = Box<dyn Fn(&Answer) -> Option<String> + Send + Sync>;

/// One request of a plan, what its receipt says once the receiver took it, and, for kinds
/// that keep one object per run, which object its answer names and whether it edits the
/// object the ledger kept.
pub struct Step {
    pub request: OutgoingRequest,
    receipt: Box<dyn Fn(&Answer) -> String + Send + Sync>,
    object: Option<ObjectOf>,
    /// The kept object this step edits, as receipts name it (`check run 7`).
    edits_kept: Option<String>,
}

impl Step {
    pub fn new(
        request: OutgoingRequest,
        receipt: impl Fn(&Answer) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            request,
            receipt: Box::new(receipt),
            object: None,
            edits_kept: None,
        }
    }

    /// The step, whose answer names the run's object by `object` (kept in the ledger for the
    /// run's later events). When several steps of a plan keep one (a comment on each of two
    /// pull requests), the ledger keeps their pieces joined by a space.
    pub fn keeping(
        mut self,
        object: impl Fn(&Answer) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.object = Some(Box::new(object));
        self
    }

    /// The step, which edits the object the ledger kept for the run (`what`, as receipts name
    /// it) without looking for it first. That object may be gone at the provider (deleted by
    /// someone, or an id the provider no longer knows): when the answer says so
    /// ([`Kind::gone`]), the delivery does not fail but plans again as if nothing were kept,
    /// which finds the object by what names it or makes a new one, and keeps that.
    pub fn editing_kept(mut self, what: impl Into<String>) -> Self {
        self.edits_kept = Some(what.into());
        self
    }

    /// The kept object the step edits, if it edits one ([`Step::editing_kept`]).
    pub fn edits_kept(&self) -> Option<&str> {
        self.edits_kept.as_deref()
    }

    /// The receipt of this step for the receiver's `answer`.
    pub fn receipt(&self, answer: &Answer) -> String {
        (self.receipt)(answer)
    }

    /// The request to send, what makes its receipt from the answer, and what reads the run's
    /// object from it.
    pub fn into_parts(
        self,
    ) -> (
        OutgoingRequest,
        impl Fn(&Answer) -> String,
        Option<ObjectOf>,
    ) {
        (self.request, self.receipt, self.object)
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// The write a plan would make once its reads answer: which methods it could be, where, and
/// the body, which does not depend on the reads.
#[derive(Debug, Clone)]
pub struct Draft {
    /// `POST or PATCH`: a new comment, or the run's earlier one edited.
    pub methods: &'static str,
    /// Where, in words (`a comment on pull request #42 of acme/web-app`).
    pub target: String,
    /// The body, exactly as it would be sent.
    pub body: Vec<u8>,
}

/// The receipt most receivers get: their status code (`HTTP 204`).
pub fn http_status(answer: &Answer) -> String {
    format!("HTTP {}", answer.status.as_u16())
}

/// How a step that edits the kept object reads its answer: as `K` does, except that an answer
/// saying the object is gone ([`Kind::gone`]) is taken, so that the delivery can see it and
/// plan again instead of failing.
pub(super) fn classify_unless_gone<K: Kind>(
    answer: &Answer,
    now: DateTime<Utc>,
) -> Result<(), DeliveryError> {
    if K::gone(answer) {
        Ok(())
    } else {
        K::classify(answer, now)
    }
}

/// Everything one kind of integration is. A new kind implements this in its own module and
/// adds one line to the registry in `integrations/mod.rs`.
pub trait Kind: fmt::Debug + Send + Sync + Sized + 'static {
    /// Its `type:` in the config (also its metrics label).
    const TYPE: &'static str;

    /// The event types it gets when its config has no `events:`. Kinds that keep one object
    /// per run up to date (a status, a comment, an edited message) get every type; kinds that
    /// can only post again get the ends of a run.
    const DEFAULT_EVENTS: &'static [EventType] = &EventType::ALL;

    /// How values are escaped in its templates. Kinds without templates keep the default.
    const MARKUP: Format = Format::TEXT;

    /// Why its receiver cannot join a trace, when it cannot: `send_traceparent` is then
    /// refused at load with "`send_traceparent` is not available for " and this. `None` (the
    /// default): the receiver may join the trace.
    const NO_TRACES: Option<&'static str> = None;

    /// Its config: [`Common`] and [`Filters`] flattened, plus its own settings, with its
    /// templates' checks and the keys it accepts.
    type Config: fmt::Debug + Clone + DeserializeOwned + Settings + Checks + Keys + Send + Sync;

    /// The ready-to-use integration, holding what it needs parsed (URLs, credentials), or
    /// every rule of its own settings that the grammar cannot express and the config breaks.
    /// Run at load for every integration, so that all problems are reported at once.
    fn build(config: Self::Config, parts: &Parts) -> Result<Self, Problems>;

    /// The config it was built from.
    fn config(&self) -> &Self::Config;

    /// The requests a delivery of `notification` makes now, or why it skips the event. Kinds
    /// that must look something up first (a pull request, an earlier comment) read here;
    /// nothing is ever written by a plan.
    fn plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
    ) -> impl Future<Output = Result<Plan, DeliveryError>> + Send;

    /// Reads the receiver's answer at `now`: `Ok` when it says yes, else the failure, worth
    /// retrying or not. By default the status code says it all ([`classify_response`]:
    /// webhooks, Teams); kinds whose API answers in its own way (GitLab, Slack) override this.
    fn classify(answer: &Answer, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        classify_response(answer.status, &answer.headers, &answer.body, now)
    }

    /// Whether `answer` says that the object a step edits does not exist (any more). Asked
    /// only of a step that edits the object the ledger kept ([`Step::editing_kept`]), whose
    /// delivery then plans again without it; everywhere else such an answer is whatever
    /// [`Kind::classify`] makes of it. By default a 404 (GitHub, GitLab); Slack overrides it.
    fn gone(answer: &Answer) -> bool {
        answer.status == StatusCode::NOT_FOUND
    }

    /// What a plan that must read first would write, without the reads: `preview` shows it
    /// when a read fails, so a template can be checked offline. Kinds that read nothing
    /// before they write keep the default, none.
    fn draft(&self, _notification: &Notification<'_>) -> Option<Draft> {
        None
    }

    /// Sends one planned request. Kinds that pace their requests or must add a short-lived
    /// credential override this; the request itself is what the plan (and `preview`) shows.
    fn send(
        &self,
        request: OutgoingRequest,
        io: &Io<'_>,
    ) -> impl Future<Output = Result<Answer, DeliveryError>> + Send {
        io.send(request)
    }
}
