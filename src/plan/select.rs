//! `--select` / `--exclude`: `step`, `step+` (and downstream), `+step` (and upstream),
//! `+step+`, `tag:T`, `type:T`; `step` of a `for_each` names every expansion, `step[key]`
//! one. Repeated selectors are a union; excludes subtract.

use std::collections::{HashMap, VecDeque};

use indexmap::IndexSet;

use crate::job::model::{Job, StepId};

/// A selector that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum SelectionError {
    /// The selector is well formed but names nothing in the job.
    #[error("selector `{selector}` matches no step{}", help.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    #[diagnostic(code(pbibatch::plan::no_match))]
    NoMatch {
        selector: String,
        help: Option<String>,
    },
    /// The selector is malformed.
    #[error("invalid selector `{selector}`: {reason}")]
    #[diagnostic(code(pbibatch::plan::invalid_selector))]
    Invalid { selector: String, reason: String },
    /// Every step was excluded.
    #[error("the selection is empty: --exclude removed every selected step")]
    #[diagnostic(code(pbibatch::plan::empty_selection))]
    Empty,
}

/// Step types accepted by `type:T`: every type a job file may use.
fn types() -> Vec<&'static str> {
    crate::job::raw::RawStepType::ALL
        .into_iter()
        .map(crate::job::raw::RawStepType::name)
        .collect()
}

/// The steps to run, in job order. No `select` means every step.
pub fn select(
    job: &Job,
    select: &[String],
    exclude: &[String],
) -> Result<IndexSet<StepId>, SelectionError> {
    let graph = Links::new(job);
    let mut chosen: IndexSet<&str> = if select.is_empty() {
        job.steps.keys().map(String::as_str).collect()
    } else {
        let mut set = IndexSet::new();
        for s in select {
            set.extend(matches(job, &graph, s)?);
        }
        set
    };
    if chosen.is_empty() {
        // Every selector that matches nothing is refused above, but for a fan-out that
        // expanded to no step (discovery found nothing): nothing to run, and no error.
        return Ok(IndexSet::new());
    }
    for s in exclude {
        for id in matches(job, &graph, s)? {
            chosen.shift_remove(id);
        }
    }
    if chosen.is_empty() {
        return Err(SelectionError::Empty);
    }
    Ok(job
        .steps
        .keys()
        .filter(|id| chosen.contains(id.as_str()))
        .cloned()
        .collect())
}

/// Parents and children by step id.
struct Links<'a> {
    parents: HashMap<&'a str, Vec<&'a str>>,
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Links<'a> {
    fn new(job: &'a Job) -> Self {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for (id, step) in &job.steps {
            for dep in &step.depends_on {
                parents.entry(id).or_default().push(dep);
                children.entry(dep).or_default().push(id);
            }
        }
        Links { parents, children }
    }

    /// `start` and everything reachable from it through `edges`.
    fn closure(edges: &HashMap<&'a str, Vec<&'a str>>, start: &'a str) -> Vec<&'a str> {
        let mut seen: IndexSet<&str> = IndexSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for &m in edges.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    queue.push_back(m);
                }
            }
        }
        seen.into_iter().collect()
    }
}

