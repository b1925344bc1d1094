//! Handlebars templates: one registry per output format, each with its own escaping, in strict
//! mode, and every template rendered against sample events when the config loads, so that a
//! broken template stops the start instead of a send.

use std::path::{Path, PathBuf};

use handlebars::Handlebars;

use crate::event::RunCanceled;
use serde_json::Value;

mod escape;
mod gitlab;
mod helpers;
mod json_value;
mod markdown;
mod samples;

pub use escape::{escape_json, escape_slack, escape_slack_json, escape_teams_json};
pub use gitlab::{escape_gitlab_markdown, live_markup};
pub use helpers::{DEFAULT_DATE_FORMAT, truncate};
pub use markdown::escape_markdown;
pub use samples::{sample_events, variables};

/// How values are escaped when a template inserts them with `{{value}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON documents: values become the inside of a JSON string. `{{{raw}}}` is forbidden.
    Json,
    /// Slack Block Kit JSON: as [`Format::Json`], and Slack's `&`, `<`, `>` become entities
    /// first, so a value can never form a link, a mention (`<!channel>`) or a broken card.
    SlackJson,
    /// Adaptive Card JSON: as [`Format::Json`], and no value can form a link, even in a
    /// Markdown `TextBlock` (see [`escape_teams_json`]).
    TeamsJson,
    /// GitHub-flavoured Markdown: no markup, HTML, links, mentions or table breaks from values.
    Markdown,
    /// GitLab-flavoured Markdown: as [`Format::Markdown`], and no references (`#1`, `!1`,
    /// `~label`…) or quick actions, without relying on HTML entities.
    GitlabMarkdown,
    /// Plain text (a commit status description): values as they are.
    Text,
}

impl Format {
    /// Whether templates of this format produce JSON documents (checked to parse at load).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::SlackJson | Format::TeamsJson)
    }

    /// How `{{value}}` is escaped.
    fn escape_fn(self) -> fn(&str) -> String {
        match self {
            Format::Json => escape_json,
            Format::SlackJson => escape_slack_json,
            Format::TeamsJson => escape_teams_json,
            Format::Markdown => escape_markdown,
            Format::GitlabMarkdown => escape_gitlab_markdown,
            Format::Text => handlebars::no_escape,
        }
    }

    /// Why `{{{…}}}` and `{{&…}}` are refused in this format, or `None` where they are allowed
    /// (plain text, which has no markup to escape).
    fn unescaped_refusal(self) -> Option<&'static str> {
        let why = match self {
            Format::Json => "skip JSON escaping: a quote in a value would break the document",
            Format::SlackJson => {
                "skip JSON and Slack escaping: a value could break the message, or add links and mentions"
            }
            Format::TeamsJson => {
                "skip JSON and Teams escaping: a value could break the card, or add links"
            }
            Format::Markdown | Format::GitlabMarkdown => {
                "skip Markdown escaping: a value could add links, mentions, HTML or break the layout"
            }
            Format::Text => return None,
        };
        Some(why)
    }
}

/// A registry for templates of `format`: strict, with the format's escaping and the helpers.
fn registry(format: Format) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(format.escape_fn());
    helpers::register(&mut registry, format);
    registry
}

/// A template that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TemplateError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl TemplateError {
    /// Every problem as one error, one per line (`check-config`, `run` and `preview` report
    /// them all at once).
    pub fn all(problems: Vec<TemplateError>) -> anyhow::Error {
        let lines: Vec<_> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("templates cannot be used:\n{}", lines.join("\n"))
    }
}

