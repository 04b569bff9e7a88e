//! Reading the YAML past its problems: each unknown key, duplicate key or bad value is
//! reported, its entry blanked out (offsets kept) and the text read again, so one `validate`
//! lists them all. YAML syntax errors still stop the reading.

use std::sync::Arc;

use serde_saphyr::{Budget, MessageFormatter, Options, UserMessageFormatter};

use super::slips::{
    classify, entry_extent, improve_message, is_bad_value, key_at, key_before, relocate,
};
use crate::job::diag::{Code, Diagnostics, Severity};
use crate::job::raw::RawJob;

/// What [`parse_raw`] read.
pub(super) struct Parsed {
    pub raw: RawJob,
    /// The errors the reading went past: unknown and duplicate keys, bad values (empty when
    /// there were none).
    pub read_past: Diagnostics,
    /// The keys whose absence those errors explain (a misspelt key, a key whose value was bad).
    pub(super) meant: Vec<Meant>,
    /// Where the unknown keys with no near match are (their help lists every key the
    /// place takes; the loader narrows it to the keys of the step's type).
    pub(super) listed_keys: Vec<usize>,
}

/// A problem at `offset` that also explains why `key` is missing.
pub(super) struct Meant {
    pub(super) offset: usize,
    pub(super) key: String,
}

/// How many problems one reading goes past before it stops (each costs one more parse of the
/// file).
const MAX_READ_PAST: usize = 25;

/// Limits that keep hostile input (alias bombs, deep nesting, huge files) cheap.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = 64;
    budget.flow_nesting_limit = 64;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 1;
    // A 50,000-step job (8 MB) is about 600,000 nodes and 1.2 million events: past the
    // crate's defaults (250,000 / 1,000,000), though nothing about it is hostile. Node and
    // event counts grow linearly with the input, which `max_reader_input_bytes` already
    // bounds; the caps that stop blow-ups (depth, aliases, anchors) stay tight.
    budget.max_nodes = 4_000_000;
    budget.max_events = 8_000_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.alias_limits.max_total_replayed_events = 100_000;
    options.alias_limits.max_replay_stack_depth = 16;
    options.alias_limits.max_alias_expansions_per_anchor = 1_000;
    options
}

/// YAML text -> raw types, with the problems the reading went past (errors; empty when there
/// were none), or, with those, the first problem it could not go past.
///
/// The entry of such a problem (key and value) is overwritten with spaces, which keeps every
/// byte offset, so the raw types read from the blanked text point into `source` as they are.
pub(super) fn parse_raw(name: &str, source: &Arc<str>) -> Result<Parsed, Diagnostics> {
    let mut problems = Diagnostics::new(name, Arc::clone(source));
    let mut meant: Vec<Meant> = Vec::new();
    let mut listed_keys: Vec<usize> = Vec::new();
    if source.trim().is_empty()
        || source
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        problems.push_at(
            Severity::Error,
            Code::EmptyFile,
            0,
            0,
            "the job file is empty",
            Some("expected `version: 1`, `name:` and `steps:`".into()),
            None,
        );
        return Err(problems);
    }
    let mut text: Option<String> = None;
    loop {
        let current = text.as_deref().unwrap_or(source);
        let mut problem = match parse_once(name, source, current) {
            Ok(raw) => {
                return Ok(Parsed {
                    raw,
                    read_past: problems,
                    meant,
                    listed_keys,
                });
            }
            Err(problem) => problem,
        };
        let blank = problem
            .left_out
            .take()
            .filter(|_| problems.items().len() + 1 < MAX_READ_PAST)
            .and_then(|key| {
                let range = entry_extent(current, key.offset, &key.name)?;
                if let Some(suggested) = key.suggested {
                    meant.push(Meant {
                        offset: key.offset,
                        key: suggested,
                    });
                }
                Some(range)
            });
        // A required key that is missing because it was misspelt or its value was bad: the
        // problem already reported says so.
        let echo = problem
            .missing
            .as_ref()
            .is_some_and(|missing| meant.iter().any(|m| &m.key == missing));
        if !echo {
            listed_keys.extend(problem.listed_key);
            problems.extend(problem.diagnostics);
        }
        match blank {
            Some(range) => {
                let mut bytes = current.as_bytes().to_vec();
                for b in &mut bytes[range] {
                    if *b != b'\n' && *b != b'\r' {
                        *b = b' ';
                    }
                }
                // Only whole UTF-8 sequences were replaced, by ASCII spaces.
                text = Some(String::from_utf8(bytes).unwrap_or_default());
            }
            None => {
                if problems.items().len() >= MAX_READ_PAST {
                    problems.push_global(
                        Severity::Error,
                        Code::TooManyProblems,
                        format!(
                            "stopped after {MAX_READ_PAST} problems, there may be more: fix these and validate again"
                        ),
                    );
                }
                problems.sort();
                return Err(problems);
            }
        }
    }
}

