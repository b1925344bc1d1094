//! Escaping a value for GitHub-flavoured Markdown, only where a character would change the
//! rendering in its position: `jane.doe`, `web-app` and `feature-A` stay as they are in the raw
//! body (which API readers, bots and plain-text e-mails show), while markup, HTML, links,
//! mentions and table breaks from a value stay inert.

use super::escape::break_autolinks;

/// Escapes a value for GitHub-flavoured Markdown. The value becomes one line (a line break
/// would end a paragraph or a table row) without leading white space (indentation makes code).
/// A value's neighbours in the template are unknown, so at its edges the cautious choice wins.
pub fn escape_markdown(value: &str) -> String {
    let line = one_line(value);
    let chars: Vec<char> = line.chars().collect();
    let dollars = chars.iter().filter(|c| **c == '$').count();
    let mut escaped = String::with_capacity(line.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let space = |c: Option<char>| c.is_some_and(char::is_whitespace);
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let escape = match c {
            // A backslash escapes the punctuation after it (perhaps the template's own).
            '\\' => next.is_none_or(|n| n.is_ascii_punctuation()),
            // Code spans, and cells of a table row.
            '`' | '|' => true,
            // Emphasis and strikethrough need a flanking delimiter; between spaces there is none.
            '*' | '~' => !(space(prev) && space(next)),
            // An underscore inside a word never emphasises (`snake_case`).
            '_' => !(word(prev) && word(next)),
            // Links, images and reference definitions all need `](`, `][` or `]:`.
            ']' => next.is_none_or(|n| matches!(n, '(' | '[' | ':')),
            // Inline math needs a pair.
            '$' => dollars >= 2,
            // Block markers only count at the start of a line, and a value may start one.
            '>' if i == 0 => true,
            '#' if i == 0 => chars
                .iter()
                .find(|c| **c != '#')
                .is_none_or(|c| c.is_whitespace()),
            '-' | '+' if i == 0 => space(next) || next.is_none() || rule_line(&chars),
            '=' if i == 0 => rule_line(&chars),
            '.' | ')' if ordered_list_number(&chars[..i]) => space(next) || next.is_none(),
            _ => false,
        };
        match c {
            // An HTML tag or an autolink needs a letter, `/`, `!` or `?` right after `<`.
            '<' if next.is_none_or(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) => {
                escaped.push_str("&lt;");
            }
            '&' if starts_entity(&chars[i + 1..]) => escaped.push_str("&amp;"),
            // `@team` would notify and `a@b.example` would link; `#12` would cross-reference an
            // issue. The joiner is invisible and stops all three.
            '@' if word(next) => escaped.push_str("@\u{200D}"),
            '#' if next.is_some_and(|n| n.is_ascii_digit()) => {
                if escape {
                    escaped.push('\\');
                }
                escaped.push_str("#\u{200D}");
            }
            c if escape => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// `value` as one line for a Markdown escaper: line breaks and tabs become spaces, other
/// control characters go, leading white space goes (indentation makes code), and bare
/// `scheme://…` and `www.…` get a zero-width joiner (GitHub and GitLab link them after escapes
/// are resolved; the joiner keeps the text as it reads and links nowhere).
pub(super) fn one_line(value: &str) -> String {
    let line: String = value
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    break_autolinks(line.trim_start()).into_owned()
}

/// Whether the line is only `-`, `=` or `*` and spaces: a thematic break or a heading underline.
pub(super) fn rule_line(chars: &[char]) -> bool {
    chars.iter().all(|c| matches!(c, '-' | '=' | '*' | ' '))
}

/// Whether `before` is the number of an ordered list item (1 to 9 digits at the line start).
pub(super) fn ordered_list_number(before: &[char]) -> bool {
    (1..=9).contains(&before.len()) && before.iter().all(char::is_ascii_digit)
}

/// Whether the text after an `&` would be read as an entity (`&lt;`, `&#60;`, `&#x3c;`); GitLab's Markdown reads them the same way.
pub(super) fn starts_entity(after: &[char]) -> bool {
    let name: Vec<char> = after
        .iter()
        .take(33)
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '#')
        .copied()
        .collect();
    !name.is_empty() && after.get(name.len()) == Some(&';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_stay_verbatim() {
        for value in [
            "jane.doe",
            "web-app",
            "feature-A",
            "feat: change button color",
            "fix snake_case names (again)",
            "2 * 3 ~ 6",
            "R&D costs $5",
            "a < b, c > d",
            "[WIP] new button",
            "release/1.2",
            "-v flag",
            "#hashtag",
            "1.2.3 released",
            "+1 from me",
        ] {
            assert_eq!(escape_markdown(value), value);
        }
    }

    #[test]
    fn markup_links_html_and_mentions_are_neutralised() {
        let cases = [
            ("<script>x</script>", "&lt;script>x&lt;/script>"),
            ("[a](b)", "[a\\](b)"),
            ("![i](http://x)", "![i\\](http:\u{200D}//x)"),
            ("[r]: http://x", "[r\\]: http:\u{200D}//x"),
            ("*b* **s** _i_ ~d~", "\\*b\\* \\*\\*s\\*\\* \\_i\\_ \\~d\\~"),
            ("`code`", "\\`code\\`"),
            ("a | b", "a \\| b"),
            (
                "@everyone and @acme/team",
                "@\u{200D}everyone and @\u{200D}acme/team",
            ),
            ("see #12", "see #\u{200D}12"),
            ("&lt;b&gt;", "&amp;lt;b&amp;gt;"),
            ("$x$ and $y$", "\\$x\\$ and \\$y\\$"),
            ("trailing \\", "trailing \\\\"),
            ("a\\*b", "a\\\\\\*b"),
            ("line\nbreak\tand\u{7}bell", "line break andbell"),
        ];
        for (value, expected) in cases {
            assert_eq!(escape_markdown(value), expected, "{value}");
        }
    }

    #[test]
    fn a_value_cannot_start_a_block() {
        let cases = [
            ("# heading", "\\# heading"),
            ("> quote", "\\> quote"),
            ("- item", "\\- item"),
            ("+ item", "\\+ item"),
            ("* item", "\\* item"),
            ("1. item", "1\\. item"),
            ("12) item", "12\\) item"),
            ("===", "\\==="),
            ("---", "\\---"),
            ("    indented code", "indented code"),
            ("#1 fix", "#\u{200D}1 fix"),
            ("## h2", "\\## h2"),
            ("#", "\\#"),
            ("- - -", "\\- - -"),
            ("-", "\\-"),
            ("1.", "1\\."),
        ];
        for (value, expected) in cases {
            assert_eq!(escape_markdown(value), expected, "{value}");
        }
    }

    #[test]
    fn bare_urls_and_emails_link_nowhere() {
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
