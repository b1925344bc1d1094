//! Template helpers shared by every registry: `truncate`, `oneline`, `json`, `url`, `date`,
//! `plural`.
//!
//! All but `json` and `url` return a value that the registry then escapes for its format, so a
//! helper can never be a way around escaping. `json` writes a JSON value whose strings are
//! escaped for the format (see [`super::json_value`]). `url` writes a validated http(s) URL as a
//! link's address, where text escaping would corrupt it, in a form that can only be that
//! address.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use super::json_value::JsonValue;
use super::{Format, escape_json};

/// Format of `{{date value}}` when the template names none.
pub const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d %H:%M UTC";

/// Registers every helper, for templates of `format`.
pub fn register(registry: &mut Handlebars<'static>, format: Format) {
    registry.register_helper("truncate", Box::new(Truncate));
    registry.register_helper("oneline", Box::new(OneLine));
    registry.register_helper("json", Box::new(JsonValue { format }));
    registry.register_helper("date", Box::new(Date));
    registry.register_helper("plural", Box::new(Plural));
    registry.register_helper("url", Box::new(LinkUrl { format }));
}

/// `[text]({{url runUrl}})`, or `"url": "{{url runUrl}}"` in a JSON template: the value must
/// parse as an http or https URL, and is written as [`link_address`] makes it (inside a JSON
/// string in JSON formats).
struct LinkUrl {
    format: Format,
}

/// `text` as a link's address, if it is an http or https URL: its normalised form (spaces,
/// quotes and `<>` percent-encoded by the URL parser) with `(`, `)`, `{` and `}` encoded too,
/// so it cannot end a Markdown link destination early, form Slack's `<url|text>` or a mention,
/// or start a Teams `{{DATE(…)}}`. It can only ever be a link to itself.
pub(super) fn link_address(text: &str) -> Option<String> {
    let url = url::Url::parse(text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))?;
    let mut address = String::with_capacity(url.as_str().len());
    for c in url.as_str().chars() {
        match c {
            '(' => address.push_str("%28"),
            ')' => address.push_str("%29"),
            '{' => address.push_str("%7B"),
            '}' => address.push_str("%7D"),
            c => address.push(c),
        }
    }
    Some(address)
}

impl HelperDef for LinkUrl {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = param(h, 0, "{{url value}}")?;
        let text = value.as_str().unwrap_or_default();
        let address = link_address(text)
            .ok_or_else(|| error("url", format!("`{text}` is not an http or https URL")))?;
        // A host may hold a `"`: inside a JSON string it is escaped like any value.
        if self.format.is_json() {
            out.write(&escape_json(&address))?;
        } else {
            out.write(&address)?;
        }
        Ok(())
    }
}

/// Cuts `text` to at most `max` characters, the last of them `…` when anything was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let cut = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..cut])
}

pub(super) fn error(helper: &str, message: impl std::fmt::Display) -> RenderError {
    RenderErrorReason::Other(format!("`{helper}` helper: {message}")).into()
}

pub(super) fn param<'a>(
    h: &'a Helper<'_>,
    index: usize,
    usage: &str,
) -> Result<&'a Value, RenderError> {
    let param = h
        .param(index)
        .ok_or_else(|| error(h.name(), format!("missing parameter; use {usage}")))?;
    present(h, param)
}

/// Strict mode does not cover helper arguments: `{{oneline actr}}` would get `null` for the
/// unknown `actr` and render nothing. A path that names no variable is an error instead (a
/// variable that exists and is `null` is fine), so the load-time sample render catches it.
fn present<'a>(
    h: &Helper<'_>,
    param: &'a handlebars::PathAndJson<'_>,
) -> Result<&'a Value, RenderError> {
    if param.is_value_missing() {
        let path = param.relative_path().map_or("?", String::as_str);
        return Err(error(
            h.name(),
            format!("`{path}` is not a variable (see the variables in docs/templates.md)"),
        ));
    }
    Ok(param.value())
}

/// Text of a value: strings as they are, null as nothing, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn derived<'rc>(value: impl Into<Value>) -> Result<ScopedJson<'rc>, RenderError> {
    Ok(ScopedJson::Derived(value.into()))
}

/// `{{truncate value 100}}`: at most 100 characters, ending in `…` when cut.
struct Truncate;

impl HelperDef for Truncate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        const USAGE: &str = "{{truncate value 100}}";
        let value = param(h, 0, USAGE)?;
        let max = param(h, 1, USAGE)?
            .as_u64()
            .filter(|max| *max > 0)
            .ok_or_else(|| {
                error(
                    "truncate",
                    format!("the length must be a number above 0; use {USAGE}"),
                )
            })?;
        derived(truncate(&text(value), max as usize))
    }
}

/// `{{oneline value}}`: line breaks and runs of white space become one space.
struct OneLine;

