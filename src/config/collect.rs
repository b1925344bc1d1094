//! The typed parse, made to report every problem at once. Serde stops at the first error, so
//! after each one the offending key (and what is nested under it) is blanked out of a copy of
//! the text, keeping every line number, and the parse runs again. Errors that only follow from
//! an earlier one (a blanked key's parent, a line with a bad `${VAR}`) are not reported.
//!
//! Generic over the target type: it relies only on the error's location and message, and on
//! the located tree to place errors that serde reports at the start of a buffered (`type:`-
//! tagged) entry at the line of the key they are about.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;

use super::as_text::Tagged;
use super::env;
use super::lines::{blank, enclosing_entry};
use super::tree::Node;

/// What a missing variable stands for while the rest of the file is checked.
const PLACEHOLDER: &str = "http://unset.invalid/";

/// At most this many problems are collected; a file with more is reported in part.
const MAX_PROBLEMS: usize = 50;

/// One problem, at a line and column when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<u32>,
    pub column: u32,
    pub message: String,
}

impl Problem {
    /// `{source}:{line}:{column}: {message}`, as compilers print it (editors jump there).
    pub fn render(&self, source: &str) -> String {
        match self.line {
            Some(line) => format!("{source}:{line}:{}: {}", self.column, self.message),
            None => format!("{source}: {}", self.message),
        }
    }
}

