//! `{{json value}}`: a value written as JSON (`["a","b"]`, `3`, `"text"`, `null`), inert in the
//! format of its template.
//!
//! In a JSON template the output is one complete JSON value, so it cannot break the document;
//! its strings are escaped for the receiver as `{{value}}` would be (Slack's entities, Teams'
//! broken links), except that a string that is an http(s) URL is written as a link's address
//! (see [`link_address`]), so `"url": {{json runUrl}}` still fills a button. In Markdown the
//! JSON text is escaped for Markdown; in plain text it is written as it is.

use handlebars::{Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext};
use serde_json::Value;

use super::Format;
use super::helpers::{error, link_address, param};

/// The `json` helper of a registry for `format`.
pub(super) struct JsonValue {
    pub format: Format,
}

impl HelperDef for JsonValue {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = param(h, 0, "{{json value}}")?;
        let inert = match self.format.json_strings {
            Some(escape) => &strings_escaped(value, escape),
            None => value,
        };
        let json = serde_json::to_string(inert).map_err(|err| error("json", err))?;
        // serde_json's output is a complete JSON value: written as it is, JSON stays valid;
        // elsewhere it is text, escaped like any value (as it is in plain text).
        let written = if self.format.is_json() {
            json
        } else {
            r.get_escape_fn()(&json)
        };
        out.write(&written)?;
        Ok(())
    }
}

/// `value` with every string escaped by `escape`, but a URL written as a link's address.
fn strings_escaped(value: &Value, escape: fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(link_address(text).unwrap_or_else(|| escape(text))),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| strings_escaped(item, escape))
                .collect(),
        ),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(key, member)| (key.clone(), strings_escaped(member, escape)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOSTILE: &str = "say \"hi\"\n<!channel> <https://evil.example|docs> [x](https://evil.example) {{DATE(2026-01-01T00:00:00Z)}}";

    fn render(format: Format, template: &str, data: &Value) -> String {
        super::super::registry(format)
            .render_template(template, data)
            .unwrap()
    }

    #[test]
    fn plain_json_writes_the_value_as_it_is() {
        let data = json!({"tags": ["a\"b", "<c>"], "n": 3});
        assert_eq!(
            render(Format::JSON, "{{json tags}} {{json n}}", &data),
            r#"["a\"b","<c>"] 3"#
        );
    }

    #[test]
    fn slack_strings_lose_links_and_mentions_and_urls_stay_addresses() {
        let data = json!({"v": [HOSTILE, 2], "url": "https://app.example.dev/run/1?a=1&b=(2)"});
        let out = render(
            Format::SLACK_JSON,
            r#"{"v": {{json v}}, "u": {{json url}}}"#,
            &data,
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        let text = parsed["v"][0].as_str().unwrap();
        assert!(!text.contains(['<', '>']), "{text}");
        assert!(!text.contains("://"), "{text}");
        assert!(text.contains("say \"hi\"\n&lt;!channel&gt;"), "{text}");
        assert_eq!(parsed["v"][1], 2);
        assert_eq!(parsed["u"], "https://app.example.dev/run/1?a=1&b=%282%29");
    }

    #[test]
    fn teams_strings_lose_links_and_date_functions() {
        let out = render(
            Format::TEAMS_JSON,
            r#"{"v": {{json v}}}"#,
            &json!({"v": HOSTILE}),
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        let text = parsed["v"].as_str().unwrap();
        for live in ["](", "://", "{{"] {
            assert!(!text.contains(live), "{live} in {text}");
        }
        assert_eq!(text.replace('\u{200D}', ""), HOSTILE, "reads the same");
    }

    #[test]
    fn markdown_escapes_the_json_text_and_plain_text_keeps_it() {
        let data = json!({"v": ["<b>x</b>", "[x](https://evil.example)"]});
        let out = render(Format::MARKDOWN, "{{json v}}", &data);
        assert!(
            !out.contains("<b>") && !out.contains("](https://evil"),
            "{out}"
        );
        assert_eq!(
            render(Format::TEXT, "{{json v}}", &data),
            r#"["<b>x</b>","[x](https://evil.example)"]"#
        );
    }
}
