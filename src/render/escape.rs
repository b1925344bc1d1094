//! How values are escaped for each output format.

/// Escapes a value into the inside of a JSON string.
pub fn escape_json(value: &str) -> String {
    let quoted = serde_json::to_string(value).expect("strings serialise");
    quoted[1..quoted.len() - 1].to_owned()
}

/// Escapes a value for Slack `mrkdwn` inside a JSON string: Slack's own rule (`&`, `<`, `>` as
/// entities), then JSON. `*`, `_` and `~` have no escape in Slack; without `<` they can only
/// style text, never link or mention.
pub fn escape_slack_json(value: &str) -> String {
    escape_json(&escape_slack(value))
}

/// Slack's escaping of `&`, `<` and `>` (its formatting reference: "escape these three"), and
/// bare links broken, since Slack links `http://…` and `www.…` in any text it preprocesses.
pub fn escape_slack(value: &str) -> String {
    break_autolinks(value)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes a value for an Adaptive Card inside a JSON string. The shipped card puts values only
/// in `TextRun`s, which render no Markdown; for `TextBlock`s and facts in custom cards, which
/// do, `](` and bare links are broken with a zero-width joiner, invisible in both, so a value
/// can never become a link. `{{` gets the joiner too: cards format `{{DATE(…)}}` and
/// `{{TIME(…)}}` in any text. Backslash escapes are not used: Teams clients disagree on them
/// and a `TextRun` would show them.
pub fn escape_teams_json(value: &str) -> String {
    escape_json(
        &break_autolinks(value)
            .replace("](", "]\u{200D}(")
            .replace("{{", "{\u{200D}{"),
    )
}

/// Breaks bare links (`scheme://`, `www.`), which GitHub, Slack and Teams clients turn into
/// links on their own, with a zero-width joiner: the text reads the same and links nowhere.
pub(super) fn break_autolinks(value: &str) -> String {
    let mut text = value.replace("://", ":\u{200D}//");
    for www in ["www.", "WWW.", "Www."] {
        text = text.replace(www, &format!("{}\u{200D}.", &www[..3]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
