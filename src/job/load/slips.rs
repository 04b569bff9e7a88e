//! The deserializer's errors, read against the text: which entry of the file an error is
//! about (to blank it out and read on), where it should point (a missing `type` at the step's
//! id, a tab at the tab), and the message said the way a job file's author thinks of it.

use crate::job::diag::Code;
use crate::job::relocate;

/// The code of one of the deserializer's complaints (its message as it gave it): the
/// reader says what went wrong only in words.
pub(super) fn classify(message: &str) -> Code {
    if message.starts_with("unknown field `") {
        Code::UnknownKey
    } else if message.starts_with("duplicate mapping key `") {
        Code::DuplicateKey
    } else if message.starts_with("missing field `") {
        Code::MissingKey
    } else if message.starts_with("unknown variant `") {
        Code::UnknownValue
    } else if message.starts_with("YAML document too large or too complex")
        || message.contains("recursion limit exceeded")
    {
        Code::TooComplex
    } else if is_bad_value(message) {
        Code::WrongType
    } else {
        Code::YamlSyntax
    }
}

/// Points a missing step `type` at the step's id and a tab at the tab (the reader points
/// at the step's last key and at the end of the line before the tab).
pub(super) fn relocate(
    text: &str,
    offset: usize,
    len: usize,
    message: String,
    help: Option<String>,
) -> (usize, usize, String, Option<String>) {
    if message == "missing field `type`"
        && let Some((at, id, help)) = relocate::step_without_type(text, offset)
    {
        return (
            at,
            id.len(),
            format!("step `{id}` has no `type`"),
            Some(help),
        );
    }
    if message.contains("found a tab") || message.starts_with("tabs disallowed") {
        let at = relocate::tab_in_indentation(text, offset).unwrap_or(offset);
        return (
            at,
            1,
            "a tab in indentation".into(),
            Some("YAML indents with spaces only: replace the tab with spaces".into()),
        );
    }
    (offset, len, message, help)
}

/// True for the deserializer's complaints about one value (an unknown enum word, a wrong type
/// or shape), as opposed to YAML syntax errors, after which the text cannot be trusted.
pub(super) fn is_bad_value(message: &str) -> bool {
    const INTEGERS: [&str; 8] = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"];
    [
        "unknown variant `",
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "expected mapping start",
        "expected sequence start",
        "expected string scalar",
    ]
    .iter()
    .any(|p| message.starts_with(p))
        || message
            .strip_prefix("invalid ")
            .is_some_and(|ty| INTEGERS.contains(&ty.trim()))
}

/// The plain key at `at` when a `:` follows it (some complaints point at the key, not the value).
pub(super) fn key_at(text: &str, at: usize) -> Option<(usize, String)> {
    let rest = text.get(at..)?;
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let key = &rest[..len];
    let colon = rest[len..].trim_start_matches(' ').starts_with(':');
    (!key.is_empty() && colon).then(|| (at, key.to_string()))
}

/// The plain key right before the value at `value_at` (`key: value`), and where it starts.
pub(super) fn key_before(text: &str, value_at: usize) -> Option<(usize, String)> {
    let before = text.get(..value_at)?.trim_end_matches(' ');
    let head = before.strip_suffix(':')?.trim_end_matches(' ');
    let start = head.rfind([' ', '{', ',', '\n']).map_or(0, |i| i + 1);
    let key = &head[start..];
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain.then(|| (start, key.to_string()))
}

