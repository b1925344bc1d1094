//! `${VAR}` references, checked before the typed parse so that all of them are reported at
//! once, each with its line: every variable that is missing, every one that is set but empty
//! where no default applies, and every reference inside quotes or a block scalar, where YAML
//! keeps `${…}` as literal text that would otherwise be sent as the value.

use std::collections::HashMap;

use super::tree::{Node, Position};

/// A problem with a `${…}` reference, at the value that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProblem {
    pub at: Position,
    pub message: String,
}

/// Checks every `${…}` in the scalar values of `tree` against `env`.
pub fn check(tree: &Node, source: &str, env: &HashMap<String, String>) -> Vec<EnvProblem> {
    let mut scalars = Vec::new();
    tree.scalars(&mut scalars);
    let mut problems = Vec::new();
    for (at, text) in scalars {
        let references = references(&text);
        if references.is_empty() {
            continue;
        }
        let written = match style(&at, source) {
            Some('"' | '\'') => Some(("inside quotes", "remove the quotes")),
            Some('|' | '>') => Some((
                "inside a block scalar (`|` or `>`)",
                "write it as a plain value after the key",
            )),
            _ => None,
        };
        for reference in references {
            let message = match written {
                // Expanding here would need our own YAML quoting rules; refusing is clearer:
                // the fix is one edit, and nothing is ever sent as the literal `${NAME}`.
                Some((written, fix)) => Some(format!(
                    "`{}` is {written}, where YAML keeps it as literal text that would be sent as it is: {fix}",
                    reference.text
                )),
                None => reference.problem(env),
            };
            problems.extend(message.map(|message| EnvProblem { at, message }));
        }
    }
    problems
}

/// The first character of the scalar at `at` as written: a quote or `|`/`>` when it is not plain.
fn style(at: &Position, source: &str) -> Option<char> {
    at.byte
        .and_then(|b| source.get(b..))
        .and_then(|s| s.chars().next())
}

/// Whether the scalar at `at` is written plain (not quoted, not a block), the only style whose
/// `${…}` the parser expands.
pub fn is_plain(at: &Position, source: &str) -> bool {
    !matches!(style(at, source), Some('"' | '\'' | '|' | '>'))
}

/// Whether `text` holds a `${…}` reference.
pub fn has_references(text: &str) -> bool {
    !references(text).is_empty()
}

/// Every variable of `tree` that is required (no default applies) and not set in `env`.
pub fn unset(tree: &Node, env: &HashMap<String, String>) -> Vec<String> {
    fn collect(text: &str, env: &HashMap<String, String>, out: &mut Vec<String>) {
        for reference in references(text) {
            let value = env.get(&reference.name).map(String::as_str);
            match (reference.operator.as_str(), value) {
                ("" | "?" | ":?", None) => out.push(reference.name.clone()),
                ("-", None) | (":-", None | Some("")) => collect(&reference.argument, env, out),
                _ => {}
            }
        }
    }
    let mut scalars = Vec::new();
    tree.scalars(&mut scalars);
    let mut names = Vec::new();
    for (_, text) in scalars {
        collect(&text, env, &mut names);
    }
    names
}

/// `text` with every `${…}` in it replaced by `with`.
pub fn replace_references(text: &str, with: &str) -> String {
    references(text)
        .iter()
        .fold(text.to_owned(), |text, reference| {
            text.replacen(&reference.text, with, 1)
        })
}

/// One `${NAME…}` in a scalar.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    /// As written, for messages.
    text: String,
    name: String,
    /// `""`, `-`, `:-`, `+`, `:+`, `?` or `:?`.
    operator: String,
    /// The default, replacement or error text after the operator.
    argument: String,
}

impl Reference {
    /// What is wrong with this reference under `env`, if anything (its default is checked in
    /// turn when it would be used).
    fn problem(&self, env: &HashMap<String, String>) -> Option<String> {
        let name = &self.name;
        let value = env.get(name);
        let missing = || {
            format!(
                "`{}`: the environment variable `{name}` is not set; set it, or give a default with `${{{name}:-default}}`",
                self.text
            )
        };
        let empty = || {
            format!(
                "`{}`: the environment variable `{name}` is set but empty; give it a value, or write `${{{name}:-default}}` to use a default when it is empty",
                self.text
            )
        };
        let nested = || {
            references(&self.argument)
                .iter()
                .find_map(|reference| reference.problem(env))
        };
        match (self.operator.as_str(), value.map(String::as_str)) {
            ("", None) => Some(missing()),
            ("", Some("")) => Some(empty()),
            ("?" | ":?", None) => Some(format!("{} ({})", missing(), self.argument)),
            (":?", Some("")) => Some(format!("{} ({})", empty(), self.argument)),
            ("-", None) => nested(),
            (":-", None | Some("")) => nested(),
            _ => None,
        }
    }
}

/// Every `${…}` in `text`, outermost only; `$${` is an escaped literal and skipped.
fn references(text: &str) -> Vec<Reference> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if bytes[i + 1] != b'{' {
            i += 1;
            continue;
        }
        let start = i;
        let name_start = i + 2;
        let name_end = name_start
            + text[name_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - name_start);
        // Find the matching `}`, counting nested `${…}` in defaults.
        let mut depth = 1;
        let mut end = None;
        for (offset, byte) in bytes[name_end..].iter().enumerate() {
            match byte {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(name_end + offset);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let rest = &text[name_end..end];
        let operator = ["?", ":?", ":-", "-", ":+", "+"]
            .into_iter()
            .filter(|op| rest.starts_with(op))
            .max_by_key(|op| op.len())
            .unwrap_or("");
        if name_end > name_start && (!operator.is_empty() || rest.is_empty()) {
            found.push(Reference {
                text: text[start..=end].to_owned(),
                name: text[name_start..name_end].to_owned(),
                operator: operator.to_owned(),
                argument: rest[operator.len()..].to_owned(),
            });
        }
        i = end + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_with_their_operators() {
        let found = references("a ${A} $${NOT} ${B:-x${C}y} ${D?say}");
        let summary: Vec<_> = found
            .iter()
            .map(|r| (r.name.as_str(), r.operator.as_str(), r.argument.as_str()))
            .collect();
        assert_eq!(
            summary,
            [("A", "", ""), ("B", ":-", "x${C}y"), ("D", "?", "say")]
        );
    }

    #[test]
    fn defaults_are_checked_only_when_used() {
        let env: HashMap<_, _> = [("SET".to_owned(), "v".to_owned())].into();
        let one = |text: &str| references(text).remove(0).problem(&env);
        assert_eq!(one("${SET:-${NOPE}}"), None);
        assert!(
            one("${UNSET:-${NOPE}}")
                .unwrap()
                .contains("`NOPE` is not set")
        );
        assert_eq!(one("${UNSET:-plain}"), None);
    }
}
