//! Located problems in one job file, and their three renderings (human, short, JSON).

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

pub use super::code::Code;

/// Most problems rendered with snippets (each snippet scans the text, so thousands of them
/// would be slow and unreadable anyway).
const HUMAN_LIMIT: usize = 50;

/// Longest source line shown in a snippet (a 5 MB one-line file must not be echoed).
const SNIPPET_LINE_LIMIT: usize = 400;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used.
    Error,
    /// The file is usable (e.g. an env var is unset here but may be set at run time).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A byte range of the source plus its 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub offset: usize,
    pub length: usize,
    pub line: usize,
    pub column: usize,
}

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// What kind of problem: stable, for tools to match on (`docs/diagnostics.md`).
    pub code: Code,
    /// Lowercase, one line.
    pub message: String,
    /// Where in the file; `None` for problems of the file as a whole (unreadable) or of the
    /// command line (`--var`).
    pub position: Option<Position>,
    /// Text under the caret.
    pub label: Option<String>,
    /// A hint (did you mean ...).
    pub help: Option<String>,
    /// For a [`Code::MissingKey`] problem: the key that is missing.
    #[serde(skip)]
    pub missing: Option<String>,
}

/// Output formats of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagFormat {
    /// miette's graphical report with source snippets.
    Human,
    /// `path:line:col: error|warning: message`.
    Short,
    /// A JSON array of objects.
    Json,
}

/// All problems of one job file, sorted by position.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file as given on the command line.
    pub path: String,
    source: Arc<str>,
    /// Byte offset of each line's start, for offset -> line lookups.
    line_starts: Vec<usize>,
    items: Vec<Diagnostic>,
}

/// One problem as written in the JSON format.
#[derive(Debug, Serialize)]
struct JsonItem<'a> {
    file: &'a str,
    line: Option<usize>,
    column: Option<usize>,
    offset: Option<usize>,
    length: Option<usize>,
    severity: Severity,
    code: Code,
    message: &'a str,
    label: Option<&'a str>,
    help: Option<&'a str>,
}

