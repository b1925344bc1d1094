//! Every key of an integration entry checked against what its `type:` accepts, before the
//! typed parse: serde names an unknown key of a (flattened) entry only once every required key
//! is there, and without the list, so a typo such as `urll:` read as a missing `url`.

use super::collect::Problem;
use super::tree::{Node, Value};
use crate::integrations::IntegrationConfig;

/// One problem for each key of an entry under `integrations:` that its type does not accept,
/// at the key, with the keys it does; entries of an unknown type are left to the typed parse.
pub fn unknown_keys(tree: &Node) -> Vec<Problem> {
    let Some((_, list)) = top_level(tree, "integrations") else {
        return Vec::new();
    };
    let Value::Seq(entries) = &list.value else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for entry in entries {
        let Value::Map(keys) = &entry.value else {
            continue;
        };
        let kind = keys
            .iter()
            .find(|(key, _)| key.text() == Some("type"))
            .and_then(|(_, value)| value.text());
        let Some(accepted) = kind.and_then(IntegrationConfig::keys_of) else {
            continue;
        };
        for (key, _) in keys {
            let Some(name) = key.text() else { continue };
            if !accepted.contains(&name) {
                problems.push(Problem {
                    line: Some(key.at.line),
                    column: key.at.column,
                    message: format!(
                        "unknown field `{name}`, expected one of {}",
                        accepted.join(", ")
                    ),
                });
            }
        }
    }
    problems
}

/// The top-level key `name` of the file and its value.
fn top_level<'a>(tree: &'a Node, name: &str) -> Option<(&'a Node, &'a Node)> {
    match &tree.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(key, _)| key.text() == Some(name))
            .map(|(key, value)| (key, value)),
        _ => None,
    }
}
