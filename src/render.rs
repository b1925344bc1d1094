//! Handlebars templates: one registry per output format, each with its own escaping, in strict
//! mode, and every template rendered against sample events when the config loads, so that a
//! broken template stops the start instead of a send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars};

use crate::event::RunEvent;
use serde_json::Value;

mod escape;
mod format;
mod gitlab;
mod helpers;
mod json_value;
mod markdown;
mod samples;

pub use escape::{escape_json, escape_slack, escape_slack_json, escape_teams_json};
pub use format::Format;
pub use gitlab::{escape_gitlab_markdown, live_markup};
pub use helpers::{DEFAULT_DATE_FORMAT, truncate};
pub use markdown::escape_markdown;
pub use samples::{sample_events, variables};

/// A registry for templates of `format`: strict, with the format's escaping and the helpers.
fn registry(format: Format) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(format.escape);
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

/// The registries of the formats in use, one per [`Format::name`], filled once at load.
#[derive(Default)]
pub struct Templates {
    registries: HashMap<&'static str, Handlebars<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    pub fn new() -> Self {
        Self::default()
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
        if let Some(why) = format.unescaped_refusal
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
        self.registries
            .entry(format.name)
            .or_insert_with(|| registry(format))
            .register_template_string(name, source)
            .map_err(|err| error(err.pos().map(|(line, _)| line), err.reason().to_string()))?;
        for (label, event) in sample_events() {
            let rendered = self
                .render(format, name, variables(&event))
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
                .render(format, name, variables(&event))
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
        event: &RunEvent,
    ) -> Result<Value, String> {
        serde_json::from_str(&self.render_event(format, name, event)?).map_err(invalid_json)
    }

    /// Renders a registered JSON template for `event` as compact JSON text, for integrations
    /// whose only limit is the size of what they send: the JSON is checked, but not built into
    /// a value and written out again (the template's whitespace between tokens is dropped,
    /// everything else is sent as rendered). The error is a sentence.
    pub fn render_compact(
        &self,
        format: Format,
        name: &str,
        event: &RunEvent,
    ) -> Result<String, String> {
        let rendered = self.render_event(format, name, event)?;
        serde_json::from_str::<serde::de::IgnoredAny>(&rendered).map_err(invalid_json)?;
        Ok(compact(&rendered))
    }

    /// Renders a registered template for `event`; the error is a sentence.
    fn render_event(&self, format: Format, name: &str, event: &RunEvent) -> Result<String, String> {
        self.render(format, name, variables(event))
            .map_err(|err| format!("the template failed: {err}"))
    }

    /// Renders a registered template.
    pub fn render(
        &self,
        format: Format,
        name: &str,
        variables: &Context,
    ) -> Result<String, TemplateError> {
        let Some(registry) = self.registries.get(format.name) else {
            return Err(TemplateError {
                file: name.to_owned(),
                line: None,
                message: format!("no {} template is registered", format.name),
            });
        };
        registry
            .render_with_context(name, variables)
            .map_err(|err| TemplateError {
                file: err.template_name.clone().unwrap_or_else(|| name.to_owned()),
                line: err.line_no,
                message: err.reason().to_string(),
            })
    }
}

fn invalid_json(err: serde_json::Error) -> String {
    format!("the template rendered invalid JSON: {err}")
}