impl HelperDef for OneLine {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = param(h, 0, "{{oneline value}}")?;
        derived(text(value).split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// `{{date canceledAt}}` or `{{date canceledAt "%d %b %Y"}}`: an RFC 3339 time, in UTC, in a
/// chrono `strftime` format.
struct Date;

impl HelperDef for Date {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = param(h, 0, "{{date canceledAt \"%Y-%m-%d\"}}")?;
        let format = match h.param(1).map(|p| present(h, p)).transpose()? {
            None => DEFAULT_DATE_FORMAT,
            Some(Value::String(format)) => format.as_str(),
            Some(other) => {
                return Err(error(
                    "date",
                    format!("the format must be a string, not {other}"),
                ));
            }
        };
        let text = match value {
            Value::Null => return derived(""),
            Value::String(text) => text,
            other => return Err(error("date", format!("{other} is not an RFC 3339 time"))),
        };
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|err| error("date", format!("`{text}` is not an RFC 3339 time: {err}")))?
            .with_timezone(&Utc);
        // An unknown `%` item makes chrono's Display fail: a template error, never a panic.
        let mut formatted = String::new();
        write!(formatted, "{}", at.format(format))
            .map_err(|_| error("date", format!("`{format}` is not a valid strftime format")))?;
        derived(formatted)
    }
}

/// `{{plural results.failures "failure"}}` → `failure` for 1, `failures` otherwise;
/// `{{plural n "child" "children"}}` for irregular words.
struct Plural;

impl HelperDef for Plural {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        const USAGE: &str = "{{plural count \"word\"}} or {{plural count \"word\" \"words\"}}";
        let count = param(h, 0, USAGE)?
            .as_f64()
            .ok_or_else(|| error("plural", format!("the count must be a number; use {USAGE}")))?;
        let singular = text(param(h, 1, USAGE)?);
        let word = if count == 1.0 {
            singular
        } else {
            match h.param(2) {
                Some(plural) => text(present(h, plural)?),
                None => format!("{singular}s"),
            }
        };
        derived(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: Value) -> Result<String, String> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(super::super::escape_json);
        register(&mut registry, Format::JSON);
        registry
            .render_template(template, &data)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn truncate_cuts_on_characters_with_an_ellipsis() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("abc", 1), "…");
        let out = render(
            "{{truncate t 4}}|{{truncate n 4}}",
            json!({"t": "abcdef", "n": null}),
        );
        assert_eq!(out.unwrap(), "abc…|");
        let err = render("{{truncate t 0}}", json!({"t": "a"})).unwrap_err();
        assert!(err.contains("above 0"), "{err}");
    }

    #[test]
    fn oneline_joins_lines() {
        let out = render("{{oneline t}}", json!({"t": "feat: x\n\n  body\tline"}));
        assert_eq!(out.unwrap(), "feat: x body line");
    }

    #[test]
    fn date_formats_in_utc_and_rejects_bad_formats() {
        let data = json!({"at": "2026-11-21T11:15:01+01:00", "none": null});
        assert_eq!(
            render("{{date at}}", data.clone()).unwrap(),
            "2026-11-21 10:15 UTC"
        );
        assert_eq!(
            render("{{date at \"%d.%m.\"}}", data.clone()).unwrap(),
            "21.11."
        );
        assert_eq!(render("{{date none}}", data.clone()).unwrap(), "");
        let err = render("{{date at \"%Q\"}}", data).unwrap_err();
        assert!(err.contains("not a valid strftime format"), "{err}");
        let err = render("{{date t}}", json!({"t": "yesterday"})).unwrap_err();
        assert!(err.contains("not an RFC 3339 time"), "{err}");
    }

    #[test]
    fn plural_picks_the_word_for_the_count() {
        let data = json!({"one": 1, "two": 2});
        let out = render(
            "{{plural one \"test\"}} {{plural two \"test\"}} {{plural two \"child\" \"children\"}}",
            data,
        );
        assert_eq!(out.unwrap(), "test tests children");
    }

    #[test]
    fn url_writes_only_http_urls_and_keeps_link_destinations_closed() {
        let link = |url: &str| render("({{url u}})", json!({ "u": url }));
        assert_eq!(
            link("https://app.example.dev/run/1").unwrap(),
            "(https://app.example.dev/run/1)"
        );
        assert_eq!(
            link("https://x.dev/a(b)c d").unwrap(),
            "(https://x.dev/a%28b%29c%20d)"
        );
        assert!(
            link("javascript:alert(1)")
                .unwrap_err()
                .contains("is not an http or https URL")
        );
        assert_eq!(
            link("https://x.dev/?d={{DATE(x)}}").unwrap(),
            "(https://x.dev/?d=%7B%7BDATE%28x%29%7D%7D)"
        );
    }

    #[test]
    fn url_stays_inside_its_json_string() {
        // The URL parser keeps a `"` in a host as it is.
        let out = render(r#"{"u": "{{url u}}"}"#, json!({ "u": "https://a\"b.dev/" })).unwrap();
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["u"], "https://a\"b.dev/");
    }

    #[test]
    fn a_helper_argument_that_names_no_variable_is_an_error() {
        let data = json!({"actor": "jane", "note": null, "n": 2});
        let err = render("{{oneline actr}}", data.clone()).unwrap_err();
        assert!(
            err.contains("`oneline` helper: `actr` is not a variable"),
            "{err}"
        );
        let err = render("{{truncate (oneline notte) 10}}", data.clone()).unwrap_err();
        assert!(err.contains("`notte` is not a variable"), "{err}");
        let err = render("{{plural n \"child\" kids}}", data.clone()).unwrap_err();
        assert!(err.contains("`kids` is not a variable"), "{err}");
        // A variable that is there but null is no typo.
        assert_eq!(render("{{oneline note}}", data).unwrap(), "");
    }
}
