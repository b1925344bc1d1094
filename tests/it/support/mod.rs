//! The test harness, in one tree. Where to find what:
//!
//! - [`TestApp`] (`app.rs`, `broker.rs`): one test's own broker names, ledger, config files and
//!   workers. `TestApp::new().await`, then `app.spawn_worker(|config| …).await` (in this
//!   process) or `app.spawn_process(|config| …).await` (the real binary). Everything it
//!   declared is deleted and its workers stopped when it is dropped, also when the test fails.
//! - [`Setup`] and the integration specs (`config.rs`): the closure given to `spawn_*` changes
//!   the real [`run_notifier::config::Config`] (`config.retry.max_attempts = 3`); integrations
//!   are added with `config.add(webhook("hook", &url))`, built from structured specs.
//! - Events (`events.rs`): [`EXAMPLE_EVENT`], [`event`], [`event_for`], [`unique`].
//! - Waiting (`poll.rs`): [`wait_until`] polls a condition; tests never sleep to prove a thing.
//! - HTTP receivers (`receiver.rs`): [`Receiver`] stands in for webhooks, Slack and Teams.
//! - One integration without a worker (`providers.rs`): [`providers::build`] and
//!   [`providers::deliver`] against wiremock.
//! - GitHub as a GitHub App meets it (`fake_github.rs`): numbered installation tokens.
//! - Providers that keep state (`fake_gitlab.rs`, `fake_slack.rs`, `fake_checks.rs`,
//!   `fake_pull.rs`): a GitLab merge request's notes, a Slack channel, a commit's GitHub check
//!   runs and a GitHub pull request's comments, answered by wiremock from shared state; `openapi.rs` holds requests against GitHub's description.
//! - [`proxy::Proxy`]: a TCP proxy a test can cut, to make PostgreSQL unreachable on demand.
//! - [`process::WorkerProcess`] and [`cli`]: the `run-notifier` binary as a person runs it.

pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod events;
pub mod fake_checks;
pub mod fake_github;
pub mod fake_gitlab;
pub mod fake_pull;
pub mod fake_slack;
pub mod openapi;
pub mod poll;
pub mod process;
pub mod providers;
pub mod proxy;
pub mod receiver;

pub use app::{Names, TestApp};
pub use broker::ScheduledRetry;
pub use config::{
    Setup, Spec, bitbucket_status, github_pr_comment, github_status, gitlab_mr_note, gitlab_status,
    slack, slack_app, teams, webhook,
};
pub use events::{EXAMPLE_EVENT, HOSTILE, SHA, event, event_for, lifecycle_event, unique};
pub use poll::wait_until;
pub use receiver::{Received, Receiver};

/// The local RabbitMQ every broker test uses.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The local PostgreSQL (trust auth, database `test`) the shared-ledger tests use.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Standard Webhooks secret every `webhook` spec signs with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
