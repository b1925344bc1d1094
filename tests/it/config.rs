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
    // The container config requires what an operator must set (deploy.rs checks that).
    let mut environment: HashMap<String, String> = std::env::vars().collect();
    environment.insert("AMQP_URL".into(), "amqp://u:p@mq.internal/prod".into());
    environment.insert("WEBHOOK_SECRET".into(), SECRET_VALUE.into());
    let mut checked = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Config::parse(&text, environment.clone())
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 2);
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

    // Inside an integration entry too: the line of the key itself.
    let error = error_of(&minimal("    retries: 3\n"));
    assert_eq!(
        error,
        format!("line 7 column 5: unknown field `retries`, expected one of {WEBHOOK_KEYS}")
    );
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
    assert_eq!(
        error,
        "line 6 column 9: `${HOOK_SECRET}`: the environment variable `HOOK_SECRET` is not set; set it, or give a default with `${HOOK_SECRET:-default}`"
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
    // The file, the line and column of the offending key (inside an integration entry, which
    // serde reads as a whole), and the sentence.
    assert_eq!(
        stderr,
        format!(
            "error: {}:7:5: `soon` is not a duration: write a whole number and a unit, such as 500ms, 30s, 5m or 2h\n",
            path.display()
        )
    );

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

/// `check-config` on `yaml` (written to a file): whether it succeeded, its stdout, its stderr
/// with the file's path written `CONFIG`.
fn check_config(yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run-notifier.yaml");
    std::fs::write(&path, yaml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let shown = path.display().to_string();
    (
        output.status.success(),
        stdout.replace(&shown, "CONFIG"),
        stderr.replace(&shown, "CONFIG"),
    )
}

/// A prefetch that lets the worker hold more than 64 MiB of bodies is valid, but
/// `check-config` says so, with the broker-side cap to set; 64 MiB exactly (the defaults) is
/// quiet.
#[test]
fn check_config_warns_when_prefetched_bodies_may_exceed_64_mib() {
    let (ok, stdout, stderr) = check_config(&format!(
        "broker:\n  prefetch: 128\n  max_message_bytes: 2097152\n{}",
        minimal("")
    ));
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr,
        "warning: CONFIG: broker.prefetch × broker.max_message_bytes is 256.0 MiB (128 × 2097152 bytes): \
         the worker may hold that many message bytes at once, more than 64 MiB; lower \
         broker.prefetch or broker.max_message_bytes, and cap messages at the broker with \
         `max_message_size = 2097152` in rabbitmq.conf, because the worker cannot refuse a \
         body it has already received\n"
    );
    assert_eq!(
        stdout,
        "CONFIG: config is valid: 1 integration(s): hook (webhook)\n"
    );

    // The defaults (prefetch 64, 1 MiB) hold 64 MiB at most: no warning.
    let (ok, stdout, stderr) = check_config(&minimal(""));
    assert!(ok, "{stderr}");
    assert_eq!(stderr, "");
    assert!(stdout.contains("config is valid"), "{stdout}");
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

/// What a `webhook` entry accepts, as an unknown key's error lists it.
const WEBHOOK_KEYS: &str = "name, type, timeout, concurrency, circuit_breaker, send_traceparent, events, projects, branches, tags, reasons, only_failed, url, secrets, hub_secret, headers";

/// A file with one webhook, for the collected-problem tests below; line numbers are pinned.
const HOOK: &str = "integrations:
  - name: hook
    type: webhook
    url: https://hooks.example.com/x
    secrets:
      - whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
";

#[test]
fn three_key_typos_are_three_problems_each_at_its_own_line() {
    let yaml = format!(
        "brokr:\n  url: amqp://x\nworker:\n  shutdown_grase: 5s\n{}    retries: 3\n",
        HOOK
    );
    let error = error_of(&yaml);
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 3, "{error}");
    assert!(
        lines[0].starts_with("line 1 column 1: unknown field `brokr`, expected one of broker,"),
        "{error}"
    );
    assert!(
        lines[1].starts_with("line 4 column 3: unknown field `shutdown_grase`, expected one of shutdown_grace, stall_timeout"),
        "{error}"
    );
    // Inside an integration entry: the line of the key, not of the entry's first key.
    assert_eq!(
        lines[2],
        format!("line 11 column 5: unknown field `retries`, expected one of {WEBHOOK_KEYS}"),
        "{error}"
    );
}

#[test]
fn four_missing_variables_are_four_problems_naming_each() {
    let yaml = format!(
        "broker:\n  url: ${{MQ_URL}}\nledger:\n  url: ${{DB_URL}}\n{}",
        HOOK.replace("https://hooks.example.com/x", "${HOOK_URL}")
            .replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "${HOOK_SECRET}")
    );
    let error = error_of(&yaml);
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 4, "{error}");
    for (line, (at, name)) in lines.iter().zip([
        ("line 2 column 8", "MQ_URL"),
        ("line 4 column 8", "DB_URL"),
        ("line 8 column 10", "HOOK_URL"),
        ("line 10 column 9", "HOOK_SECRET"),
    ]) {
        assert_eq!(
            *line,
            format!(
                "{at}: `${{{name}}}`: the environment variable `{name}` is not set; set it, or give a default with `${{{name}:-default}}`"
            )
        );
    }
}

