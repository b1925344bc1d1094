//! `${VAR}` values stay text. The parser reads an expanded plain scalar as YAML would read it
//! written out, so `API_TOKEN=12345678` became an integer (and `true`, `null`, `1e5` a boolean,
//! nothing, a float) wherever serde buffers the value before it knows the field's type: inside
//! every integration entry (`type:`-tagged and flattened). Each plain scalar that holds a
//! reference is therefore given YAML's non-specific tag `!`, which keeps it a string in a buffer
//! while a field that asks for a number or a boolean still reads one. A buffered field that
//! wants a number then sees a string: that one value loses its tag and is read as before.

use super::env;
use super::tree::{Node, Position, Value};

/// The tag, with the space that separates it from the value.
const TAG: &str = "! ";
/// Its width in columns.
const WIDTH: u32 = TAG.len() as u32;

/// The scalars that are tagged, by their line and column in the file as written.
#[derive(Debug, Default)]
pub struct Tagged {
    at: Vec<(u32, u32)>,
}

impl Tagged {
    /// Every plain scalar value of `tree` that holds a `${…}` reference (quoted and block ones
    /// are refused by [`env::check`], keys are never expanded, and a value with a tag of its
    /// own keeps it).
    pub fn new(tree: &Node, source: &str) -> Self {
        let mut scalars = Vec::new();
        tree.scalars(&mut scalars);
        let mut at: Vec<(u32, u32)> = scalars
            .into_iter()
            .filter(|(at, text)| {
                env::has_references(text) && env::is_plain(at, source) && !has_own_tag(at, source)
            })
            .map(|(at, _)| (at.line, at.column))
            .collect();
        at.sort_unstable();
        Self { at }
    }

    /// `lines` joined, with the tag before every tagged scalar still there (a blanked line has
    /// nothing left to tag).
    pub fn apply(&self, lines: &[String]) -> String {
        let mut out: Vec<String> = lines.to_vec();
        for &(line, column) in self.at.iter().rev() {
            let Some(text) = out.get_mut(line as usize - 1) else {
                continue;
            };
            let byte = text
                .char_indices()
                .nth(column as usize - 1)
                .filter(|(_, c)| !c.is_whitespace())
                .map(|(byte, _)| byte);
            if let Some(byte) = byte {
                text.insert_str(byte, TAG);
            }
        }
        out.join("\n")
    }

    /// The column in the file as written of `column` on `line` of the tagged text.
    pub fn original_column(&self, line: u32, column: u32) -> u32 {
        let mut shift = 0;
        for &(_, at) in self.at.iter().filter(|(l, _)| *l == line) {
            let tagged = at + shift;
            if column >= tagged + WIDTH {
                shift += WIDTH;
            } else if column >= tagged {
                return at;
            } else {
                break;
            }
        }
        column - shift
    }

    /// Takes the tag off the scalar that `message` (an "invalid type: string" error, which
    /// means the field wants a number or a boolean) is about, found at `line`/`column` (file
    /// columns) or inside the entry that starts there; `false` when no tagged scalar fits.
    pub fn untag_wanted_as_non_text(
        &mut self,
        tree: &Node,
        line: u32,
        column: u32,
        message: &str,
    ) -> bool {
        let Some(rest) = message.strip_prefix("invalid type: string \"") else {
            return false;
        };
        let Some(quoted) = rest.split('"').next() else {
            return false;
        };
        let within = tree.map_at(line, column);
        let place = match within.and_then(|entry| scalar_with_text(entry, quoted)) {
            Some(node) => (node.at.line, node.at.column),
            None => (line, column),
        };
        let before = self.at.len();
        self.at.retain(|at| *at != place);
        self.at.len() < before
    }

    /// How many scalars are tagged.
    pub fn len(&self) -> usize {
        self.at.len()
    }
}

/// Whether a tag (`!!str`, `!`) or an anchor (`&a`) is written before the scalar at `at`.
fn has_own_tag(at: &Position, source: &str) -> bool {
    let before = at.byte.and_then(|byte| source.get(..byte)).unwrap_or("");
    before
        .trim_end_matches([' ', '\t'])
        .rsplit([' ', '\t', '\n'])
        .next()
        .is_some_and(|token| token.starts_with(['!', '&']))
}

/// The first scalar value in `node`'s subtree whose text is `text`.
fn scalar_with_text<'a>(node: &'a Node, text: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Scalar(own) => (own == text).then_some(node),
        Value::Map(entries) => entries
            .iter()
            .find_map(|(_, value)| scalar_with_text(value, text)),
        Value::Seq(items) => items.iter().find_map(|item| scalar_with_text(item, text)),
        Value::Null => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(text: &str) -> (Tagged, String) {
        let tree = Node::parse(text).unwrap();
        let tagged = Tagged::new(&tree, text);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let out = tagged.apply(&lines);
        (tagged, out)
    }

    #[test]
    fn plain_references_are_tagged_and_columns_map_back() {
        let yaml = "a: ${A}\nb:\n  - x${X}y\nc: 'x'\nd: plain\ne: !!str ${E}\nf: &f ${F}\n";
        let (tagged, out) = tagged(yaml);
        assert_eq!(
            out,
            "a: ! ${A}\nb:\n  - ! x${X}y\nc: 'x'\nd: plain\ne: !!str ${E}\nf: &f ${F}"
        );
        assert_eq!(tagged.len(), 2);
        // Line 3 as tagged: `  - ! x${X}y`.
        assert_eq!(tagged.original_column(3, 1), 1);
        assert_eq!(
            tagged.original_column(3, 5),
            5,
            "the tag is the value's place"
        );
        assert_eq!(tagged.original_column(3, 7), 5, "so is the value after it");
        assert_eq!(tagged.original_column(3, 10), 8);
        assert_eq!(tagged.original_column(1, 6), 4);
    }

    #[test]
    fn a_value_wanted_as_a_number_loses_its_tag() {
        let (mut tagged, _) = tagged("list:\n  - name: x\n    n: ${N}\n    s: ${S}\n");
        assert!(tagged.untag_wanted_as_non_text(
            &Node::parse("list:\n  - name: x\n    n: ${N}\n    s: ${S}\n").unwrap(),
            2,
            5,
            "invalid type: string \"${N}\", expected usize"
        ));
        assert_eq!(tagged.at, [(4, 8)]);
    }
}
