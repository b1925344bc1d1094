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

/// Slack's escaping of `&`, `<` and `>` (its formatting reference: "escape these three").
pub fn escape_slack(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes a value for GitHub-flavoured Markdown: markup characters are backslash-escaped, HTML
/// is entity-encoded, line breaks become spaces (they would end a table row), and `@` is
/// followed by a zero-width joiner so that `@team` never notifies anyone. GitHub turns bare
/// `https://…` and `www.…` into links after escapes are resolved, so those patterns get a
/// zero-width joiner too: the text reads the same and links nowhere.
pub fn escape_markdown(value: &str) -> String {
    let unlinked = break_autolinks(value);
    let value = unlinked.as_str();
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '@' => escaped.push_str("@\u{200D}"),
            '\n' | '\r' | '\t' => escaped.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '"' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Breaks GitHub's extended autolinks (`scheme://`, `www.`) with a zero-width joiner.
fn break_autolinks(value: &str) -> String {
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
    fn markdown_escaping_neutralises_markup_html_and_mentions() {
        let escaped = escape_markdown("<script>x</script> @everyone [a](b) | *b*\nnext");
        assert!(!escaped.contains("<script"));
        assert!(!escaped.contains("@everyone"));
        assert!(!escaped.contains('\n'));
        assert!(escaped.contains("\\|"));
        assert!(escaped.contains("\\[a\\]\\(b\\)"));
    }

    #[test]
    fn markdown_escaping_leaves_no_autolink() {
        for hostile in [
            "see http://evil.example/x",
            "HTTPS://evil.example",
            "www.evil.example",
            "mail john@evil.example",
        ] {
            let escaped = escape_markdown(hostile);
            let plain = escaped.replace('\\', "");
            assert!(!plain.to_ascii_lowercase().contains("://"), "{escaped}");
            assert!(!plain.to_ascii_lowercase().contains("www."), "{escaped}");
            assert!(!plain.contains("@e"), "{escaped}");
        }
    }
}
