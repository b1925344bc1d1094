//! `run-notifier` consumes a test run's lifecycle events (started, finished, timed out,
//! cancelled) from RabbitMQ and fans each one out, with retries, to GitHub, GitLab, Bitbucket,
//! Slack (webhooks and apps), Teams and Standard Webhooks receivers; each integration works on
//! its own, so one slow receiver never holds up another.
//!
//! # Layout
//!
//! The one map of the modules (CONTRIBUTING.md maps the rest of the repository and walks an
//! event through these files; the README and the pages in `docs/` describe behaviour only).
//!
//! ```text
//! AMQP delivery ─► event::RunEvent::from_amqp ─► dispatch::Dispatcher::dispatch (route::Filters)
//!      │ bad                                             │ per integration: a free slot in its lane?
//!      ▼                                          yes ◄──┴──► no, or paused: Outcome::Queue, into
//! dead-letter queue                                │          its own queue <queue>.<name>, whose
//!                                                  │          parts come back by dispatch_queued
//!                                 Dispatcher::deliver: ledger claim ─► plan + send ─► record
//!                                                  ▼  finished deliveries, enacted by worker::Worker
//!        Delivered │ RetryIn → TTL retry queue (broker) │ Busy → retry tier │ GiveUp → dead-letter queue
//! ```
//!
//! - [`config`]: typed YAML config, `${VAR}` expansion, validation at load.
//! - [`secret`], [`duration`]: value types of the config (leaves: they import nothing of ours).
//! - [`echo`]: producer text bounded and escaped wherever it is echoed.
//! - [`event`]: the CloudEvent into typed values; field rules; git remotes into [`event::Repo`].
//! - [`route`]: per-integration filters.
//! - [`integrations`]: one module per kind behind the [`integrations::Kind`] trait, listed in
//!   one registry; delivery is plan + send.
//! - [`failure`]: how a failure is described, and the HTTP rules of transient and permanent
//!   (kinds with their own answers override them in `Kind::classify`).
//! - [`retry`]: the retry schedule, a pure function.
//! - [`ledger`]: one row per (run, event type, integration): exactly one effect each.
//! - [`dispatch`]: owns the fan-out: per integration a lane (concurrency and circuit
//!   breaker), the plan for a message (now, queued or paused), one delivery and its typed
//!   [`dispatch::Outcome`], yielded to the worker as finished deliveries; no AMQP.
//! - [`control`]: operator commands (cancel a run) broadcast to every worker.
//! - [`broker`]: lapin connection, topology, headers, publishing with confirms.
//! - [`app`]: the process assembled (integrations, ledger, admin, pruning, worker).
//! - [`worker`]: the consumers (event queue, each integration's queue), reconnects, shutdown;
//!   enacts each finished delivery (the one place that publishes retries, queued parts and
//!   dead letters) and settles each message once; no HTTP.
//! - [`signature`]: Standard Webhooks signing and verification.
//! - [`protocol`]: names on the wire (AMQP and HTTP headers, user agent), kept in one place.
//! - [`admin`], [`telemetry`]: health and metrics endpoints; logs, metrics and traces.
//! - [`render`]: Handlebars templates, one registry per output format, checked at load.
//! - [`preview`]: each integration's plan for an event (the exact requests), secrets redacted,
//!   nothing written.
//! - [`commands`]: the command-line verbs besides `run`.

pub mod admin;
pub mod app;
pub mod broker;
pub mod commands;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod duration;
pub mod echo;
pub mod event;
pub mod failure;
pub mod integrations;
pub mod ledger;
pub mod preview;
pub mod protocol;
pub mod render;
pub mod retry;
pub mod route;
pub mod secret;
pub mod signature;
pub mod telemetry;
pub mod worker;