#[test]
fn an_empty_variable_is_called_empty_and_reported_once() {
    let yaml = HOOK.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "${HOOK_SECRET}");
    let error = Config::parse(&yaml, env(&[("HOOK_SECRET", "")])).unwrap_err();
    assert_eq!(
        error,
        "line 6 column 9: `${HOOK_SECRET}`: the environment variable `HOOK_SECRET` is set but empty; give it a value, or write `${HOOK_SECRET:-default}` to use a default when it is empty"
    );
}

#[test]
fn four_bad_durations_are_four_problems() {
    let yaml = format!(
        "worker:\n  shutdown_grace: 10 seconds\nretry:\n  initial_delay: 1.5s\nledger:\n  retention: a month\n{}    timeout: soon\n",
        HOOK
    );
    let error = error_of(&yaml);
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 4, "{error}");
    for (line, (at, value)) in lines.iter().zip([
        ("line 2 column 19", "10 seconds"),
        ("line 4 column 18", "1.5s"),
        ("line 6 column 14", "a month"),
        ("line 13 column 5", "soon"),
    ]) {
        assert_eq!(
            *line,
            format!(
                "{at}: `{value}` is not a duration: write a whole number and a unit, such as 500ms, 30s, 5m or 2h"
            )
        );
    }
}

#[test]
fn a_quoted_variable_is_rejected_with_the_fix_instead_of_sent_literally() {
    let yaml = HOOK.replace(
        "url: https://hooks.example.com/x",
        "url: \"${HOOK_URL}\"\n    hub_secret: '${HUB_SECRET}'",
    );
    let error = Config::parse(
        &yaml,
        env(&[("HOOK_URL", "https://h.example/"), ("HUB_SECRET", "s")]),
    )
    .unwrap_err();
    assert_eq!(
        error,
        "line 4 column 10: `${HOOK_URL}` is inside quotes, where YAML keeps it as literal text that would be sent as it is: remove the quotes\n\
         line 5 column 17: `${HUB_SECRET}` is inside quotes, where YAML keeps it as literal text that would be sent as it is: remove the quotes"
    );
}

#[test]
fn check_config_reports_every_kind_of_problem_at_once_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notifier.yaml");
    let yaml = format!(
        "worker:\n  shutdown_grace: 10 seconds\n  stal_timeout: 5m\n{}    hub_secret: \"${{HUB_SECRET}}\"\n",
        HOOK.replace("https://hooks.example.com/x", "${HOOK_URL}")
    );
    std::fs::write(&path, yaml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("HOOK_URL")
        .env("HUB_SECRET", "hub-secret")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let file = path.display();
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "error: {file} has 4 problems:\n\
             {file}:2:19: `10 seconds` is not a duration: write a whole number and a unit, such as 500ms, 30s, 5m or 2h\n\
             {file}:3:3: unknown field `stal_timeout`, expected one of shutdown_grace, stall_timeout\n\
             {file}:7:10: `${{HOOK_URL}}`: the environment variable `HOOK_URL` is not set; set it, or give a default with `${{HOOK_URL:-default}}`\n\
             {file}:10:17: `${{HUB_SECRET}}` is inside quotes, where YAML keeps it as literal text that would be sent as it is: remove the quotes\n"
        )
    );
}

