//! Fitting rendered text into providers' limits: one line, at most so many characters, and a
//! comment body that keeps the hidden marker it is found again by.

/// `text` cut to at most `max` characters (not bytes), ending in `…` when something was cut.
pub fn cut(text: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let keep = text
                .char_indices()
                .nth(max - 1)
                .map_or(text.len(), |(index, _)| index);
            format!("{}…", &text[..keep])
        }
    }
}

/// `text` on one line: line breaks and tabs become spaces, other control characters go, and
/// surrounding whitespace is trimmed (a status description is one line).
pub fn one_line(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A comment's body: `rendered` cut so that it and the hidden `marker` fit in `max` characters,
/// then the marker on a line of its own (the comment is found again by it).
pub fn with_marker(rendered: &str, marker: &str, max: usize) -> String {
    let room = max - marker.chars().count() - 2;
    format!("{}\n\n{marker}", cut(rendered.trim_end(), room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_characters_and_marks_the_cut() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("ééééé", 4).chars().count(), 4);
        assert_eq!(cut("x".repeat(500).as_str(), 140).chars().count(), 140);
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn one_line_removes_breaks_and_controls() {
        assert_eq!(one_line("  a\nb\r\tc\u{7} "), "a b  c");
    }
}
