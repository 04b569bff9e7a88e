//! What pbibatch knows about the terminal it writes to, in one place: whether to colour, how
//! many columns a text takes (a CJK character or an emoji takes two, a colour code none), how to
//! shorten a text to a width, and the one plain table layout the commands print.

use std::io::IsTerminal;

/// Colour on stderr: only on a terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
pub(crate) fn color_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The width of the terminal on stderr, `None` when stderr is not one (logs, CI, Kestra:
/// tables are then printed whole).
pub(crate) fn stderr_width() -> Option<usize> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
}

/// The columns `text` takes on a terminal: wide characters count two, colour codes nothing.
pub(crate) fn width(text: &str) -> usize {
    console::measure_text_width(text)
}

/// `text` cut to `max` columns, the last one `…`; unchanged when it fits.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    console::truncate_str(text, max, "…").into_owned()
}

/// Rows as left-aligned columns separated by `gap` spaces, each column as wide as its widest
/// cell (in terminal columns, see [`width`]); the last cell of a row is not padded and
/// trailing spaces are trimmed. Rows may have fewer cells than others.
pub(crate) fn table<R: AsRef<[C]>, C: AsRef<str>>(rows: &[R], gap: usize) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (c, cell) in row.as_ref().iter().enumerate() {
            widths[c] = widths[c].max(width(cell.as_ref()));
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells = row.as_ref();
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            line.push_str(cell);
            if c + 1 < cells.len() {
                line.push_str(&" ".repeat(widths[c] - width(cell) + gap));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_text_is_measured_in_columns() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("販売"), 4);
        assert_eq!(width("\u{1b}[31mred\u{1b}[0m"), 3);
    }

    #[test]
    fn a_table_aligns_wide_text() {
        let rows = [
            vec!["販売", "Sales"],
            vec!["workspace", "id"],
            vec!["x", "y", "z"],
        ];
        let text = table(&rows, 2);
        let starts: Vec<usize> = text
            .lines()
            .zip(["Sales", "id", "y"])
            .map(|(l, second)| width(&l[..l.find(second).unwrap()]))
            .collect();
        assert_eq!(starts, vec![11, 11, 11], "{text}");
        assert!(text.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn shorten_cuts_to_columns() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
        assert_eq!(width(&shorten("販売販売販売", 5)), 5);
    }
}
