//! GitLab-flavoured Markdown escaping for values in merge request notes.
//!
//! What a value must not do in a note: mention (`@user`, `@group`, `@all`), reference
//! (`#1`, `!1`, `~label`, `%milestone`, `&epic`, `$snippet`, `^alert`), link, inject HTML,
//! break a table, or start a line with a quick action (`/merge`, `/close`: GitLab runs quick
//! actions in notes created or edited through the API). GitLab's Markdown parser marks a
//! backslash-escaped `$ % # & @ ! ~ ^` so that reference filters skip it; every other markup
//! character gets CommonMark's backslash escape. HTML entities are no escape here: GitLab
//! decodes them before it looks for references, so `&#64;all` would still notify everyone;
//! this escaper never emits an entity, and escapes the `&` of one a value brings.

use super::escape::break_autolinks;

/// Escapes `value` for GitLab Markdown (one line: line breaks would end a table row or let
/// the next line start with a quick action).
pub fn escape_gitlab_markdown(value: &str) -> String {
    let unlinked = break_autolinks(value);
    let mut escaped = String::with_capacity(unlinked.len() + 8);
    for c in unlinked.chars() {
        match c {
            // References and mentions: escaped for GitLab's filters. `@` also gets a
            // zero-width joiner, so no parser sees `@name` or an e-mail autolink.
            '@' => escaped.push_str("\\@\u{200D}"),
            '$' | '%' | '#' | '&' | '!' | '~' | '^' => {
                escaped.push('\\');
                escaped.push(c);
            }
            // Markup, HTML, links, tables, and `/` (a quick action at line start).
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '+' | '-' | '.' | '|'
            | '"' | '<' | '>' | '/' | ':' | '=' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\n' | '\r' | '\t' => escaped.push(' '),
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
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
        out
    }

    #[test]
    fn mentions_and_references_are_escaped_for_gitlabs_filters() {
        for (value, raw) in [
            ("@all", "@"),
            ("@group/sub", "@"),
            ("fixes #12", "#"),
            ("see !34", "!"),
            ("~bug ~\"needs review\"", "~"),
            ("%\"v1.0\"", "%"),
            ("&5", "&"),
            ("$7", "$"),
            ("^alert#1", "^"),
        ] {
            let escaped = escape_gitlab_markdown(value);
            let unescaped = escaped
                .match_indices(raw)
                .any(|(i, _)| !escaped[..i].ends_with('\\'));
            assert!(!unescaped, "{value} → {escaped}");
            assert_eq!(shown(&escaped).replace('\u{200D}', ""), value);
        }
    }

    #[test]
    fn entities_are_not_relied_on_and_cannot_be_smuggled_in() {
        let escaped = escape_gitlab_markdown("&#64;all &lt;b&gt;");
        assert_eq!(escaped, "\\&\\#64;all \\&lt;b\\&gt;");
        let html = escape_gitlab_markdown("<script>alert(1)</script>");
        assert!(!html.contains("&lt;"), "no entity is emitted: {html}");
        assert!(html.starts_with("\\<script\\>"), "{html}");
    }

    #[test]
    fn quick_actions_cannot_start_a_line() {
        for value in ["/merge", "/close", "/approve", "x\n/unassign @me", "/MERGE"] {
            let escaped = escape_gitlab_markdown(value);
            assert!(
                !escaped.lines().any(|line| line.starts_with('/')),
                "{value:?} → {escaped:?}"
            );
            assert!(!escaped.contains('\n'));
        }
    }

    #[test]
    fn links_tables_and_markup_are_neutral() {
        let escaped =
            escape_gitlab_markdown("[x](http://evil.example) www.evil.example | a | `c` **b**");
        assert!(!escaped.contains("://"), "{escaped}");
        assert!(
            !shown(&escaped).to_ascii_lowercase().contains("www."),
            "{escaped}"
        );
        assert!(escaped.contains("\\[x\\]\\("), "{escaped}");
        assert!(escaped.contains("\\|"), "{escaped}");
        assert!(escaped.contains("\\`c\\`"), "{escaped}");
    }
}