fn matches<'a>(
    job: &'a Job,
    links: &Links<'a>,
    selector: &str,
) -> Result<Vec<&'a str>, SelectionError> {
    let sel = selector.trim();
    let invalid = |reason: &str| SelectionError::Invalid {
        selector: selector.to_string(),
        reason: reason.to_string(),
    };
    let no_match = |help: Option<String>| SelectionError::NoMatch {
        selector: selector.to_string(),
        help,
    };
    if sel.is_empty() {
        return Err(invalid("empty selector"));
    }
    if let Some(tag) = sel.strip_prefix("tag:") {
        if tag.is_empty() {
            return Err(invalid("expected `tag:NAME`"));
        }
        let found: Vec<&str> = job
            .steps
            .values()
            .filter(|s| s.tags.iter().any(|t| t == tag))
            .map(|s| s.id.as_str())
            .collect();
        if found.is_empty() {
            let mut tags: Vec<&str> = job
                .steps
                .values()
                .flat_map(|s| s.tags.iter().map(String::as_str))
                .collect();
            tags.sort_unstable();
            tags.dedup();
            let help = crate::suggest::did_you_mean(tag, tags.iter().copied())
                .map(|b| format!("did you mean `tag:{b}`?"));
            return Err(no_match(help));
        }
        return Ok(found);
    }
    if let Some(ty) = sel.strip_prefix("type:") {
        let types = types();
        if !types.contains(&ty) {
            return Err(invalid(&format!(
                "unknown step type `{ty}` (expected one of {})",
                types.join(", ")
            )));
        }
        let found: Vec<&str> = job
            .steps
            .values()
            .filter(|s| s.type_name() == ty)
            .map(|s| s.id.as_str())
            .collect();
        if found.is_empty() {
            return Err(no_match(None));
        }
        return Ok(found);
    }
    let (up, rest) = match sel.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, sel),
    };
    let (down, id) = match rest.strip_suffix('+') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if let Some(fan_out) = job.fan_outs.get(id)
        && !job.steps.contains_key(id)
    {
        // `step` of a `for_each`: every expansion.
        let mut out = Vec::new();
        for item in &fan_out.items {
            let expansion = crate::job::model::FanOut::expansion_id(id, &item.key);
            if let Some((key, _)) = job.steps.get_key_value(&expansion) {
                out.extend(reach(links, key.as_str(), up, down));
            }
        }
        if down {
            // Its dependents (and theirs), found through no expansion when it has none.
            for dependent in &fan_out.dependents {
                if let Some((key, _)) = job.steps.get_key_value(dependent) {
                    out.extend(reach(links, key.as_str(), false, true));
                }
            }
        }
        return Ok(out);
    }
    let written_as_step = crate::job::validate::is_step_id(id);
    if !written_as_step && crate::job::model::split_expansion_id(id).is_none() {
        return Err(invalid(
            "expected `step`, `step+`, `+step`, `+step+`, `step[key]`, `tag:T` or `type:T`",
        ));
    }
    let Some((key, _)) = job.steps.get_key_value(id) else {
        if let Some((parent, _)) = crate::job::model::split_expansion_id(id)
            && job
                .awaiting_discovery()
                .iter()
                .any(|(template, _)| *template == parent)
        {
            return Err(no_match(Some(format!(
                "`{parent}` fans out over what discovery finds when the run starts: `run --select '{id}'` selects it then"
            ))));
        }
        if let Some((parent, wanted)) = crate::job::model::split_expansion_id(id)
            && let Some(fan_out) = job.fan_outs.get(parent)
        {
            let keys = fan_out.items.iter().map(|i| i.key.as_str());
            let help = crate::suggest::did_you_mean(wanted, keys.clone())
                .map(|b| format!("did you mean `{parent}[{b}]`?"))
                .or_else(|| {
                    let all: Vec<&str> = keys.collect();
                    Some(format!("the keys of `{parent}` are: {}", all.join(", ")))
                });
            return Err(no_match(help));
        }
        let help = crate::suggest::did_you_mean(id, job.steps.keys().map(String::as_str))
            .or_else(|| same_words(id, job.steps.keys().map(String::as_str)))
            .map(crate::suggest::hint);
        return Err(no_match(help));
    };
    Ok(reach(links, key.as_str(), up, down))
}

/// `key`, with everything upstream (`up`) and downstream (`down`).
fn reach<'a>(links: &Links<'a>, key: &'a str, up: bool, down: bool) -> Vec<&'a str> {
    let mut out = vec![key];
    if up {
        out.extend(Links::closure(&links.parents, key));
    }
    if down {
        out.extend(Links::closure(&links.children, key));
    }
    out
}

