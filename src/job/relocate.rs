//! Where a structural problem really is, when the YAML reader points elsewhere.
//!
//! serde reports a missing `type` after it has read the whole step, at the step's last key,
//! and the YAML scanner reports a tab in indentation at the end of the line before it. Both
//! send a new user to an unrelated line; these helpers find the step's id and the tab.

use crate::job::raw::RawStepType;

/// A step's missing `type`: the id of the step around `offset`, where that id starts, and
/// the help listing the types.
pub(super) fn step_without_type(text: &str, offset: usize) -> Option<(usize, String, String)> {
    let (at, id) = enclosing_key(text, offset)?;
    let types: Vec<&str> = RawStepType::ALL.iter().map(|t| t.name()).collect();
    let help = format!("add `type:`, one of: {}", types.join(", "));
    Some((at, id, help))
}

/// The key whose value holds `offset`: the last unclosed `{` before it on a flow mapping,
/// else the nearest line above that is indented less than the line of `offset`.
fn enclosing_key(text: &str, offset: usize) -> Option<(usize, String)> {
    let offset = offset.min(text.len());
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].split('\n').next().unwrap_or("");
    let indent = line.len() - line.trim_start_matches(' ').len();
    // A flow mapping open on this line before the offset: its key precedes the `{`.
    let mut open = Vec::new();
    for (i, b) in text[line_start + indent..offset].bytes().enumerate() {
        match b {
            b'{' => open.push(line_start + indent + i),
            b'}' => {
                open.pop();
            }
            _ => {}
        }
    }
    if let Some(&brace) = open.first() {
        return key_ending_at(text, brace);
    }
    // Block mapping: walk up to the first non-blank, non-comment line indented less.
    let mut end = line_start;
    while end > 0 {
        let start = text[..end - 1].rfind('\n').map_or(0, |i| i + 1);
        let above = text[start..end - 1].trim_end_matches('\r');
        let body = above.trim_start_matches(' ');
        let depth = above.len() - body.len();
        if !body.is_empty() && !body.starts_with('#') && depth < indent {
            let key_len = body.find(':')?;
            let key = body[..key_len].trim().trim_matches(['"', '\'']);
            return (!key.is_empty()).then(|| (start + depth, key.to_string()));
        }
        end = start;
    }
    None
}

/// The plain key written right before the `:` that precedes `value_at` (`key: {`).
fn key_ending_at(text: &str, value_at: usize) -> Option<(usize, String)> {
    let head = text.get(..value_at)?.trim_end_matches(' ');
    let head = head.strip_suffix(':')?.trim_end_matches(' ');
    let start = head.rfind([' ', '{', ',', '\n']).map_or(0, |i| i + 1);
    let key = head[start..].trim_matches(['"', '\'']);
    (!key.is_empty()).then(|| (start, key.to_string()))
}

/// The first tab of the line after `offset`'s line, when the scanner pointed at the line
/// before it (its end), else a tab in indentation of `offset`'s own line; `None` when
/// neither line starts with whitespace holding a tab.
pub(super) fn tab_in_indentation(text: &str, offset: usize) -> Option<usize> {
    let offset = offset.min(text.len());
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let leading_tab = |start: usize| -> Option<usize> {
        let line = text[start..].split('\n').next().unwrap_or("");
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        line[..lead].find('\t').map(|i| start + i)
    };
    if let Some(at) = leading_tab(line_start) {
        return Some(at);
    }
    let next = text[offset..].find('\n').map(|i| offset + i + 1)?;
    leading_tab(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_of_a_block_or_flow_mapping_is_found() {
        let text = "steps:\n  first:\n    workspace: W\n\n    # note\n    dataset: D\n";
        let at = text.find("dataset").unwrap();
        assert_eq!(
            enclosing_key(text, at),
            Some((text.find("first").unwrap(), "first".into()))
        );
        let text = "steps:\n  b: { workspace: W, dataset: { x: 1 }, tags: [a] }\n";
        let at = text.find("tags").unwrap();
        assert_eq!(
            enclosing_key(text, at),
            Some((text.find("b:").unwrap(), "b".into()))
        );
    }

    #[test]
    fn a_tab_is_found_on_its_own_line() {
        let text = "a:\n  b: 1\n\tc: 2\n";
        // The scanner's position: the end of the line before the tab.
        let at = text.find("1\n").unwrap() + 1;
        assert_eq!(tab_in_indentation(text, at), Some(text.find('\t').unwrap()));
        let text = "a:\n\tb: 1\n";
        assert_eq!(tab_in_indentation(text, 4), Some(3));
        assert_eq!(tab_in_indentation("a: 1\nb: 2\n", 2), None);
    }
}