/// The bytes of the mapping entry whose key `key` starts at `at`: a block entry (the key
/// first on its line) with every more-indented line under it, or a flow entry (after `{` or
/// `,`) up to the next `,` (included) or `}` of its level. `None` when it is neither, or the
/// key is not where the deserializer said.
pub(super) fn entry_extent(text: &str, at: usize, key: &str) -> Option<std::ops::Range<usize>> {
    let rest = text.get(at..)?;
    let unquoted = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
    if !unquoted.starts_with(key) {
        return None;
    }
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    if before.bytes().all(|b| b == b' ') {
        // Block entry: this line and every following line that is blank, a comment, more
        // indented, or a `- ` item at the key's own indentation (a compact sequence value).
        let indent = before.len();
        let mut end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        while end < text.len() {
            let next_start = end + 1;
            let next_end = text[next_start..]
                .find('\n')
                .map_or(text.len(), |i| next_start + i);
            let line = text[next_start..next_end].trim_end_matches('\r');
            let body = line.trim_start_matches(' ');
            let depth = line.len() - body.len();
            let belongs = body.is_empty()
                || body.starts_with('#')
                || depth > indent
                || (depth == indent && (body == "-" || body.starts_with("- ")));
            if !belongs {
                break;
            }
            end = next_end;
        }
        return Some(at..end);
    }
    if !matches!(before.trim_end().chars().last(), Some('{' | ',')) {
        return None;
    }
    // Flow entry: up to the `,` or `}` that closes it, skipping nested collections and quotes.
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let bytes = text.as_bytes();
    let mut i = at;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b'}' => return Some(at..i),
                b',' if depth == 0 => return Some(at..i + 1),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// Rewrites serde's `unknown field/variant` messages into ours, with a did-you-mean.
pub(super) fn improve_message(message: &str) -> (String, Option<String>) {
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, tail)) = rest.split_once('`') else {
            continue;
        };
        let expected: Vec<&str> = tail
            .split_once("expected one of ")
            .or_else(|| tail.split_once("expected "))
            .map(|(_, list)| {
                list.split(", ")
                    .map(|s| s.trim_matches('`').trim())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let help = match crate::suggest::did_you_mean(found, expected.iter().copied()) {
            Some(best) => Some(crate::suggest::hint(best)),
            None if !expected.is_empty() => {
                Some(format!("expected one of: {}", expected.join(", ")))
            }
            None => None,
        };
        return (format!("unknown {what} `{found}`"), help);
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return (
            format!("duplicate key `{key}`"),
            Some("a key may appear once per mapping (step ids are unique)".into()),
        );
    }
    match message {
        "expected mapping start" => {
            return (
                "expected a mapping (`key: value` lines or `{ key: value }`)".into(),
                None,
            );
        }
        "expected sequence start" => {
            return ("expected a list (`[a, b]` or `- item` lines)".into(), None);
        }
        "expected string scalar" => return ("expected a single text value".into(), None),
        _ => {}
    }
    let integer = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"];
    if let Some(ty) = message.strip_prefix("invalid ")
        && integer.contains(&ty.trim())
    {
        return ("expected an integer".into(), None);
    }
    if message.starts_with("YAML document too large or too complex")
        || message.contains("recursion limit exceeded")
    {
        return (
            "the job file is too large or too deeply nested".into(),
            Some(message.to_string()),
        );
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_for_unknown_keys() {
        let (m, h) =
            improve_message("unknown field `stesp`, expected one of `version`, `name`, `steps`");
        assert_eq!(m, "unknown key `stesp`");
        assert_eq!(h.as_deref(), Some("did you mean `steps`?"));
        let (m, h) = improve_message(
            "unknown variant `datset`, expected one of sas_flow, dataflow, dataset, report",
        );
        assert_eq!(m, "unknown value `datset`");
        assert_eq!(h.as_deref(), Some("did you mean `dataset`?"));
    }

    #[test]
    fn complaints_get_their_codes() {
        assert_eq!(
            classify("unknown field `stesp`, expected one of `steps`"),
            Code::UnknownKey
        );
        assert_eq!(
            classify("unknown variant `datset`, expected one of dataset"),
            Code::UnknownValue
        );
        assert_eq!(classify("duplicate mapping key `a`"), Code::DuplicateKey);
        assert_eq!(classify("missing field `name`"), Code::MissingKey);
        assert_eq!(
            classify("invalid type: sequence, expected u32"),
            Code::WrongType
        );
        assert_eq!(
            classify("mapping values are not allowed in this context"),
            Code::YamlSyntax
        );
    }
}
