//! The config as operators meet it: every shipped file parses, and each class of mistake is
//! rejected at start with the file, the line and a plain sentence.

use std::collections::HashMap;
use std::process::Command;

use run_notifier::config::Config;

const EXAMPLE: &str = include_str!("../../config/run-notifier.yaml");
const SECRET_VALUE: &str = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_of(yaml: &str) -> String {
    Config::parse(yaml, env(&[])).expect_err("the config should be rejected")
}

fn minimal(integration_extra: &str) -> String {
    format!(
        "integrations:\n  - name: hook\n    type: webhook\n    url: https://hooks.example.com/x\n    secrets:\n      - {}\n{integration_extra}",
        crate::support::SECRET
    )
}

#[test]
fn every_shipped_yaml_file_parses() {
    let mut checked = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            Config::load(&path).unwrap_or_else(|err| panic!("{err}"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn the_example_takes_its_secret_and_urls_from_the_environment() {
    let config = Config::parse(
        EXAMPLE,
        env(&[
            ("WEBHOOK_SECRET", SECRET_VALUE),
            ("AMQP_URL", "amqps://u:p@mq.internal/prod"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/slack-token",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(config.broker.url.expose(), "amqps://u:p@mq.internal/prod");
    let printed = format!("{config:?}");
    assert!(
        !printed.contains("u:p@"),
        "Debug printed the broker password"
    );
    assert!(
        !printed.contains("c2VjcmV0"),
        "Debug printed the webhook secret"
    );
    assert!(
        !printed.contains("slack-token"),
        "Debug printed the Slack webhook URL"
    );
}

#[test]
fn defaults_apply_when_sections_are_left_out() {
    let config = Config::parse(&minimal(""), env(&[])).unwrap();
    assert_eq!(config.broker.exchange, "runs");
    assert_eq!(config.broker.queue, "run-notifier.events");
    assert_eq!(config.broker.dead_letter_queue, "run-notifier.dead");
    assert_eq!(config.broker.max_message_bytes, 1024 * 1024);
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9464");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let error = error_of(&format!("brokr:\n  url: amqp://x\n{}", minimal("")));
    assert!(
        error.contains("line 1 column 1: unknown field `brokr`"),
        "{error}"
    );

    let error = error_of(&minimal("    retries: 3\n"));
    assert!(error.contains("unknown field `retries`"), "{error}");
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn unknown_integration_types_are_named() {
    let error = error_of("integrations:\n  - name: x\n    type: pager\n");
    assert!(
        error.contains("line 3 column 5: unknown variant `pager`"),
        "{error}"
    );
}

#[test]
fn bad_durations_say_how_to_write_one() {
    let error = error_of(&format!(
        "worker:\n  shutdown_grace: 10 seconds\n{}",
        minimal("")
    ));
    assert!(error.contains("line 2"), "{error}");
    assert!(error.contains("`10 seconds` is not a duration: write a whole number and a unit, such as 500ms, 30s, 5m or 2h"), "{error}");
}

#[test]
fn bad_urls_are_rejected() {
    let error =
        error_of(&minimal("").replace("https://hooks.example.com/x", "hooks.example.com/x"));
    assert!(error.contains("relative URL without a base"), "{error}");
    let error =
        error_of(&minimal("").replace("https://hooks.example.com/x", "ftp://hooks.example.com/x"));
    assert!(
        error.contains("`url` must be an http or https URL"),
        "{error}"
    );
    let error = error_of(&format!("broker:\n  url: http://mq\n{}", minimal("")));
    assert!(
        error.contains("broker.url must start with amqp:// or amqps://"),
        "{error}"
    );
}

#[test]
fn duplicate_integration_names_are_rejected() {
    let two = format!(
        "{}{}",
        minimal(""),
        minimal("").replace("integrations:\n", "")
    );
    let error = error_of(&two);
    assert!(
        error.contains("integrations[1]: the name `hook` is already used by integrations[0]"),
        "{error}"
    );
}

#[test]
fn missing_environment_variables_are_named() {
    let error = error_of(&minimal("").replace(crate::support::SECRET, "${HOOK_SECRET}"));
    assert!(error.contains("missing property `HOOK_SECRET`"), "{error}");
    assert!(
        error.contains("set the variable, or give a default"),
        "{error}"
    );
}

#[test]
fn bad_signing_secrets_are_explained_without_being_printed() {
    let error = error_of(
        &minimal("")
            .replace(crate::support::SECRET, "${HOOK_SECRET}")
            .replace("${HOOK_SECRET}", "not-a-whsec-secret"),
    );
    assert!(
        error.contains("a signing secret must start with `whsec_`"),
        "{error}"
    );

    let config = minimal("").replace(crate::support::SECRET, "${HOOK_SECRET}");
    let error =
        Config::parse(&config, env(&[("HOOK_SECRET", "whsec_%%%%hunter2%%%%")])).unwrap_err();
    assert!(
        error.contains("a value taken from the environment here is not valid"),
        "{error}"
    );
    assert!(
        !error.contains("hunter2"),
        "the secret leaked into the error: {error}"
    );

    let error = error_of(&minimal("").replace(
        &format!("secrets:\n      - {}", crate::support::SECRET),
        "secrets: []",
    ));
    assert!(error.contains("`secrets` needs at least one"), "{error}");
}

#[test]
fn rules_beyond_the_grammar_are_all_reported_at_once() {
    let yaml = format!(
        "broker:\n  prefetch: 0\nretry:\n  max_attempts: 0\n{}",
        minimal("    timeout: 0ms\n").replace("name: hook", "name: \"bad name!\"")
    );
    let error = error_of(&yaml);
    for expected in [
        "broker.prefetch must be at least 1",
        "retry.max_attempts must be at least 1",
        "`name` must be 1 to 64 characters",
        "`timeout` must be longer than 0ms",
    ] {
        assert!(
            error.contains(expected),
            "missing `{expected}` in:\n{error}"
        );
    }
}

#[test]
fn check_config_exits_non_zero_with_the_file_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, minimal("    timeout: soon\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    // Serde buffers an internally tagged entry, so the line is that of the entry's first key.
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("`soon` is not a duration"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config", "config/run-notifier.yaml"])
        .env_remove("WEBHOOK_SECRET")
        .env_remove("GITHUB_TOKEN")
        .env_remove("BITBUCKET_EMAIL")
        .env_remove("BITBUCKET_API_TOKEN")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("config is valid: "), "{stdout}");
    for integration in [
        "audit-webhook (webhook)",
        "team-slack (slack)",
        "team-teams (teams)",
        "github-status (github_status)",
        "github-pr-comment (github_pr_comment)",
        "bitbucket-status (bitbucket_status)",
    ] {
        assert!(stdout.contains(integration), "{stdout}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config", "no/such/file.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no/such/file.yaml: cannot read the config file"),
        "{stderr}"
    );
}