/// Valid JSON `text` without the whitespace between its tokens.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
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

    /// A markup is a value: a kind can bring its own without a change here, and its
    /// templates get a registry of their own.
    #[test]
    fn a_markup_defined_elsewhere_escapes_its_own_way() {
        const SHOUT: Format = Format {
            name: "shout",
            escape: |value| value.to_uppercase(),
            json: false,
            json_strings: None,
            unescaped_refusal: Some("skip shouting"),
        };
        let mut templates = Templates::new();
        templates.add(SHOUT, "t", "t.hbs", "by {{actor}}").unwrap();
        templates
            .add(Format::TEXT, "t", "t.hbs", "by {{actor}}")
            .unwrap();
        let (_, event) = sample_events().remove(0);
        let actor = event.cancellation().unwrap().actor.clone();
        let vars = variables(&event);
        assert_eq!(
            templates.render(SHOUT, "t", vars).unwrap(),
            format!("by {}", actor.to_uppercase())
        );
        assert_eq!(
            templates.render(Format::TEXT, "t", vars).unwrap(),
            format!("by {actor}")
        );
        let refused = templates_with(SHOUT, "{{{actor}}}").err().unwrap();
        assert!(refused.message.contains("skip shouting"), "{refused}");
    }

    #[test]
    fn sample_events_parse() {
        assert_eq!(sample_events().len(), 7);
    }

    #[test]
    fn json_values_are_escaped_as_json_strings() {
        let templates = templates_with(Format::JSON, r#"{"branch": "{{commit.branch}}"}"#).unwrap();
        for (_, event) in sample_events() {
            let out = templates
                .render(Format::JSON, "t", variables(&event))
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
        let error = templates_with(Format::JSON, "{\n\"a\": \"{{{actor}}}\"}")
            .err()
            .unwrap();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("skip JSON escaping"));
        for source in ["{\"a\": \"{{& actor}}\"}", "{\"a\": \"{{~&actor}}\"}"] {
            let error = templates_with(Format::SLACK_JSON, source).err().unwrap();
            assert!(error.message.contains("`{{&…}}`"), "{source}: {error}");
        }
        assert!(templates_with(Format::JSON, "{\"a\": \"{{actor}} & co\"}").is_ok());
        for format in [Format::MARKDOWN, Format::GITLAB_MARKDOWN] {
            let error = templates_with(format, "Cancelled by\n\n{{{actor}}}")
                .err()
                .unwrap();
            assert_eq!(error.line, Some(3));
            assert!(error.message.contains("skip Markdown escaping"), "{error}");
        }
        assert!(templates_with(Format::TEXT, "Cancelled by {{{actor}}} {{&note}}").is_ok());
    }

    #[test]
    fn unknown_variables_fail_at_load_with_file_and_line() {
        let error = templates_with(Format::TEXT, "Cancelled by {{actor}}\n{{nope}}")
            .err()
            .unwrap();
        assert_eq!(error.file, "templates/t.hbs");
        assert_eq!(error.line, Some(2));
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn syntax_errors_fail_at_load_with_the_line() {
        let error = templates_with(Format::TEXT, "a\nb {{#if failed}}")
            .err()
            .unwrap();
        assert_eq!(error.file, "templates/t.hbs");
        assert!(error.line.is_some(), "{error:?}");
    }

    #[test]
    fn output_that_is_not_json_fails_at_load() {
        let error = templates_with(Format::JSON, r#"{"a": {{results.failures}} "#)
            .err()
            .unwrap();
        assert!(error.message.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn slack_values_cannot_link_or_mention_and_stay_json() {
        let templates = templates_with(
            Format::SLACK_JSON,
            r#"{"text": "by {{actor}}", "n": {{json tags}}}"#,
        )
        .unwrap();
        let (_, hostile) = sample_events().remove(3);
        let out = templates
            .render(Format::SLACK_JSON, "t", variables(&hostile))
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

    /// The compact text is what a JSON value parsed from the rendering and written out again
    /// would be, for every sample event, hostile strings included, and for the shipped Teams
    /// card: the bytes sent did not change when the round trip went.
    #[test]
    fn compact_json_is_the_rendering_without_its_whitespace() {
        let small = "{\n  \"text\": \"by {{actor}} \\n { } [ ]\",\n  \"tags\": {{json tags}},\n  \"n\": [ 1 , 2 ]\n}";
        let shipped = include_str!("../templates/teams/card.json.hbs");
        for source in [small, shipped] {
            let templates = templates_with(Format::TEAMS_JSON, source).unwrap();
            for (label, event) in sample_events() {
                let compact = templates
                    .render_compact(Format::TEAMS_JSON, "t", &event)
                    .unwrap();
                let value = templates
                    .render_json(Format::TEAMS_JSON, "t", &event)
                    .unwrap();
                assert_eq!(compact, value.to_string(), "{label}");
            }
        }
        let broken = templates_with(Format::TEXT, "{\"a\": {{actor}}").unwrap();
        let (_, event) = sample_events().remove(0);
        let error = broken
            .render_compact(Format::TEXT, "t", &event)
            .unwrap_err();
        assert!(
            error.starts_with("the template rendered invalid JSON"),
            "{error}"
        );
    }

    #[test]
    fn check_json_names_the_file_and_the_sample_event() {
        let mut templates = Templates::new();
        templates
            .add(Format::JSON, "t", "t.hbs", r#"{"a": "{{actor}}"}"#)
            .unwrap();
        let error = templates
            .check_json(Format::JSON, "t", Path::new("t.hbs"), |doc| {
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