/// An entry the reading can leave out to go on: an unknown key, the second of two equal keys
/// (a step pasted without a new id), or a known key with a bad value.
struct LeftOut {
    name: String,
    offset: usize,
    /// The key its absence will look like a lack of: the known key an unknown one is closest
    /// to (if close enough to be a typo), or the key of a bad value.
    suggested: Option<String>,
}

/// One structural problem, and the key it is about when reading can go on without it.
struct Problem {
    diagnostics: Diagnostics,
    left_out: Option<LeftOut>,
    /// The required key the problem says is missing, if that is what it says.
    missing: Option<String>,
    /// Where the problem is, when it is an unknown key whose help lists the expected keys.
    listed_key: Option<usize>,
}

/// One reading of `text` (the source, perhaps with unknown entries blanked out).
fn parse_once(name: &str, source: &Arc<str>, text: &str) -> Result<RawJob, Box<Problem>> {
    serde_saphyr::from_str_with_options::<RawJob>(text, options()).map_err(|err| {
        let mut d = Diagnostics::new(name, Arc::clone(source));
        let message = UserMessageFormatter.format_message(&err).into_owned();
        let unknown_name = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("duplicate mapping key `"))
            .and_then(|rest| rest.split_once('`'))
            .map(|(found, _)| found.to_string());
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .map(str::to_string);
        let bad_value = is_bad_value(&message);
        let code = classify(&message);
        let (message, help) = improve_message(&message);
        let suggested = help
            .as_deref()
            .and_then(|h| h.strip_prefix("did you mean `"))
            .and_then(|h| h.strip_suffix("`?"))
            .map(str::to_string);
        let (offset, len) = err
            .location()
            .map(|l| crate::job::validate::loc_span(text, l))
            .unwrap_or((0, 0));
        let (offset, len, message, help) = relocate(text, offset, len, message, help);
        let listed_key =
            (code == Code::UnknownKey && suggested.is_none() && help.is_some()).then_some(offset);
        d.push_at(Severity::Error, code, offset, len, message, None, help);
        let left_out = match unknown_name {
            Some(name) => Some(LeftOut {
                name,
                offset,
                suggested,
            }),
            // A bad value: leave out its whole `key: value` entry; the key, now missing, is
            // the one not to report again.
            None if bad_value => key_at(text, offset)
                .or_else(|| key_before(text, offset))
                .map(|(at, key)| LeftOut {
                    name: key.clone(),
                    offset: at,
                    suggested: Some(key),
                }),
            None => None,
        };
        Box::new(Problem {
            diagnostics: d,
            left_out,
            missing,
            listed_key,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blanked(text: &str, key: &str) -> Option<String> {
        let at = text.find(key)?;
        let range = entry_extent(text, at, key)?;
        let mut out = text.to_string();
        out.replace_range(range.clone(), &" ".repeat(range.len()));
        Some(out)
    }

    #[test]
    fn a_block_entry_takes_its_indented_lines_and_a_compact_list() {
        let text = "a:\n  tag:\n  - x\n  - y\n  # note\n    deeper: 1\n  next: 2\n";
        let out = blanked(text, "tag").unwrap();
        assert_eq!(out.len(), text.len(), "offsets are kept");
        assert!(!out.contains("tag") && !out.contains("- x") && !out.contains("deeper"));
        assert!(out.contains("  next: 2\n"), "{out}");
    }
    #[test]
    fn a_flow_entry_ends_at_its_comma_or_brace() {
        let text = "d: { retries: 2, timout: { a: [1, 2] }, poll: 5s }\n";
        let out = blanked(text, "timout").unwrap();
        assert!(out.starts_with("d: { retries: 2, ") && out.ends_with(" poll: 5s }\n"));
        assert!(!out.contains("timout") && !out.contains("[1, 2]"), "{out}");
        let text = "d: { retries: 2, timout: '}' }\n";
        let out = blanked(text, "timout").unwrap();
        assert!(out.ends_with("}\n") && !out.contains("'}'"), "{out}");
    }
    #[test]
    fn an_entry_whose_extent_is_unclear_is_left_alone() {
        // After a sequence dash, or where the key is not.
        assert!(blanked("- tag: 1\n", "tag").is_none());
        assert!(entry_extent("a: 1\n", 0, "tag").is_none());
        assert!(entry_extent("x tag: 1\n", 2, "tag").is_none());
    }

    fn problems(yaml: &str) -> Vec<String> {
        let source: Arc<str> = Arc::from(yaml);
        let d = match parse_raw("job.yaml", &source) {
            Ok(parsed) => parsed.read_past,
            Err(d) => d,
        };
        d.items().iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn every_unknown_key_is_reported_then_the_next_structural_problem() {
        let yaml = "version: 1\nname: n\nfoo: 1\nsteps:\n  a:\n    type: webhook\n    url: https://x\n    bar: 2\n    timeout: [1]\n";
        assert_eq!(
            problems(yaml),
            [
                "unknown key `foo`",
                "unknown key `bar`",
                "expected a single text value"
            ]
        );
    }
    #[test]
    fn a_misspelt_required_key_is_reported_once() {
        let yaml = "version: 1\nname: n\nstesp:\n  a: { type: webhook, url: https://x }\n";
        assert_eq!(problems(yaml), ["unknown key `stesp`"]);
    }
    #[test]
    fn the_search_for_unknown_keys_is_bounded() {
        let mut yaml = String::from("version: 1\nname: n\nsteps: {}\n");
        for i in 0..40 {
            yaml.push_str(&format!("junk_{i}: 1\n"));
        }
        let found = problems(&yaml);
        assert_eq!(
            found
                .iter()
                .filter(|m| m.starts_with("unknown key `junk_"))
                .count(),
            MAX_READ_PAST
        );
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("stopped after 25 problems"))
        );
    }
    #[test]
    fn a_pasted_step_with_the_same_id_does_not_hide_the_rest() {
        let yaml = "version: 1\nname: n\nsteps:\n  a: { type: webhook, url: https://x }\n  a:\n    type: webhook\n    url: https://x\n  b: { type: webhook, url: https://x, depends_on: [zz] }\n";
        let source: Arc<str> = Arc::from(yaml);
        let parsed = parse_raw("job.yaml", &source).unwrap();
        let found: Vec<&str> = parsed
            .read_past
            .items()
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(found, ["duplicate key `a`"]);
        assert_eq!(
            parsed.raw.steps.get().len(),
            2,
            "the first `a` and `b` are read"
        );
    }
    #[test]
    fn unknown_values_are_all_reported_and_a_required_one_once() {
        let yaml = "version: 1\nname: n\nsteps:\n  a: { type: webhook, url: https://x, if_running: wiat }\n  b:\n    type: webhook\n    url: https://x\n    trigger: all_sucess\n  c: { type: webhok, url: https://x }\n";
        assert_eq!(
            problems(yaml),
            [
                "unknown value `wiat`",
                "unknown value `all_sucess`",
                "unknown value `webhok`"
            ]
        );
        assert_eq!(key_before("a: { k: v }", 8), Some((5, "k".into())));
        assert_eq!(key_before("  trigger: x", 11), Some((2, "trigger".into())));
        assert_eq!(key_before("- x", 2), None);
        assert_eq!(key_before("tags: [a, x]", 10), None);
    }

    #[test]
    fn wrong_types_are_all_reported() {
        let yaml = "version: 1\nname: n\nconcurrency: lots\nsteps:\n  a: { type: webhook, url: https://x, retries: [1] }\n  b: { type: webhook, url: https://x, depends_on: a }\n  c: { type: webhook, url: https://x, depends_on: [zz] }\n";
        let found = problems(yaml);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "expected an integer");
        assert!(found[1].starts_with("invalid type: sequence"), "{found:?}");
        assert!(found[2].starts_with("expected a list"), "{found:?}");
        // And the semantic checks run on what is left.
        let all = crate::job::load_bytes("job.yaml", yaml.as_bytes(), &[], &|_| None).unwrap_err();
        assert!(
            all.items()
                .iter()
                .any(|d| d.message == "unknown step `zz` in `depends_on` of `c`"),
            "{all:?}"
        );
    }

    #[test]
    fn bad_values_are_told_from_syntax_errors() {
        assert!(is_bad_value(
            "invalid type: string \"a\", expected a sequence"
        ));
        assert!(!is_bad_value(
            "mapping values are not allowed in this context"
        ));
    }
}