/// The registries of all formats, filled once at load.
pub struct Templates {
    json: Handlebars<'static>,
    slack_json: Handlebars<'static>,
    teams_json: Handlebars<'static>,
    markdown: Handlebars<'static>,
    gitlab_markdown: Handlebars<'static>,
    text: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        Self {
            json: registry(Format::Json),
            slack_json: registry(Format::SlackJson),
            teams_json: registry(Format::TeamsJson),
            markdown: registry(Format::Markdown),
            gitlab_markdown: registry(Format::GitlabMarkdown),
            text: registry(Format::Text),
        }
    }

    fn registry(&self, format: Format) -> &Handlebars<'static> {
        match format {
            Format::Json => &self.json,
            Format::SlackJson => &self.slack_json,
            Format::TeamsJson => &self.teams_json,
            Format::Markdown => &self.markdown,
            Format::GitlabMarkdown => &self.gitlab_markdown,
            Format::Text => &self.text,
        }
    }

    /// Compiles `source` under `name` (`file` names it in errors), then renders it against
    /// every sample event; JSON output must parse.
    pub fn add(
        &mut self,
        format: Format,
        name: &str,
        file: &str,
        source: &str,
    ) -> Result<(), TemplateError> {
        let error = |line, message: String| TemplateError {
            file: file.to_owned(),
            line,
            message,
        };
        if let Some(why) = format.unescaped_refusal()
            && let Some(index) = unescaped_expression(source)
        {
            let line = source[..index].matches('\n').count() + 1;
            return Err(error(
                Some(line),
                format!(
                    "`{{{{{{…}}}}}}` and `{{{{&…}}}}` {why}; write `{{{{…}}}}`, or use the `json` or `url` helper"
                ),
            ));
        }
        let registry = match format {
            Format::Json => &mut self.json,
            Format::SlackJson => &mut self.slack_json,
            Format::TeamsJson => &mut self.teams_json,
            Format::Markdown => &mut self.markdown,
            Format::GitlabMarkdown => &mut self.gitlab_markdown,
            Format::Text => &mut self.text,
        };
        registry
            .register_template_string(name, source)
            .map_err(|err| error(err.pos().map(|(line, _)| line), err.reason().to_string()))?;
        for (label, event) in sample_events() {
            let rendered = self
                .render(format, name, &variables(&event))
                .map_err(|err| {
                    error(
                        err.line,
                        format!("{} (rendering the {label} sample event)", err.message),
                    )
                })?;
            if format.is_json() {
                serde_json::from_str::<Value>(&rendered).map_err(|err| {
                    error(
                        None,
                        format!("the output for the {label} sample event is not valid JSON: {err}"),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Reads `path` and [`add`](Self::add)s it.
    pub fn add_file(
        &mut self,
        format: Format,
        name: &str,
        path: &Path,
    ) -> Result<(), TemplateError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|err| TemplateError {
            file: file.clone(),
            line: None,
            message: format!("cannot read the template: {err}"),
        })?;
        self.add(format, name, &file, &source)
    }

    /// Renders a registered JSON template against every sample event and hands each document
    /// to `check`, which says what an integration needs of it (a Slack `text`, a Teams card);
    /// a complaint becomes a [`TemplateError`] naming `file`.
    pub fn check_json(
        &self,
        format: Format,
        name: &str,
        file: &Path,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<(), TemplateError> {
        for (label, event) in sample_events() {
            let problem = self
                .render(format, name, &variables(&event))
                .map_err(|err| err.message)
                .and_then(|out| serde_json::from_str::<Value>(&out).map_err(|e| e.to_string()))
                .and_then(|document| check(&document));
            if let Err(problem) = problem {
                return Err(TemplateError {
                    file: file.display().to_string(),
                    line: None,
                    message: format!("{problem} (rendering the {label} sample event)"),
                });
            }
        }
        Ok(())
    }

    /// Renders a registered JSON template for `event` into a value, for integrations that fit
    /// it to their receiver's limits before sending; the error is a sentence.
    pub fn render_json(
        &self,
        format: Format,
        name: &str,
        event: &RunCanceled,
    ) -> Result<Value, String> {
        let rendered = self
            .render(format, name, &variables(event))
            .map_err(|err| format!("the template failed: {err}"))?;
        serde_json::from_str(&rendered)
            .map_err(|err| format!("the template rendered invalid JSON: {err}"))
    }

    /// Renders a registered template.
    pub fn render(
        &self,
        format: Format,
        name: &str,
        variables: &Value,
    ) -> Result<String, TemplateError> {
        self.registry(format)
            .render(name, variables)
            .map_err(|err| TemplateError {
                file: err.template_name.clone().unwrap_or_else(|| name.to_owned()),
                line: err.line_no,
                message: err.reason().to_string(),
            })
    }
}

/// Where `source` has an expression that skips escaping: `{{{x}}}` (or a `{{{{raw}}}}` block),
/// or `{{&x}}`, with or without a `~`.
fn unescaped_expression(source: &str) -> Option<usize> {
    source.match_indices("{{").map(|(i, _)| i).find(|&i| {
        let rest = source[i + 2..].trim_start_matches('~').trim_start();
        rest.starts_with('{') || rest.starts_with('&')
    })
}

/// A template's path: `configured` if the integration names one, else `default` under `dir`.
pub fn template_path(dir: &Path, configured: Option<&Path>, default: &str) -> PathBuf {
    configured.map_or_else(|| dir.join(default), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates_with(format: Format, source: &str) -> Result<Templates, TemplateError> {
        let mut templates = Templates::new();
        templates.add(format, "t", "templates/t.hbs", source)?;
        Ok(templates)
    }

    #[test]
    fn sample_events_parse() {
        assert_eq!(sample_events().len(), 4);
    }

    #[test]
    fn json_values_are_escaped_as_json_strings() {
        let templates = templates_with(Format::Json, r#"{"branch": "{{commit.branch}}"}"#).unwrap();
        for (_, event) in sample_events() {
            let out = templates
                .render(Format::Json, "t", &variables(&event))
                .unwrap();
            let parsed: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                parsed["branch"].as_str(),
                event.data.commit.branch.as_deref().or(Some(""))
            );
        }
    }

    #[test]
    fn unescaped_expressions_are_refused_in_every_format_but_plain_text() {
        let error = templates_with(Format::Json, "{\n\"a\": \"{{{actor}}}\"}")
            .err()
            .unwrap();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("skip JSON escaping"));
        for source in ["{\"a\": \"{{& actor}}\"}", "{\"a\": \"{{~&actor}}\"}"] {
            let error = templates_with(Format::SlackJson, source).err().unwrap();
            assert!(error.message.contains("`{{&…}}`"), "{source}: {error}");
        }
        assert!(templates_with(Format::Json, "{\"a\": \"{{actor}} & co\"}").is_ok());
        for format in [Format::Markdown, Format::GitlabMarkdown] {
            let error = templates_with(format, "Cancelled by\n\n{{{actor}}}")
                .err()
                .unwrap();
            assert_eq!(error.line, Some(3));
            assert!(error.message.contains("skip Markdown escaping"), "{error}");
        }
        assert!(templates_with(Format::Text, "Cancelled by {{{actor}}} {{&note}}").is_ok());
    }

    #[test]
    fn unknown_variables_fail_at_load_with_file_and_line() {
        let error = templates_with(Format::Text, "Cancelled by {{actor}}\n{{nope}}")
            .err()
            .unwrap();
        assert_eq!(error.file, "templates/t.hbs");
        assert_eq!(error.line, Some(2));
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn syntax_errors_fail_at_load_with_the_line() {
        let error = templates_with(Format::Text, "a\nb {{#if failed}}")
            .err()
            .unwrap();
        assert_eq!(error.file, "templates/t.hbs");
        assert!(error.line.is_some(), "{error:?}");
    }

    #[test]
    fn output_that_is_not_json_fails_at_load() {
        let error = templates_with(Format::Json, r#"{"a": {{results.failures}} "#)
            .err()
            .unwrap();
        assert!(error.message.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn slack_values_cannot_link_or_mention_and_stay_json() {
        let templates = templates_with(
            Format::SlackJson,
            r#"{"text": "by {{actor}}", "n": {{json tags}}}"#,
        )
        .unwrap();
        let (_, hostile) = sample_events().remove(3);
        let out = templates
            .render(Format::SlackJson, "t", &variables(&hostile))
            .unwrap();
        let parsed: Value = serde_json::from_str(&out).unwrap();
        let text = parsed["text"].as_str().unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert_eq!(parsed["n"][1], "@team");
        let tag = parsed["n"][0].as_str().unwrap();
        assert!(
            tag.contains("&lt;script&gt;"),
            "`json` escapes for Slack too: {tag}"
        );
        assert_eq!(escape_slack("a & <!channel>"), "a &amp; &lt;!channel&gt;");
    }

    #[test]
    fn check_json_names_the_file_and_the_sample_event() {
        let mut templates = Templates::new();
        templates
            .add(Format::Json, "t", "t.hbs", r#"{"a": "{{actor}}"}"#)
            .unwrap();
        let error = templates
            .check_json(Format::Json, "t", Path::new("t.hbs"), |doc| {
                if doc["a"] == "fail-fast" {
                    Err("no".into())
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.hbs: no (rendering the fail-fast sample event)"
        );
    }
}