#[test]
fn relative_paths_are_relative_to_the_config_file_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let path = dir.path().join("notifier.yaml");
    std::fs::write(
        &path,
        format!("templates_dir: tpl\nledger:\n  path: data/ledger.db\n{HOOK}"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.ledger.path, dir.path().join("data/ledger.db"));
    assert_eq!(config.templates_dir, dir.path().join("tpl"));

    // `deliveries` run from another folder opens the ledger next to the config, where the
    // worker writes it, instead of creating an empty one in the working directory.
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["deliveries", "--run", "run-1", "--config"])
        .arg(&path)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("data/ledger.db").exists());
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn a_typo_in_a_helper_argument_stops_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("slack.json.hbs");
    std::fs::write(&template, r#"{"text": "Cancelled by {{oneline actr}}"}"#).unwrap();
    let path = dir.path().join("notifier.yaml");
    std::fs::write(
        &path,
        format!(
            "templates_dir: {}/templates\nintegrations:\n  - name: chat\n    type: slack\n    webhook_url: https://hooks.slack.com/services/T/B/x\n    template: {}\n",
            env!("CARGO_MANIFEST_DIR"),
            template.display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:1: ", template.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("`oneline` helper: `actr` is not a variable"),
        "{stderr}"
    );
}

#[test]
fn a_missing_variable_does_not_hide_a_typo_in_the_same_entry() {
    let yaml = format!(
        "{}    retries: 3\n",
        HOOK.replace("https://hooks.example.com/x", "${HOOK_URL}")
    );
    assert_eq!(
        error_of(&yaml),
        format!(
            "line 4 column 10: `${{HOOK_URL}}`: the environment variable `HOOK_URL` is not set; set it, or give a default with `${{HOOK_URL:-default}}`\n\
             line 7 column 5: unknown field `retries`, expected one of {WEBHOOK_KEYS}"
        )
    );
    // Where the stand-in does not fit (a signing secret), nothing more is said about that line.
    let yaml = HOOK.replace(crate::support::SECRET, "${HOOK_SECRET}");
    assert_eq!(
        error_of(&yaml),
        "line 6 column 9: `${HOOK_SECRET}`: the environment variable `HOOK_SECRET` is not set; set it, or give a default with `${HOOK_SECRET:-default}`"
    );
}

#[test]
fn a_typo_in_an_entry_that_reads_a_variable_is_called_a_typo() {
    // The parser hides errors inside an entry holding a `${VAR}` value (they might quote it);
    // a key typo there used to read "invalid interpolated scalar value".
    let yaml = format!(
        "{}    retries: 3\n",
        HOOK.replace("https://hooks.example.com/x", "${HOOK_URL}")
    );
    let error = Config::parse(&yaml, env(&[("HOOK_URL", "https://h.example/")])).unwrap_err();
    assert_eq!(
        error,
        format!("line 7 column 5: unknown field `retries`, expected one of {WEBHOOK_KEYS}")
    );
}

#[test]
fn an_unknown_key_after_a_variable_is_named() {
    // The parser withholds an unknown key's name once it has read a `${VAR}` value; the last
    // section's typo read ``unknown field `an interpolated field` ``.
    let yaml = format!(
        "{}tmplates_dir: templates\n",
        HOOK.replace("https://hooks.example.com/x", "${HOOK_URL}")
    );
    let error = Config::parse(&yaml, env(&[("HOOK_URL", "https://h.example/")])).unwrap_err();
    assert_eq!(
        error,
        "line 7 column 1: unknown field `tmplates_dir`, expected one of broker, worker, retry, admin, ledger, templates_dir, integrations"
    );
}

#[test]
fn a_variable_is_a_string_wherever_a_string_is_expected() {
    use run_notifier::integrations::IntegrationConfig;
    let yaml = "broker:\n  prefetch: ${PREFETCH}\nintegrations:\n  - name: gh\n    type: github_status\n    concurrency: ${CONCURRENCY}\n    only_failed: ${ONLY_FAILED}\n    auth:\n      token: ${API_TOKEN}\n";
    // Values YAML would read as a number, a boolean or nothing, were they written out.
    for token in ["12345678", "true", "null", "1e5", "0x1F", "~", "007"] {
        let config = Config::parse(
            yaml,
            env(&[
                ("API_TOKEN", token),
                ("PREFETCH", "32"),
                ("CONCURRENCY", "4"),
                ("ONLY_FAILED", "true"),
            ]),
        )
        .unwrap_or_else(|error| panic!("API_TOKEN={token}: {error}"));
        let IntegrationConfig::GithubStatus(github) = &config.integrations[0] else {
            panic!("a github_status integration");
        };
        let sent = github
            .api
            .auth
            .token
            .as_ref()
            .map(|t| t.expose().to_owned());
        assert_eq!(sent.as_deref(), Some(token), "the token is the text as set");
        // Where a number or a boolean is expected, a variable still gives one.
        assert_eq!(config.broker.prefetch, 32);
        assert_eq!(github.common.concurrency, 4);
        assert!(github.filters.only_failed);
    }
}

#[test]
fn typos_inside_integration_entries_are_each_named_with_the_keys_it_takes() {
    // Three typos, one of them in a required key (`urll` for `url`), which serde reported
    // only as the missing `url`.
    let yaml = format!(
        "{HOOK}    retries: 3\n  - name: second\n    type: webhook\n    urll: https://hooks.example.com/y\n    secrets: [{}]\n    only_faild: true\n",
        crate::support::SECRET
    );
    let error = error_of(&yaml);
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(
        lines,
        [
            format!("line 7 column 5: unknown field `retries`, expected one of {WEBHOOK_KEYS}"),
            "line 8 column 5: missing field `url`".to_owned(),
            format!("line 10 column 5: unknown field `urll`, expected one of {WEBHOOK_KEYS}"),
            format!("line 12 column 5: unknown field `only_faild`, expected one of {WEBHOOK_KEYS}"),
        ],
        "{error}"
    );
}

#[test]
fn templates_and_key_files_are_relative_to_the_config_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tpl")).unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::copy(
        "templates/slack/message.json.hbs",
        dir.path().join("tpl/slack.json.hbs"),
    )
    .unwrap();
    std::fs::copy(
        "tests/fixtures/github-app-test-key.pem",
        dir.path().join("keys/app.pem"),
    )
    .unwrap();
    let path = dir.path().join("notifier.yaml");
    std::fs::write(
        &path,
        format!(
            "templates_dir: {}/templates\nintegrations:\n  - name: chat\n    type: slack\n    webhook_url: https://hooks.slack.com/services/T/B/x\n    template: tpl/slack.json.hbs\n  - name: gh\n    type: github_status\n    auth:\n      app_id: 1\n      installation_id: 2\n      private_key_file: keys/app.pem\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();

    // Run from another folder, as a service manager or a container would.
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config"])
        .arg(&path)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let config = Config::load(&path).unwrap();
    let mut chat = config.integrations[0].clone();
    let mut gh = config.integrations[1].clone();
    assert_eq!(
        chat.paths_mut(),
        [&mut dir.path().join("tpl/slack.json.hbs")]
    );
    assert_eq!(gh.paths_mut(), [&mut dir.path().join("keys/app.pem")]);
}

#[test]
fn an_integration_named_like_a_retry_tier_is_refused() {
    // Its queue `<queue>.retry.1s` would be the 1 s retry tier.
    let error = error_of(&minimal("").replace("name: hook", "name: retry.1s"));
    assert!(
        error.contains(
            "integrations[0]: the name `retry.1s` would give its queue a retry tier's name (`run-notifier.events.retry.…`); choose another name"
        ),
        "{error}"
    );
}
