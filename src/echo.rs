//! Producer text made safe to echo: bounded in length, with control characters escaped, for
//! error messages, dead-letter headers, log fields and terminal output.
//!
//! A producer decides what a message holds, so any of its text quoted back by the worker (an
//! unknown `type`, a branch in a skip reason, a header name) must not grow what quotes it: a
//! 600 KB attribute once made a dead letter's header exceed the broker's frame limit, which
//! closed the connection. Control characters are escaped so that nothing a producer writes
//! moves a terminal's cursor, clears it, or splits a log line.

use std::fmt;

/// At most this many characters of one producer value are echoed (escapes count as written).
pub const VALUE_CHARS: usize = 256;

/// At most this many characters of a whole message that may quote producer text (a parse
/// error from serde, a dead letter's reason) are echoed.
pub const MESSAGE_CHARS: usize = 1024;

/// One producer value as it may be echoed: control characters escaped, and when longer than
/// [`VALUE_CHARS`], its start followed by `… (N bytes)`, N being the value's whole size.
pub fn value(text: &str) -> Echo<'_> {
    Echo {
        text,
        limit: VALUE_CHARS,
        keep_end: false,
    }
}

/// A message that may quote producer text anywhere inside (such as serde's ``unknown variant
/// `…`, expected one of …``): control characters escaped, and when longer than
/// [`MESSAGE_CHARS`], its start and its end with `… (N bytes cut) …` between, so what was
/// expected, said last, is kept.
pub fn message(text: &str) -> Echo<'_> {
    Echo {
        text,
        limit: MESSAGE_CHARS,
        keep_end: true,
    }
}

/// Producer text bounded and escaped when displayed (`format!("{}", echo::value(x))`).
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a> {
    text: &'a str,
    limit: usize,
    keep_end: bool,
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text;
        if fits(text.chars(), self.limit) {
            return write_escaped(f, text);
        }
        if !self.keep_end {
            let head = &text[..prefix_within(text, self.limit)];
            write_escaped(f, head)?;
            return write!(f, "… ({} bytes)", text.len());
        }
        // A quarter for the end: enough for serde's "expected …" after a quoted value.
        let head = &text[..prefix_within(text, self.limit - self.limit / 4)];
        let tail = &text[suffix_within(text, self.limit / 4)..];
        write_escaped(f, head)?;
        write!(
            f,
            "… ({} bytes cut) …",
            text.len() - head.len() - tail.len()
        )?;
        write_escaped(f, tail)
    }
}

/// Whether `chars`, escaped, take at most `limit` characters (stops counting past it).
fn fits(chars: impl Iterator<Item = char>, limit: usize) -> bool {
    let mut used = 0;
    for c in chars {
        used += escaped_len(c);
        if used > limit {
            return false;
        }
    }
    true
}

/// The byte length of the longest start of `text` whose escaped form fits in `limit`
/// characters; always on a character boundary, and never halfway through an escape.
fn prefix_within(text: &str, limit: usize) -> usize {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += escaped_len(c);
        if used > limit {
            return at;
        }
    }
    text.len()
}

/// The byte offset of the longest end of `text` whose escaped form fits in `limit` characters.
fn suffix_within(text: &str, limit: usize) -> usize {
    let mut used = 0;
    for (at, c) in text.char_indices().rev() {
        used += escaped_len(c);
        if used > limit {
            return at + c.len_utf8();
        }
    }
    0
}

/// Characters that must not reach a terminal or a log line as they are: C0 and C1 controls
/// and DEL (ESC, CR, BEL, newlines…), line and paragraph separators, and the bidirectional
/// overrides that make text read differently from what it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How many characters `c` takes once escaped.
fn escaped_len(c: char) -> usize {
    match c {
        '\n' | '\r' | '\t' => 2,
        // `\u{` + hex digits + `}`
        c if needs_escape(c) => 4 + hex_digits(c as u32),
        _ => 1,
    }
}

fn hex_digits(n: u32) -> usize {
    ((32 - n.leading_zeros()).div_ceil(4)).max(1) as usize
}

fn write_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let mut plain = 0;
    for (at, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        f.write_str(&text[plain..at])?;
        match c {
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "\\u{{{:x}}}", c as u32)?,
        }
        plain = at + c.len_utf8();
    }
    f.write_str(&text[plain..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_echoed_as_it_is() {
        for text in ["", "run.finished", "zürich ✓ 日本", "a\\u{1b}b \"quoted\""] {
            assert_eq!(value(text).to_string(), text);
            assert_eq!(message(text).to_string(), text);
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            value("\u{1b}[2J\u{1b}[31mred\rover\u{7}\nnext\tcol\u{0}\u{7f}\u{9b}").to_string(),
            "\\u{1b}[2J\\u{1b}[31mred\\rover\\u{7}\\nnext\\tcol\\u{0}\\u{7f}\\u{9b}"
        );
        assert_eq!(
            value("abc\u{202e}fdp.exe\u{2028}").to_string(),
            "abc\\u{202e}fdp.exe\\u{2028}"
        );
    }

    #[test]
    fn a_long_value_keeps_its_start_and_says_its_size() {
        let text = "x".repeat(600_000);
        let echoed = value(&text).to_string();
        assert_eq!(
            echoed,
            format!("{}… (600000 bytes)", "x".repeat(VALUE_CHARS))
        );
        // Exactly at the limit: unchanged.
        let at_limit = "y".repeat(VALUE_CHARS);
        assert_eq!(value(&at_limit).to_string(), at_limit);
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        // 2, 3 and 4 bytes a character: a byte-based cut would split each.
        for c in ['é', '✓', '🦀'] {
            let text = c.to_string().repeat(1_000);
            let echoed = value(&text).to_string();
            let expected = format!("{}… ({} bytes)", c.to_string().repeat(256), text.len());
            assert_eq!(echoed, expected);
            let echoed = message(&text).to_string();
            assert!(echoed.starts_with(&c.to_string().repeat(768)), "{c}");
            assert!(echoed.ends_with(&c.to_string().repeat(256)), "{c}");
        }
    }

    #[test]
    fn escapes_count_towards_the_limit_and_are_never_split() {
        let text = "\u{1b}".repeat(100);
        let echoed = value(&text).to_string();
        // Each ESC is 6 characters escaped: 42 fit in 256.
        assert_eq!(echoed, format!("{}… (100 bytes)", "\\u{1b}".repeat(42)));
        assert!(!echoed.contains('\u{1b}'));
    }

    #[test]
    fn a_long_message_keeps_its_start_and_end() {
        let quoted = "z".repeat(600_000);
        let serde = format!("invalid type: string \"{quoted}\", expected u64");
        let echoed = message(&serde).to_string();
        assert!(echoed.starts_with("invalid type: string \"zzz"), "{echoed}");
        assert!(echoed.ends_with("zzz\", expected u64"), "{echoed}");
        let cut = serde.len() - 768 - 256;
        assert!(
            echoed.contains(&format!("… ({cut} bytes cut) …")),
            "{echoed}"
        );
        assert!(echoed.chars().count() < MESSAGE_CHARS + 40);
    }
}
