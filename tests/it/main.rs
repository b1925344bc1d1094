//! The integration tests, as one binary: one module per behaviour area, helpers in `support`.
//!
//! One binary instead of one per file: the crate and the helpers are compiled once, and every
//! test shares the same helpers (see `support/mod.rs` for the map).

mod support;

mod admin;
mod bad_input;
mod binary_mode;
mod bitbucket;
mod chat_cards;
mod chat_cli;
mod chat_delivery;
mod cli;
mod config;
mod credentials;
mod deploy;
mod forged_retries;
mod github_app;
mod github_app_token;
mod github_check_run;
mod github_pr_comment;
mod github_pr_lookup;
mod github_retries;
mod github_status;
mod gitlab;
mod harness;
mod image;
mod isolation;
mod kept_objects;
mod leases;
mod ledger;
mod lifecycle;
mod log_levels;
mod monitoring;
mod operations;
mod otel;
mod own_comments;
mod preview_is_request;
mod provider_config;
mod provider_failures;
mod reconnect;
mod repositories;
mod retries;
mod shutdown;
mod slack_app;
mod startup;
mod tls;
mod topology;
mod trial;
mod webhook;