/// The one step id whose `_`/`-` separated words include all of `id`'s, in order
/// (`order_model` -> `order_list_model`), when the spelling is too far for an edit distance.
fn same_words<'a>(id: &str, ids: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let words = |s: &str| -> Vec<String> {
        s.split(['_', '-'])
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let wanted = words(id);
    if wanted.is_empty() {
        return None;
    }
    let mut hits = ids.filter(|candidate| {
        let mut have = words(candidate).into_iter();
        wanted.iter().all(|w| have.any(|h| &h == w))
    });
    match (hits.next(), hits.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load_bytes;

    const JOB: &str = r#"
version: 1
name: sel
steps:
  a: { type: webhook, url: "https://h.invalid/a", tags: [nightly] }
  b: { type: webhook, url: "https://h.invalid/b", depends_on: [a] }
  c: { type: dataset, workspace: W, dataset: C, depends_on: [b], tags: [nightly] }
  d: { type: webhook, url: "https://h.invalid/d", depends_on: [a] }
  e: { type: dataset, workspace: W, dataset: E }
"#;

    fn job() -> Job {
        load_bytes("sel.yaml", JOB.as_bytes(), &[], &|_| None)
            .unwrap()
            .job
    }

    fn sel(s: &[&str], x: &[&str]) -> Result<Vec<String>, SelectionError> {
        let s: Vec<String> = s.iter().map(|v| v.to_string()).collect();
        let x: Vec<String> = x.iter().map(|v| v.to_string()).collect();
        select(&job(), &s, &x).map(|set| set.into_iter().collect())
    }

    #[test]
    fn selection_semantics() {
        assert_eq!(sel(&[], &[]).unwrap(), ["a", "b", "c", "d", "e"]);
        assert_eq!(sel(&["c"], &[]).unwrap(), ["c"]);
        assert_eq!(sel(&["b+"], &[]).unwrap(), ["b", "c"]);
        assert_eq!(sel(&["+c"], &[]).unwrap(), ["a", "b", "c"]);
        assert_eq!(sel(&["+b+"], &[]).unwrap(), ["a", "b", "c"]);
        assert_eq!(sel(&["a+"], &[]).unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(sel(&["tag:nightly"], &[]).unwrap(), ["a", "c"]);
        assert_eq!(sel(&["type:dataset"], &[]).unwrap(), ["c", "e"]);
        // Union keeps job order; exclude subtracts.
        assert_eq!(sel(&["e", "b"], &[]).unwrap(), ["b", "e"]);
        assert_eq!(sel(&["a+", "e"], &["c"]).unwrap(), ["a", "b", "d", "e"]);
        assert_eq!(
            sel(&["a+"], &["c", "type:webhook"]),
            Err(SelectionError::Empty)
        );
        assert_eq!(sel(&[], &["tag:nightly"]).unwrap(), ["b", "d", "e"]);
    }

    #[test]
    fn every_step_type_is_a_selector() {
        // A type no step of the job has is "no match", not an unknown type.
        for ty in crate::job::raw::RawStepType::ALL {
            let found = sel(&[&format!("type:{}", ty.name())], &[]);
            assert!(
                found.is_ok() || matches!(found, Err(SelectionError::NoMatch { .. })),
                "type:{}: {found:?}",
                ty.name()
            );
        }
    }

    #[test]
    fn selection_errors() {
        assert_eq!(
            sel(&["cc"], &[]).unwrap_err(),
            SelectionError::NoMatch {
                selector: "cc".into(),
                help: Some("did you mean `c`?".into())
            }
        );
        assert!(matches!(
            sel(&["tag:nope"], &[]),
            Err(SelectionError::NoMatch { .. })
        ));
        assert!(matches!(
            sel(&["type:sas_flow"], &[]),
            Err(SelectionError::NoMatch { .. })
        ));
        assert!(matches!(
            sel(&["type:nope"], &[]),
            Err(SelectionError::Invalid { .. })
        ));
        assert!(matches!(
            sel(&["a b"], &[]),
            Err(SelectionError::Invalid { .. })
        ));
        assert!(matches!(
            sel(&[], &["zz"]),
            Err(SelectionError::NoMatch { .. })
        ));
        assert_eq!(sel(&["a"], &["a"]), Err(SelectionError::Empty));
    }
}
