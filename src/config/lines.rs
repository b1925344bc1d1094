//! Edits of the config text by line, for the repeated parse in [`super::collect`]: the list
//! item around a line, and blanking a key with what is nested under it. Line numbers are
//! 1-based and never change: blanked lines stay, empty.

use std::ops::RangeInclusive;

/// The lines of the innermost list item of mappings (`- key: …`) that holds 1-based `line`.
pub fn enclosing_entry(lines: &[String], line: u32) -> Option<RangeInclusive<u32>> {
    let index = (line as usize).checked_sub(1)?;
    let indent_of = |l: &String| l.len() - l.trim_start().len();
    let mut below = indent_of(lines.get(index)?) + 1;
    for start in (0..=index).rev() {
        let text = &lines[start];
        if text.trim().is_empty() || indent_of(text) >= below {
            continue;
        }
        if text.trim_start().starts_with("- ") {
            return entry_span(lines, start as u32 + 1);
        }
        below = indent_of(text);
    }
    None
}

/// The lines of the list item that starts on 1-based `line` (`- key: …` and what is indented
/// under it), or `None` when that line does not start a list item.
pub fn entry_span(lines: &[String], line: u32) -> Option<RangeInclusive<u32>> {
    let index = (line as usize).checked_sub(1)?;
    let text = lines.get(index)?;
    let indent = text.len() - text.trim_start().len();
    if !text.trim_start().starts_with("- ") {
        return None;
    }
    let last = lines[index + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent)
        .map_or(lines.len(), |offset| index + 1 + offset);
    Some(line..=last as u32)
}

/// Blanks the key on 1-based `line` and every more-indented line under it, keeping a list
/// item's `-` so that the rest of its mapping stays in place (or, with `whole_entry`, the
/// whole list item). Returns the key's name and the line of the parent key whose value may
/// now be empty; `None` when there was nothing to blank.
pub fn blank(
    lines: &mut [String],
    line: u32,
    whole_entry: bool,
) -> Option<(Option<String>, Option<u32>)> {
    let index = (line as usize).checked_sub(1)?;
    let text = lines.get(index)?.clone();
    let indent = text.len() - text.trim_start().len();
    let rest = text.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let (keep, body, body_indent) = match rest.strip_prefix("- ") {
        Some(_) if whole_entry => (String::new(), "", indent),
        Some(item) => {
            let inner = item.len() - item.trim_start().len();
            (
                format!("{}-", &text[..indent]),
                item.trim_start(),
                indent + 2 + inner,
            )
        }
        None => (String::new(), rest, indent),
    };
    let key = body
        .split_once(':')
        .filter(|(key, after)| !key.contains(' ') && (after.is_empty() || after.starts_with(' ')))
        .map(|(key, _)| key.trim_matches(['"', '\'']).to_owned());
    // A list item without a key (`- value`) goes entirely.
    lines[index] = if key.is_some() { keep } else { String::new() };
    for next in lines.iter_mut().skip(index + 1) {
        let next_indent = next.len() - next.trim_start().len();
        if !next.trim().is_empty() && next_indent <= body_indent {
            break;
        }
        next.clear();
    }
    let parent = lines[..index].iter().rposition(|l| {
        let trimmed = l.trim_start();
        !trimmed.is_empty() && !trimmed.starts_with('#') && l.len() - trimmed.len() < indent
    });
    // Only a `key:` whose value is the block just blanked can have become empty; the start of
    // a list item (`- name: x`) still has its own value.
    let parent = parent.filter(|&p| lines[p].trim_end().ends_with(':'));
    Some((key, parent.map(|p| p as u32 + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_keeps_line_numbers_and_list_markers() {
        let mut lines: Vec<String> = "a:\n  - name: x\n    bad: y\n  - z\nb: 1"
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            blank(&mut lines, 3, false),
            Some((Some("bad".into()), None))
        );
        assert_eq!(
            blank(&mut lines, 2, false),
            Some((Some("name".into()), Some(1)))
        );
        assert_eq!(blank(&mut lines, 4, false), Some((None, Some(1))));
        assert_eq!(lines, ["a:", "  -", "", "", "b: 1"]);
        let mut lines: Vec<String> = "a:\n  - name: x\n    k: y\n  - name: z"
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(blank(&mut lines, 2, true), Some((None, Some(1))));
        assert_eq!(lines, ["a:", "", "", "  - name: z"]);
    }
}