impl Diagnostics {
    /// An empty set for `path` whose text is `source`.
    pub fn new(path: impl Into<String>, source: Arc<str>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path: path.into(),
            source,
            line_starts,
            items: Vec::new(),
        }
    }

    /// The problems, sorted by position (file-level ones first).
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// True when at least one problem is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds a problem at a byte range of the source (clamped to the text).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_at(
        &mut self,
        severity: Severity,
        code: Code,
        offset: usize,
        length: usize,
        message: impl Into<String>,
        label: Option<String>,
        help: Option<String>,
    ) {
        let position = Some(self.position(offset, length));
        self.items.push(Diagnostic {
            severity,
            code,
            message: message.into(),
            position,
            label,
            help,
            missing: None,
        });
    }

    /// Adds a problem without a position.
    pub(crate) fn push_global(
        &mut self,
        severity: Severity,
        code: Code,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            code,
            message: message.into(),
            position: None,
            label: None,
            help: None,
            missing: None,
        });
    }

    /// Records that the last problem added says `key` is missing ([`Code::MissingKey`]).
    pub(crate) fn mark_last_missing(&mut self, key: &str) {
        if let Some(d) = self.items.last_mut() {
            d.missing = Some(key.to_string());
        }
    }

    /// Drops the warnings about unset environment variables (`validate --allow-unset-env`).
    pub(crate) fn drop_unset_env(&mut self) {
        self.items.retain(|d| d.code != Code::EnvNotSet);
    }

    /// Rewrites hints: `hint` returns the new help of a problem, or `None` to leave it.
    pub(crate) fn rewrite_help(&mut self, mut hint: impl FnMut(&Diagnostic) -> Option<String>) {
        for d in &mut self.items {
            if let Some(help) = hint(d) {
                d.help = Some(help);
            }
        }
    }

    /// Keeps the problems `keep` says yes to.
    pub fn retain(&mut self, keep: impl FnMut(&Diagnostic) -> bool) {
        self.items.retain(keep);
    }

    /// Moves every problem of `other` in.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Sorts by position (stable, so problems at one place keep their order) and drops exact
    /// repeats.
    pub fn sort(&mut self) {
        self.items
            .sort_by_key(|d| d.position.map_or((0, 0, 0), |p| (1, p.offset, p.length)));
        self.items.dedup_by(|a, b| {
            a.position == b.position && a.message == b.message && a.severity == b.severity
        });
    }

    /// Line and column of a byte offset, clamped to a char boundary inside the text.
    fn position(&self, offset: usize, length: usize) -> Position {
        let text = &*self.source;
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let mut end = offset.saturating_add(length).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let line_start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = text[line_start..offset].chars().count() + 1;
        Position {
            offset,
            length: end - offset,
            line,
            column,
        }
    }

    /// Length in bytes of a 1-based line.
    fn line_len(&self, line: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.source.len());
        end.saturating_sub(start)
    }

    /// Renders every problem in `format`. `color` only affects [`DiagFormat::Human`].
    pub fn render(&self, format: DiagFormat, color: bool) -> String {
        match format {
            DiagFormat::Human => self.render_human(color),
            DiagFormat::Short => self.render_short(),
            DiagFormat::Json => {
                let items = self.json_items();
                serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into()) + "\n"
            }
        }
    }

    /// The problems as JSON values (to merge several files into one array).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.json_items()
            .iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect()
    }

    fn json_items(&self) -> Vec<JsonItem<'_>> {
        self.items
            .iter()
            .map(|d| JsonItem {
                file: &self.path,
                line: d.position.map(|p| p.line),
                column: d.position.map(|p| p.column),
                offset: d.position.map(|p| p.offset),
                length: d.position.map(|p| p.length),
                severity: d.severity,
                code: d.code,
                message: &d.message,
                label: d.label.as_deref(),
                help: d.help.as_deref(),
            })
            .collect()
    }

    fn render_short(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            match d.position {
                Some(p) => out.push_str(&format!(
                    "{}:{}:{}: {}: {}",
                    self.path, p.line, p.column, d.severity, d.message
                )),
                // A problem of the whole file points at its start, so every line keeps the
                // `path:line:col:` form editors' problem matchers expect.
                None => out.push_str(&format!("{}:1:1: {}: {}", self.path, d.severity, d.message)),
            }
            if let Some(help) = &d.help {
                out.push_str(&format!(" ({help})"));
            }
            // Last, so `path:line:col: severity: message` matchers keep working.
            out.push_str(&format!(" [{}]", d.code));
            out.push('\n');
        }
        out
    }

    fn render_human(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        // Control characters (escape sequences, NUL) would reach the terminal through the
        // snippets: show them as `?` (one byte for one byte, so spans stay right).
        let source: Arc<str> = if self
            .source
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            let clean: String = self
                .source
                .chars()
                .map(|c| {
                    if c.is_ascii_control() && c != '\n' && c != '\t' && c != '\r' {
                        '?'
                    } else if c.is_control() && c != '\n' && c != '\t' && c != '\r' {
                        '¿' // C1 controls are two bytes, like this
                    } else {
                        c
                    }
                })
                .collect();
            Arc::from(clean)
        } else {
            Arc::clone(&self.source)
        };
        let mut out = String::new();
        for (i, d) in self.items.iter().enumerate() {
            if i == HUMAN_LIMIT {
                out.push_str(&format!(
                    "{}: {} more problems not shown (use --format short to list them all)\n",
                    self.path,
                    self.items.len() - HUMAN_LIMIT
                ));
                break;
            }
            let location_only = d.position.and_then(|p| {
                (self.line_len(p.line) > SNIPPET_LINE_LIMIT)
                    .then(|| format!("{}:{}:{}", self.path, p.line, p.column))
            });
            let report = Rendered {
                diag: d,
                source: NamedSource::new(&self.path, Arc::clone(&source)),
                location_only,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&format!("{}: {}: {}\n", self.path, d.severity, d.message));
            }
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render_short().trim_end())
    }
}

impl std::error::Error for Diagnostics {}

/// Adapter that shows one [`Diagnostic`] through miette.
struct Rendered<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<Arc<str>>,
    /// `path:line:col` when the snippet is left out (its line is too long to show).
    location_only: Option<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)?;
        if let Some(at) = &self.location_only {
            write!(f, "\n  at {at} (line too long to show)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.location_only.is_some() {
            return None;
        }
        self.diag
            .position
            .map(|_| &self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.location_only.is_some() {
            return None;
        }
        let p = self.diag.position?;
        let span = SourceSpan::from((p.offset, p.length));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.diag.label.clone(),
            span,
        ))))
    }
}
