//! `preview`, `check-config` and config errors for Slack and Teams as a person meets them:
//! secrets never printed, bad events and bad templates named with their file and line.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use run_notifier::config::Config;

/// Secret values written into the config below; none may appear in any output.
const SECRETS: &[&str] = &[
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "hub-hunter2",
    "tok-hunter3",
    "slacksecret4",
    "teamssig5",
];

fn config_with_secrets(templates_dir: &str) -> String {
    format!(
        "templates_dir: {templates_dir}
integrations:
  - name: alerts
    type: slack
    webhook_url: https://hooks.slack.com/services/T0/B0/slacksecret4
  - name: cards
    type: teams
    webhook_url: https://prod-01.westus.logic.azure.com/workflows/x/triggers/manual/paths/invoke?api-version=1&sig=teamssig5
  - name: audit
    type: webhook
    url: http://127.0.0.1:9/hooks
    secrets: [{}]
    hub_secret: hub-hunter2
    headers:
      Authorization: Bearer tok-hunter3
  - name: main-only
    type: slack
    webhook_url: https://hooks.slack.com/services/T0/B0/slacksecret4
    branches: [main]
",
        crate::support::SECRET
    )
}

fn run_notifier(args: &[&str]) -> (Output, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn preview_shows_every_request_and_every_skip_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.yaml",
        &config_with_secrets(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
    );
    let (output, stdout, stderr) = run_notifier(&[
        "preview",
        "--event",
        "config/example-event.json",
        "--config",
        &config,
    ]);
    assert!(output.status.success(), "{stderr}");
    for secret in SECRETS {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "`{secret}` was printed:\n{stdout}{stderr}"
        );
    }
    for expected in [
        "nothing is sent",
        "== alerts (slack): would send\nPOST https://hooks.slack.com/***\ncontent-type: application/json\n",
        "== cards (teams): would send\nPOST https://prod-01.westus.logic.azure.com/***\n",
        "== audit (webhook): would send\nPOST http://127.0.0.1:9/hooks\n",
        "authorization: ***\n",
        "webhook-signature: v1,",
        "== main-only (slack): skipped: branch `feature-A` matches none of `branches`",
        "\"text\": \"Run cancelled by jane.doe: 100 passed, 2 failed in web-app on feature-A\"",
        "\"contentType\": \"application/vnd.microsoft.card.adaptive\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn preview_of_a_bad_event_exits_non_zero_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.yaml",
        &config_with_secrets(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
    );
    let cases = [
        ("not-json.json", "{oops", "body is not JSON"),
        (
            "no-run.json",
            r#"{"specversion":"1.0","id":"x","source":"s","type":"run.canceled","data":{}}"#,
            "field `data`: missing field `runId`",
        ),
        (
            "other-type.json",
            r#"{"specversion":"1.0","id":"x","source":"s","type":"run.started","data":{}}"#,
            "CloudEvent type is `run.started`",
        ),
    ];
    for (name, body, reason) in cases {
        let event = write(dir.path(), name, body);
        let (output, stdout, stderr) =
            run_notifier(&["preview", "--event", &event, "--config", &config]);
        assert!(!output.status.success(), "{name}: {stdout}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(
            stderr.contains(&format!(
                "{event}: the worker would dead-letter this event, so nothing would be sent: "
            )),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{name}: {stderr}");
    }
    let (output, _, stderr) = run_notifier(&[
        "preview",
        "--event",
        "no/such/event.json",
        "--config",
        &config,
    ]);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot read no/such/event.json"),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_every_broken_template_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(
        dir.path(),
        "unknown.json.hbs",
        "{\n  \"text\": \"Run cancelled by {{actor}}\",\n  \"blocks\": [{{nope}}]\n}\n",
    );
    let no_text = write(dir.path(), "no-text.json.hbs", "{\"blocks\": []}");
    let newer = write(
        dir.path(),
        "newer.json.hbs",
        &std::fs::read_to_string("templates/teams/card.json.hbs")
            .unwrap()
            .replace("\"version\": \"1.4\"", "\"version\": \"1.6\""),
    );
    let missing = dir.path().join("missing.json.hbs").display().to_string();
    let config = write(
        dir.path(),
        "config.yaml",
        &format!(
            "integrations:
  - {{name: a, type: slack, webhook_url: 'https://hooks.slack.com/services/x', template: {unknown}}}
  - {{name: b, type: slack, webhook_url: 'https://hooks.slack.com/services/x', template: {no_text}}}
  - {{name: c, type: teams, webhook_url: 'https://example.com/x', template: {newer}}}
  - {{name: d, type: teams, webhook_url: 'https://example.com/x', template: {missing}}}
"
        ),
    );
    let (output, _, stderr) = run_notifier(&["check-config", "--config", &config]);
    assert!(!output.status.success());
    for expected in [
        format!("{unknown}:3: "),
        "\"nope\"".to_owned(),
        format!("{no_text}: a Slack message needs a non-empty top-level `text`"),
        format!("{newer}: the card `version` must be \"1.0\" to \"1.4\""),
        format!("{missing}: cannot read the template"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn check_config_accepts_the_shipped_templates() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.yaml",
        &config_with_secrets(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
    );
    let (output, stdout, stderr) = run_notifier(&["check-config", "--config", &config]);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("alerts (slack), cards (teams)"), "{stdout}");
}

fn config_error(integration: &str) -> String {
    Config::parse(
        &format!("integrations:\n{integration}"),
        HashMap::from([(
            "SLACK_URL".to_owned(),
            "hooks.slack.com/slacksecret4".to_owned(),
        )]),
    )
    .expect_err("the config should be rejected")
}

#[test]
fn bad_slack_and_teams_settings_are_explained_without_printing_the_url() {
    let error = config_error("  - name: s\n    type: slack\n    webhook_url: ${SLACK_URL}\n");
    assert!(
        error.contains("(s): `webhook_url` is not a valid URL (relative URL without a base)"),
        "{error}"
    );
    assert!(!error.contains("slacksecret4"), "{error}");

    let error = config_error(
        "  - name: t\n    type: teams\n    webhook_url: ftp://example.com/teamssig5\n",
    );
    assert!(
        error.contains("(t): `webhook_url` must be an http or https URL"),
        "{error}"
    );
    assert!(!error.contains("teamssig5"), "{error}");

    let error = config_error("  - name: s\n    type: slack\n");
    assert!(error.contains("missing field `webhook_url`"), "{error}");

    let error = config_error(
        "  - name: s\n    type: slack\n    webhook_url: https://hooks.slack.com/x\n    channel: '#ci'\n",
    );
    assert!(error.contains("unknown field `channel`"), "{error}");
}

#[test]
fn check_config_refuses_custom_templates_that_skip_escaping_except_in_plain_text() {
    use crate::support::{github_pr_comment, github_status, gitlab_mr_note, slack, teams};

    let dir = tempfile::tempdir().unwrap();
    let formats = [
        (
            github_pr_comment("comment", "https://api.github.com"),
            "skip Markdown escaping: a value could add links, mentions, HTML or break the layout",
        ),
        (
            gitlab_mr_note("note", "https://gitlab.com/api/v4"),
            "skip Markdown escaping: a value could add links, mentions, HTML or break the layout",
        ),
        (
            slack("slack", "https://hooks.slack.com/services/x"),
            "skip JSON and Slack escaping: a value could break the message, or add links and mentions",
        ),
        (
            teams("teams", "https://example.com/x"),
            "skip JSON and Teams escaping: a value could break the card, or add links",
        ),
    ];
    let mut integrations = Vec::new();
    let mut expected = Vec::new();
    for (spec, why) in formats {
        for (form, expression) in [("triple", "{{{actor}}}"), ("ampersand", "{{& actor}}")] {
            let name = format!("{}-{form}", spec.name());
            let file = write(
                dir.path(),
                &format!("{name}.hbs"),
                &format!("Cancelled\nby {expression}\n"),
            );
            integrations.push(spec.clone().with("name", &name).with("template", &file).0);
            expected.push(format!(
                "{file}:2: `{{{{{{…}}}}}}` and `{{{{&…}}}}` {why}; write `{{{{…}}}}`, or use the `json` or `url` helper\n"
            ));
        }
    }
    let config = write(
        dir.path(),
        "config.yaml",
        &serde_json::json!({ "integrations": integrations }).to_string(),
    );
    let (output, _, stderr) = run_notifier(&["check-config", "--config", &config]);
    assert!(!output.status.success());
    for line in expected {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }

    // Plain text (a commit status description) has nothing to escape: allowed.
    let description = write(
        dir.path(),
        "status.hbs",
        "Cancelled by {{{actor}}} {{&note}}",
    );
    let status = github_status("status", "https://api.github.com")
        .with("description_template", &description);
    let config = write(
        dir.path(),
        "plain.yaml",
        &serde_json::json!({ "integrations": [status.0] }).to_string(),
    );
    let (output, _, stderr) = run_notifier(&["check-config", "--config", &config]);
    assert!(output.status.success(), "{stderr}");
}
