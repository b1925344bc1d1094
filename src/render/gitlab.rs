//! GitLab-flavoured Markdown escaping for values in merge request notes, only where GitLab
//! would otherwise interpret a character in its position: `jane.doe`, `web-app` and
//! `feature-A` stay as they are in the raw note (which e-mail notifications and API readers
//! show), while a value still cannot mention (`@user`, `@all`), reference (`#1`, `!1`,
//! `~label`, `%milestone`, `&epic`, `$snippet`, `^alert#1`), link, inject HTML, break a table,
//! or start a line with a quick action (`/merge`: GitLab runs quick actions in notes created
//! or edited through the API).
//!
//! GitLab's Markdown parser marks a backslash-escaped `$ % # & @ ! ~ ^` so that its reference
//! filters skip it; other markup gets CommonMark's backslash escape. HTML entities are no
//! escape here: GitLab decodes them before it looks for references (`&#64;all` would notify
//! everyone), so this escaper never emits one, and escapes the `&` of one a value brings.

use super::markdown::{one_line, ordered_list_number, rule_line, starts_entity};

/// Escapes `value` for GitLab Markdown. The value becomes one line (a line break would end a
/// table row or let the next line start with a quick action) without leading white space. A
/// value's neighbours in the template are unknown, so at its edges the cautious choice wins.
pub fn escape_gitlab_markdown(value: &str) -> String {
    let line = one_line(value);
    let chars: Vec<char> = line.chars().collect();
    let dollars = chars.iter().filter(|c| **c == '$').count();
    let mut escaped = String::with_capacity(line.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let space = |c: Option<char>| c.is_some_and(char::is_whitespace);
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let digit = next.is_some_and(|n| n.is_ascii_digit());
        let escape = match c {
            // A backslash escapes the punctuation after it (perhaps the template's own).
            '\\' => next.is_none_or(|n| n.is_ascii_punctuation()),
            // Code spans, and cells of a table row.
            '`' | '|' => true,
            // References: an issue, a merge request, an epic, a snippet, an alert, each by its
            // number (`project#1` too); `![` is an image.
            '#' => digit || (i == 0 && heading(&chars)),
            '!' => digit || next == Some('['),
            '&' => digit || starts_entity(&chars[i + 1..]),
            '$' => digit || dollars >= 2,
            // `^alert#1`; `x^2` is no reference.
            '^' => next.is_some_and(char::is_alphabetic),
            // Labels and milestones by name, also quoted (`~"needs review"`); `~~` strikes.
            '~' | '%' => word(next) || matches!(next, Some('"' | '~')) || prev == Some('~'),
            // Emphasis needs a flanking delimiter; an underscore inside a word never has one.
            '*' => !(space(prev) && space(next)),
            '_' => !(word(prev) && word(next)),
            // Links, images, references, wiki links (`[[page]]`) and footnotes.
            ']' => next.is_none_or(|n| matches!(n, '(' | '[' | ':' | ']')),
            '[' => next == Some('['),
            // An HTML tag or an autolink needs a letter, `/`, `!` or `?` right after `<`.
            '<' => next.is_none_or(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')),
            // GitLab's inline diff: `{+ added +}`, `{- removed -}`.
            '{' => matches!(next, Some('+' | '-')),
            // Block markers and quick actions only count at the start of a line, and a value
            // may start one.
            '/' | '>' if i == 0 => true,
            '-' | '+' if i == 0 => space(next) || next.is_none() || rule_line(&chars),
            '=' if i == 0 => rule_line(&chars),
            '.' | ')' if ordered_list_number(&chars[..i]) => space(next) || next.is_none(),
            _ => false,
        };
        match c {
            // `@name` mentions and `a@b.example` links an e-mail; GitLab's own escape is the
            // backslash, and the zero-width joiner also keeps the e-mail autolink away.
            '@' if word(next) => escaped.push_str("\\@\u{200D}"),
            c if escape => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Whether the line is `#`s followed by a space or nothing: an ATX heading.
fn heading(chars: &[char]) -> bool {
    chars
        .iter()
        .find(|c| **c != '#')
        .is_none_or(|c| c.is_whitespace())
}

/// The first place in GitLab Markdown `text` where GitLab would act on something: a mention,
/// a reference (`#1`, `!1`, `&1`, `$1`, `^alert`, `~label`, `%milestone`), an image, a wiki
/// link, an HTML tag, an entity, or a line that starts a quick action; as `(byte offset, what)`.
/// Links and emphasis are not looked for: templates use them. A character behind a backslash
/// is escaped, and a zero-width joiner after `@` ends a mention.
pub fn live_markup(text: &str) -> Option<(usize, &'static str)> {
    for (start, line) in line_starts(text) {
        if line.trim_start_matches("> ").starts_with('/') {
            return Some((start, "a quick action"));
        }
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(at, c)) in chars.iter().enumerate() {
        if k > 0 && chars[k - 1].1 == '\\' && !escaped_backslash(&chars[..k - 1]) {
            continue;
        }
        let next = chars.get(k + 1).map(|(_, c)| *c);
        let word = next.is_some_and(|n| n.is_alphanumeric() || n == '_');
        let digit = next.is_some_and(|n| n.is_ascii_digit());
        let what = match c {
            '@' if word => "a mention",
            '#' | '!' | '$' if digit => "a reference",
            '&' if digit => "an epic reference",
            '&' if starts_entity(&chars[k + 1..].iter().map(|(_, c)| *c).collect::<Vec<_>>()) => {
                "an entity"
            }
            '^' if next.is_some_and(char::is_alphabetic) => "an alert reference",
            '~' | '%' if word || next == Some('"') => "a label or milestone reference",
            '!' if next == Some('[') => "an image",
            '[' if next == Some('[') => "a wiki link",
            '<' if next
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) =>
            {
                "an HTML tag"
            }
            _ => continue,
        };
        return Some((at, what));
    }
    None
}

/// Each line of `text` with its byte offset.
fn line_starts(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    text.split('\n').map(move |line| {
        let start = offset;
        offset += line.len() + 1;
        (start, line)
    })
}

/// Whether the backslash right after `before` is itself escaped (an odd run of backslashes
/// before it).
fn escaped_backslash(before: &[(usize, char)]) -> bool {
    before.iter().rev().take_while(|(_, c)| *c == '\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value as GitLab shows it: CommonMark resolves the backslash escapes.
    fn shown(escaped: &str) -> String {
        let mut out = String::new();
        let mut chars = escaped.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        out.replace('\u{200D}', "")
    }

    #[test]
    fn ordinary_values_stay_verbatim() {
        for value in [
            "jane.doe",
            "web-app",
            "feature-A",
            "Cancelled by jane.doe",
            "feat: change button color",
            "fix snake_case names (again)",
            "2 * 3 ~ 6",
            "R&D costs 5 $, 50% off",
            "a < b, c > d",
            "release/1.2",
            "#hashtag and C#",
            "1.2.3 released",
            "+1 from me",
            "wow! great",
            "x^2",
            "{curly} (round)",
        ] {
            assert_eq!(escape_gitlab_markdown(value), value);
            assert_eq!(live_markup(value), None, "{value}");
        }
    }

    #[test]
    fn gitlabs_reference_patterns_stay_inert() {
        for value in [
            "@jane",
            "@all",
            "@group/sub",
            "mail jane@evil.example",
            "fixes #12",
            "group/project#12",
            "see !34",
            "~bug ~\"needs review\"",
            "%v1.0 %\"Sprint 3\"",
            "&5",
            "$7",
            "^alert#1",
            "![i](http://x)",
            "[[wiki page]]",
            "<img src=x onerror=alert(1)>",
            "</p>",
            "&#64;all &lt;b&gt;",
            "/merge",
            "x\n/unassign @me",
        ] {
            let escaped = escape_gitlab_markdown(value);
            assert_eq!(live_markup(&escaped), None, "{value} → {escaped}");
            assert_ne!(live_markup(value), None, "the check finds {value}");
            assert_eq!(
                shown(&escaped),
                value.replace('\n', " "),
                "{value} reads the same"
            );
        }
    }

    #[test]
    fn markup_links_tables_and_autolinks_are_neutral() {
        let cases = [
            (
                "[x](http://evil.example)",
                "[x\\](http:\u{200D}//evil.example)",
            ),
            ("www.evil.example", "www\u{200D}.evil.example"),
            (
                "*b* **s** _i_ ~~d~~",
                "\\*b\\* \\*\\*s\\*\\* \\_i\\_ \\~\\~d\\~\\~",
            ),
            ("in*word*emphasis", "in\\*word\\*emphasis"),
            ("`code`", "\\`code\\`"),
            ("a | b", "a \\| b"),
            ("{+ added +} {- removed -}", "\\{+ added +} \\{- removed -}"),
            ("$x$ and $y$", "\\$x\\$ and \\$y\\$"),
            ("trailing \\", "trailing \\\\"),
        ];
        for (value, expected) in cases {
            assert_eq!(escape_gitlab_markdown(value), expected, "{value}");
        }
    }

    #[test]
    fn a_value_cannot_start_a_block_or_a_quick_action() {
        let cases = [
            ("/merge", "\\/merge"),
            ("/MERGE", "\\/MERGE"),
            ("# heading", "\\# heading"),
            ("> quote", "\\> quote"),
            ("- item", "\\- item"),
            ("1. item", "1\\. item"),
            ("---", "\\---"),
            ("    /close", "\\/close"),
            ("x\n/approve", "x /approve"),
        ];
        for (value, expected) in cases {
            assert_eq!(escape_gitlab_markdown(value), expected, "{value}");
        }
    }
}
