//! How values are escaped for each output format. Most values need no escape at all, so each
//! step hands its input on unchanged (borrowed) unless it has something to replace.

use std::borrow::Cow;

/// Escapes a value into the inside of a JSON string.
pub fn escape_json(value: &str) -> String {
    json_inside(value).into_owned()
}

/// Escapes a value for Slack `mrkdwn` inside a JSON string: Slack's own rule (`&`, `<`, `>` as
/// entities), then JSON. `*`, `_` and `~` have no escape in Slack; without `<` they can only
/// style text, never link or mention.
pub fn escape_slack_json(value: &str) -> String {
    json_inside(&slack(value)).into_owned()
}

/// Slack's escaping of `&`, `<` and `>` (its formatting reference: "escape these three"), and
/// bare links broken, since Slack links `http://…` and `www.…` in any text it preprocesses.
pub fn escape_slack(value: &str) -> String {
    slack(value).into_owned()
}

fn slack(value: &str) -> Cow<'_, str> {
    let text = replaced(break_autolinks(value), "&", "&amp;");
    let text = replaced(text, "<", "&lt;");
    replaced(text, ">", "&gt;")
}

/// Escapes a value for an Adaptive Card inside a JSON string. The shipped card puts values only
/// in `TextRun`s, which render no Markdown; for `TextBlock`s and facts in custom cards, which
/// do, `](` and bare links are broken with a zero-width joiner, invisible in both, so a value
/// can never become a link. `{{` gets the joiner too: cards format `{{DATE(…)}}` and
/// `{{TIME(…)}}` in any text. Backslash escapes are not used: Teams clients disagree on them
/// and a `TextRun` would show them.
pub fn escape_teams_json(value: &str) -> String {
    json_inside(&teams(value)).into_owned()
}

/// The Teams part of [`escape_teams_json`], before JSON: no links, no date functions.
pub fn escape_teams(value: &str) -> String {
    teams(value).into_owned()
}

fn teams(value: &str) -> Cow<'_, str> {
    let text = replaced(break_autolinks(value), "](", "]\u{200D}(");
    replaced(text, "{{", "{\u{200D}{")
}

/// Breaks bare links (`scheme://`, `www.`), which GitHub, Slack and Teams clients turn into
/// links on their own, with a zero-width joiner: the text reads the same and links nowhere.
pub(super) fn break_autolinks(value: &str) -> Cow<'_, str> {
    let text = replaced(Cow::Borrowed(value), "://", ":\u{200D}//");
    let text = replaced(text, "www.", "www\u{200D}.");
    let text = replaced(text, "WWW.", "WWW\u{200D}.");
    replaced(text, "Www.", "Www\u{200D}.")
}

/// `text` with every `from` replaced by `to`.
fn replaced<'a>(text: Cow<'a, str>, from: &str, to: &str) -> Cow<'a, str> {
    match text.contains(from) {
        true => Cow::Owned(text.replace(from, to)),
        false => text,
    }
}

/// The inside of a JSON string holding `value`: what serde_json escapes (`"`, `\`, control
/// characters), escaped.
fn json_inside(value: &str) -> Cow<'_, str> {
    if !value.chars().any(|c| c == '"' || c == '\\' || c < ' ') {
        return Cow::Borrowed(value);
    }
    let quoted = serde_json::to_string(value).expect("strings serialise");
    Cow::Owned(quoted[1..quoted.len() - 1].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Borrowed or not, the inside of the string serde_json writes.
        #[test]
        fn json_escapes_are_serde_jsons(value in ".*|[a-z \"\\\\\\x00-\\x1f]*") {
            let quoted = serde_json::to_string(&value).unwrap();
            proptest::prop_assert_eq!(escape_json(&value), &quoted[1..quoted.len() - 1]);
        }
    }

    #[test]
    fn teams_values_read_the_same_and_cannot_link_or_format_dates() {
        let value =
            "[x](https://evil.example) www.evil.example {{DATE(2026-11-21T10:15:02Z)}} \"q\"";
        let escaped = escape_teams_json(value);
        let parsed: String = serde_json::from_str(&format!("\"{escaped}\"")).unwrap();
        assert_eq!(parsed.replace('\u{200D}', ""), value);
        for live in ["](", "://", "www.", "{{"] {
            assert!(!parsed.contains(live), "{live} in {parsed}");
        }
    }

    #[test]
    fn slack_values_cannot_auto_link() {
        let escaped = escape_slack("see http://evil.example and WWW.evil.example <!here>");
        assert_eq!(
            escaped,
            "see http:\u{200D}//evil.example and WWW\u{200D}.evil.example &lt;!here&gt;"
        );
    }
}