/// Parses `text` as `T` with `${VAR}` from `env`; on failure, every problem found, in line order.
/// `keys` finds the problems with keys that the typed parse would report late or vaguely: each
/// one's key is taken out before that parse.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    env: &HashMap<String, String>,
    keys: impl Fn(&Node) -> Vec<Problem>,
) -> Result<T, Vec<Problem>> {
    let tree = Node::parse(text);
    let (problems, key_problems): (Vec<Problem>, Vec<Problem>) = match &tree {
        Some(tree) => (
            env::check(tree, text, env)
                .into_iter()
                .map(|p| Problem {
                    line: Some(p.at.line),
                    column: p.at.column,
                    message: p.message,
                })
                .collect(),
            keys(tree),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // Missing variables are reported above; for the parse they get a stand-in that most fields
    // take (a URL is also a valid string), so that the rest of their entry is still checked.
    // Where the stand-in does not fit, the error lands on a line already reported.
    let mut parse_env = env.clone();
    if let Some(tree) = &tree {
        for name in env::unset(tree, env) {
            parse_env.insert(name, PLACEHOLDER.to_owned());
        }
    }
    let mut tagged = tree
        .as_ref()
        .map(|tree| Tagged::new(tree, text))
        .unwrap_or_default();
    let mut pass = Pass {
        settled: problems.iter().filter_map(|p| p.line).collect(),
        problems,
        blanked_keys: Vec::new(),
        lines: text.lines().map(str::to_owned).collect(),
    };
    for problem in key_problems {
        if let Some(line) = problem.line {
            pass.settle(line, problem.column);
        }
        pass.problems.push(problem);
    }
    // Every round blanks a line or takes a tag off, so this many rounds always suffice.
    for _ in 0..=pass.lines.len() + tagged.len() {
        let source = tagged.apply(&pass.lines);
        let options = serde_saphyr::options! {}.with_properties(parse_env.clone());
        let error = match serde_saphyr::from_str_with_options::<T>(&source, options) {
            Ok(value) if pass.problems.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(error) => error,
        };
        // Text that is not YAML cannot usefully be parsed again.
        let Some(tree) = &tree else {
            pass.record(&Found::of(&error, &tagged));
            break;
        };
        let error = unmask::<T>(&source, &error, &parse_env).unwrap_or(error);
        let found = Found::of(&error, &tagged).naming_the_key(tree);
        if let Some((line, column)) = found.at
            && tagged.untag_wanted_as_non_text(tree, line, column, &found.message)
        {
            continue;
        }
        if !pass.step(tree, &found) || pass.problems.len() >= MAX_PROBLEMS {
            break;
        }
    }
    let mut problems = pass.problems;
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    Err(problems)
}

/// An error of the typed parse, placed in the file as written.
struct Found {
    /// Line and column, when the parser knows them.
    at: Option<(u32, u32)>,
    /// The sentence, without the parser's trailing position.
    message: String,
}

impl Found {
    fn of(error: &serde_saphyr::Error, tagged: &Tagged) -> Self {
        let at = error
            .location()
            .filter(|at| at.line() > 0)
            .map(|at| (at.line() as u32, at.column() as u32))
            .map(|(line, column)| (line, tagged.original_column(line, column)));
        Self {
            at,
            message: explain(error),
        }
    }

    /// Once a `${VAR}` value has been read, the parser withholds an unknown key's name (it
    /// cannot tell a key from an expanded value); keys are never expanded, so the key at the
    /// error's place is named.
    fn naming_the_key(mut self, tree: &Node) -> Self {
        const WITHHELD: &str = "unknown field `an interpolated field`";
        if self.message.contains(WITHHELD)
            && let Some((line, column)) = self.at
            && let Some(key) = tree.key_at(line, column).and_then(Node::text)
        {
            self.message = self
                .message
                .replace(WITHHELD, &format!("unknown field `{key}`"));
        }
        self
    }
}

/// The parser hides any error inside an entry that holds a `${VAR}` value behind "invalid
/// interpolated scalar value" (it cannot tell whether the real message would quote a secret),
/// and an unknown key's name behind "an interpolated field", or with an expanded value's text
/// in it, so a key typo in such an entry read as a bad variable. Parsing the entry again with
/// its `${…}` replaced by a stand-in shows the real error; it is used when it is about the
/// entry's shape (an unknown or missing key, an unknown `type:`), which quotes no value.
fn unmask<T: DeserializeOwned>(
    source: &str,
    error: &serde_saphyr::Error,
    env: &HashMap<String, String>,
) -> Option<serde_saphyr::Error> {
    let message = error.to_string();
    let masked = message.contains("invalid interpolated scalar value")
        || message.contains("an interpolated field")
        || message.contains("an interpolated variant")
        || quoted_after(&message, "unknown field `").is_some_and(|field| field.contains("${"));
    if !masked {
        return None;
    }
    let line = error.location()?.line() as u32;
    let lines: Vec<String> = source.lines().map(str::to_owned).collect();
    let span = enclosing_entry(&lines, line)?;
    let text: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(index, text)| match span.contains(&(index as u32 + 1)) {
            true => env::replace_references(text, PLACEHOLDER),
            false => text.clone(),
        })
        .collect();
    let options = serde_saphyr::options! {}.with_properties(env.clone());
    let real = serde_saphyr::from_str_with_options::<T>(&text.join("\n"), options).err()?;
    let message = real.to_string();
    let about_shape = ["unknown field `", "missing field `", "unknown variant `"]
        .iter()
        .any(|shape| message.contains(shape));
    let inside = real
        .location()
        .is_some_and(|at| span.contains(&(at.line() as u32)));
    (about_shape && inside).then_some(real)
}

/// The state of the repeated parse.
struct Pass {
    problems: Vec<Problem>,
    /// Lines whose errors are consequences of a problem already reported.
    settled: HashSet<u32>,
    /// Keys blanked so far: their `missing field` errors are consequences too.
    blanked_keys: Vec<String>,
    /// The text, with blanked lines empty.
    lines: Vec<String>,
}

impl Pass {
    fn record(&mut self, found: &Found) {
        self.problems.push(Problem {
            line: found.at.map(|(line, _)| line),
            column: found.at.map_or(0, |(_, column)| column),
            message: found.message.clone(),
        });
    }

    /// Blanks the key at `line`/`column`, whose problem is reported, so that the parse goes on
    /// without it; a key inside a flow mapping (`{a: 1, b: 2}`) shares its line with others,
    /// which stay, and serde's word on it is then not repeated.
    fn settle(&mut self, line: u32, column: u32) {
        let starts_line = self.lines.get(line as usize - 1).is_some_and(|text| {
            let body = text.trim_start();
            let body = body.strip_prefix("- ").map_or(body, str::trim_start);
            (text.chars().count() - body.chars().count()) as u32 + 1 == column
        });
        if starts_line && let Some((_, parent)) = blank(&mut self.lines, line, false) {
            self.settled.insert(line);
            self.settled.extend(parent);
        }
    }

    /// Records `found` unless it follows from an earlier problem, then blanks what it is about
    /// so that the next parse goes further; `false` when nothing more can be learnt.
    fn step(&mut self, tree: &Node, found: &Found) -> bool {
        let message = &found.message;
        let Some((line, column)) = found.at else {
            self.record(found);
            return false;
        };
        let missing_field = quoted_after(message, "missing field `").map(str::to_owned);
        let relocated = match missing_field {
            Some(_) => None,
            None => relocate(tree, line, column, message),
        };
        // An error serde could not place on a key is about the list item around it as a whole
        // (serde reads a `type:`-tagged entry at once).
        let entry = match relocated {
            None => enclosing_entry(&self.lines, line),
            Some(_) => None,
        };
        let (line, column) = relocated.unwrap_or((line, column));
        let settled_in_entry = entry.as_ref().and_then(|span| {
            span.clone()
                .find(|l| self.settled.contains(l) && !self.is_blank(*l))
        });
        let reported_here = self
            .problems
            .iter()
            .any(|p| p.line == Some(line) && p.column == column);
        let consequence = reported_here
            || self.settled.contains(&line)
            || self.is_blank(line)
            || settled_in_entry.is_some()
            || missing_field
                .as_ref()
                .is_some_and(|field| self.blanked_keys.contains(field));
        if !consequence {
            self.record(&Found {
                at: Some((line, column)),
                message: message.clone(),
            });
        }
        let (target, whole_entry) = match (settled_in_entry, &entry, &missing_field) {
            // First take away what already has its problem reported, then the entry.
            (Some(settled), _, _) => (settled, false),
            (None, Some(entry), _) => (*entry.start(), true),
            // A missing field outside a list item cannot be blanked away.
            (None, None, Some(_)) => return false,
            (None, None, None) => (line, false),
        };
        match blank(&mut self.lines, target, whole_entry) {
            Some((key, parent)) => {
                self.settled.insert(target);
                self.settled.extend(parent);
                self.blanked_keys.extend(key);
                true
            }
            None => false,
        }
    }

    /// Whether 1-based `line` is empty now (blanked, or past the end).
    fn is_blank(&self, line: u32) -> bool {
        self.lines
            .get(line as usize - 1)
            .is_none_or(|text| text.trim().is_empty())
    }
}

/// The error's sentence without its trailing position, with a hint for the two cases the
/// parser's own words leave open.
fn explain(error: &serde_saphyr::Error) -> String {
    let message = error.without_snippet().to_string();
    let message = match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message,
    };
    if message.contains("missing property `") {
        format!(
            "{message}: `${{NAME}}` is read from the environment: set the variable, or give a default with `${{NAME:-default}}`"
        )
    } else if message.contains("invalid interpolated scalar value") {
        // The parser withholds the reason, since it could quote the value (a secret).
        format!(
            "{message}: a value taken from the environment here is not valid for its field; it is not shown because it may be a secret (webhook secrets are `whsec_` followed by base64)"
        )
    } else {
        message
    }
}

/// Serde reports errors inside a buffered entry at the entry's first key; the tree finds the
/// key the message is about: the unknown field itself, or the key holding the quoted value.
fn relocate(tree: &Node, line: u32, column: u32, message: &str) -> Option<(u32, u32)> {
    let entry = tree.map_at(line, column)?;
    let key = if let Some(field) = quoted_after(message, "unknown field `") {
        entry.find_key(field).map(|(key, _)| key)
    } else {
        // Values are quoted in messages with backticks (ours) or double quotes (the URL parser).
        ['`', '"'].into_iter().find_map(|quote| {
            message
                .split(quote)
                .skip(1)
                .step_by(2)
                .find_map(|value| entry.key_of_value(value))
        })
    }?;
    Some((key.at.line, key.at.column))
}

/// The text between `prefix` and the next backtick.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')?;
    Some(&message[start..start + end])
}
