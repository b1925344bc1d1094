//! The shipped example config with the GitHub and Bitbucket integrations: it builds (templates
//! included) without any environment variable, and takes its credentials from the environment
//! without ever printing them.

use std::collections::HashMap;

use run_notifier::config::Config;
use run_notifier::integrations::{build_all, http_client};

const EXAMPLE: &str = include_str!("../../config/run-notifier.yaml");

#[test]
fn the_example_builds_every_integration_without_environment_variables() {
    let mut config = Config::parse(EXAMPLE, HashMap::new()).unwrap();
    // `templates_dir: ../templates` is relative to config/, where `Config::load` puts it.
    config.templates_dir = "templates".into();
    let integrations =
        build_all(&config.integrations, &config.templates_dir, &http_client()).unwrap();
    let kinds: Vec<&str> = integrations.iter().map(|i| i.kind()).collect();
    for kind in [
        "github_status",
        "github_pr_comment",
        "bitbucket_status",
        "gitlab_status",
        "gitlab_mr_note",
        "slack_app",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[test]
fn the_example_takes_provider_credentials_from_the_environment_and_never_prints_them() {
    let env: HashMap<String, String> = [
        ("GITHUB_TOKEN", "ghp_live_token_value"),
        ("BITBUCKET_EMAIL", "deploy-bot@example.com"),
        ("BITBUCKET_API_TOKEN", "bb_live_password_value"),
        ("GITLAB_TOKEN", "glpat_live_token_value"),
        ("SLACK_BOT_TOKEN", "xoxb-live-token-value"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut config = Config::parse(EXAMPLE, env).unwrap();
    config.templates_dir = "templates".into();
    let integrations =
        build_all(&config.integrations, &config.templates_dir, &http_client()).unwrap();
    let printed = format!("{config:?} {integrations:?}");
    assert!(
        !printed.contains("ghp_live_token_value"),
        "a token was printed"
    );
    assert!(
        !printed.contains("bb_live_password_value"),
        "a password was printed"
    );
    for token in ["glpat_live_token_value", "xoxb-live-token-value"] {
        assert!(!printed.contains(token), "a token was printed");
    }
}
