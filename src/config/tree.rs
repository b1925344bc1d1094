//! The config file as a located tree (every key and scalar with its line and column), read
//! before the typed parse, so that problems can be placed where serde loses the position:
//! `${VAR}` references, and errors inside a `type:`-tagged integration entry, which serde
//! buffers as a whole and reports at the entry's first line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node starts: 1-based line and column, and the byte offset when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub byte: Option<usize>,
}

/// One YAML node with its position.
#[derive(Debug)]
pub struct Node {
    pub at: Position,
    pub value: Value,
}

/// What a node holds. Scalars keep their text (`${…}` unexpanded: the tree is read without
/// the environment).
#[derive(Debug)]
pub enum Value {
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Scalar(String),
    Null,
}

impl Node {
    /// Reads `text` into a tree; `None` when it is not YAML (the typed parse then says why).
    pub fn parse(text: &str) -> Option<Node> {
        let spanned: Spanned<Raw> = serde_saphyr::from_str(text).ok()?;
        Some(Node::from(spanned))
    }

    /// The scalar text of a node, if it is one.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// Every scalar value (not keys) in this subtree, in document order.
    pub fn scalars(&self, out: &mut Vec<(Position, String)>) {
        match &self.value {
            Value::Scalar(text) => out.push((self.at, text.clone())),
            Value::Map(entries) => entries.iter().for_each(|(_, value)| value.scalars(out)),
            Value::Seq(items) => items.iter().for_each(|item| item.scalars(out)),
            Value::Null => {}
        }
    }

    /// The mapping that starts at `line`/`column`, anywhere in this subtree.
    pub fn map_at(&self, line: u32, column: u32) -> Option<&Node> {
        if matches!(self.value, Value::Map(_)) && self.at.line == line && self.at.column == column {
            return Some(self);
        }
        self.children().find_map(|child| child.map_at(line, column))
    }

    /// The key that starts at `line`/`column`, anywhere in this subtree.
    pub fn key_at(&self, line: u32, column: u32) -> Option<&Node> {
        if let Value::Map(entries) = &self.value
            && let Some((key, _)) = entries
                .iter()
                .find(|(key, _)| key.at.line == line && key.at.column == column)
        {
            return Some(key);
        }
        self.children().find_map(|child| child.key_at(line, column))
    }

    /// The first key called `name` in this subtree (depth first), with its value.
    pub fn find_key(&self, name: &str) -> Option<(&Node, &Node)> {
        if let Value::Map(entries) = &self.value
            && let Some((key, value)) = entries.iter().find(|(key, _)| key.text() == Some(name))
        {
            return Some((key, value));
        }
        self.children().find_map(|child| child.find_key(name))
    }

    /// The key whose scalar value is exactly `text`, in this subtree.
    pub fn key_of_value(&self, text: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find_map(|(key, value)| {
                if value.text() == Some(text) {
                    Some(key)
                } else {
                    value.key_of_value(text)
                }
            }),
            Value::Seq(items) => items.iter().find_map(|item| {
                // A list item has no key of its own: the item itself is the place.
                if item.text() == Some(text) {
                    Some(item)
                } else {
                    item.key_of_value(text)
                }
            }),
            _ => None,
        }
    }

    fn children(&self) -> Box<dyn Iterator<Item = &Node> + '_> {
        match &self.value {
            Value::Map(entries) => Box::new(entries.iter().map(|(_, value)| value)),
            Value::Seq(items) => Box::new(items.iter()),
            _ => Box::new(std::iter::empty()),
        }
    }
}

impl From<Spanned<Raw>> for Node {
    fn from(spanned: Spanned<Raw>) -> Self {
        let location = spanned.referenced;
        let at = Position {
            line: location.line() as u32,
            column: location.column() as u32,
            byte: location.span().byte_offset().map(|b| b as usize),
        };
        let value = match spanned.value {
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Node::from(k), Node::from(v)))
                    .collect(),
            ),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(Node::from).collect()),
            Raw::Scalar(text) => Value::Scalar(text),
            Raw::Null => Value::Null,
        };
        Node { at, value }
    }
}

/// The shape serde reads; [`Node`] adds the positions.
enum Raw {
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
    Seq(Vec<Spanned<Raw>>),
    Scalar(String),
    Null,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}
