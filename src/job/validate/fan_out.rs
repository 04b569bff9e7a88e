//! `for_each`: one step per value, each with the id `step[key]`.
//!
//! The values come from the file (a list), a variable (`"${vars.NAME}"`, a comma-separated
//! list that `--var` may override), a text file (one value per line) or what discovery finds
//! when the run starts (until then the step is kept once, as a template, and the run expands
//! it by loading the file again with the values found: see `src/plan/fan_out.rs`). Each
//! expansion is
//! validated as its own step with `${each.key}` / `${each.value}` filled in, so an
//! expansion is an ordinary step for the plan, the engine, the store and the reports. The
//! dependents of a fanned-out step depend on every expansion (their trigger rule then says
//! whether all or any of them must succeed).

use std::path::Path;

use indexmap::IndexMap;

use super::step::{self, Defaults};
use super::{Checker, Each};
use crate::job::Code;
use crate::job::interp::{self, Piece, Ref};
use crate::job::model::{
    Connection, DiscoverSpec, FanOut, FanOutItem, FanOutSource, Step, StepId, StepKind,
};
use crate::job::raw::{RawDiscover, RawDiscoverItems, RawForEach, RawStep, Sp};

/// Most expansions one `for_each` may have: a typo'd file should not make a million steps.
pub(super) const MAX_EXPANSIONS: usize = 1_000;

/// What [`expand`] needs besides the checker.
pub(super) struct Context<'a> {
    /// The job file's path as given (a `file:` is relative to its folder).
    pub job_file: &'a str,
    /// What run-time discovery found, by step id (empty before a run).
    pub discovered: &'a crate::job::Discovered,
    pub defaults: &'a Defaults,
    pub connections: &'a IndexMap<String, Connection>,
    pub pools: &'a IndexMap<String, u32>,
}

/// The key of a value: the value with every character outside `[A-Za-z0-9_-]` replaced by
/// `_` (so `step[key]` is a selector and a file name part).
pub(super) fn key_of(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds the expansions of one step into `steps`; the fan-out, or `None` when its values
/// are unusable (errors recorded).
pub(super) fn expand(
    c: &mut Checker<'_>,
    ctx: &Context<'_>,
    id: &Sp<String>,
    step: &Sp<RawStep>,
    for_each: &Sp<RawForEach>,
    steps: &mut IndexMap<StepId, Step>,
) -> Option<FanOut> {
    let (source, values) = values(c, ctx, id, for_each)?;
    let Some(values) = values else {
        // Discovered when the run starts: the step stays once, as a template.
        c.each = Each::Template;
        let built = step::build(c, id, step, ctx.defaults, ctx.connections, ctx.pools);
        c.each = Each::None;
        if let Some(built) = built {
            steps.insert(built.id.clone(), built);
        }
        return Some(FanOut {
            source,
            items: Vec::new(),
            dependents: Vec::new(),
        });
    };
    let discovered = matches!(source, FanOutSource::Discover(_));
    let items = if discovered && values.is_empty() {
        // Discovery may find nothing: the fan-out then has no step.
        Vec::new()
    } else {
        items(c, for_each, values)?
    };
    for (n, item) in items.iter().enumerate() {
        c.each = Each::Item(item.key.clone(), item.value.clone());
        let before = c.errors.items().len();
        let built = step::build(c, id, step, ctx.defaults, ctx.connections, ctx.pools);
        if n > 0 {
            // A problem of the step as written shows once, not once per value.
            let seen: Vec<_> = c.errors.items()[..before]
                .iter()
                .map(|d| (d.position, d.message.clone()))
                .collect();
            let mut index = 0;
            c.errors.retain(|d| {
                index += 1;
                index <= before || !seen.contains(&(d.position, d.message.clone()))
            });
        }
        if let Some(mut built) = built {
            built.id = FanOut::expansion_id(id.get(), &item.key);
            steps.insert(built.id.clone(), built);
        }
    }
    c.each = Each::None;
    shared_outputs(c, id, step, &items, steps);
    Some(FanOut {
        source,
        items,
        dependents: Vec::new(),
    })
}

/// Two expansions of a report step that export to one file: each export would overwrite
/// the other's, so a burst of N exports would leave one file.
fn shared_outputs(
    c: &mut Checker<'_>,
    id: &Sp<String>,
    step: &Sp<RawStep>,
    items: &[FanOutItem],
    steps: &IndexMap<StepId, Step>,
) {
    let Some(export) = &step.get().export else {
        return;
    };
    let mut seen: Vec<(&StepId, &Path)> = Vec::new();
    for item in items {
        let expansion = FanOut::expansion_id(id.get(), &item.key);
        let Some((eid, built)) = steps.get_key_value(&expansion) else {
            continue;
        };
        let StepKind::Report(r) = &built.kind else {
            return;
        };
        if let Some((first, _)) = seen.iter().find(|(_, p)| *p == r.export.path) {
            c.error_help(
                Code::SharedOutput,
                export.get().path.loc(),
                format!(
                    "`{first}` and `{eid}` export to the same file `{}`: each would overwrite the other",
                    r.export.path.display()
                ),
                "the same path for every value",
                Some("put `${each.key}` in the path: one file per value".into()),
            );
            return;
        }
        seen.push((eid, &r.export.path));
    }
}

type Values = Vec<(String, serde_saphyr::Location)>;

/// The values of a `for_each` and where they came from; no values for a discovery the run
/// has not made yet.
fn values(
    c: &mut Checker<'_>,
    ctx: &Context<'_>,
    id: &Sp<String>,
    for_each: &Sp<RawForEach>,
) -> Option<(FanOutSource, Option<Values>)> {
    match for_each.get() {
        RawForEach::List(list) => Some((
            FanOutSource::List,
            Some(list.iter().map(|v| (c.text(v), v.loc())).collect()),
        )),
        RawForEach::Text(text) => {
            let name = match interp::scan(text).as_deref() {
                Ok(
                    [
                        Piece::Ref {
                            r: Ref::Var(name), ..
                        },
                    ],
                ) => name.clone(),
                _ => {
                    c.error_help(
                        Code::ForEachSource,
                        for_each.loc(),
                        "`for_each` as a string must be one `${vars.NAME}`",
                        "not a variable reference",
                        Some(
                            "write the values as a list (`[a, b]`), `\"${vars.NAME}\"` with a \
                             comma-separated list in the variable, or `{ file: PATH }`"
                                .into(),
                        ),
                    );
                    return None;
                }
            };
            let value = c.interpolate(text, for_each.loc(), false);
            if !c.vars.contains_key(&name) {
                return None;
            }
            let values = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (v.to_string(), for_each.loc()))
                .collect();
            Some((FanOutSource::Var { name }, Some(values)))
        }
        RawForEach::Long(long) => {
            let file = match (&long.file, &long.discover) {
                (Some(_), Some(d)) => {
                    c.error(
                        Code::ForEachSource,
                        d.loc(),
                        "`for_each` takes `file` or `discover`, not both",
                        "one source of values",
                    );
                    return None;
                }
                (None, Some(d)) => {
                    let spec = discover(c, d.get());
                    let found = ctx
                        .discovered
                        .get(id.get())
                        .map(|values| values.iter().map(|v| (v.clone(), for_each.loc())).collect());
                    return Some((FanOutSource::Discover(spec), found));
                }
                (Some(file), None) => file,
                (None, None) => {
                    c.error(
                        Code::ForEachSource,
                        for_each.loc(),
                        "`for_each` needs `file` or `discover`",
                        "no values here",
                    );
                    return None;
                }
            };
            let written = c.non_empty(file, "for_each.file");
            let path = Path::new(ctx.job_file)
                .parent()
                .unwrap_or(Path::new(""))
                .join(&written);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    c.error(
                        Code::ForEachSource,
                        file.loc(),
                        format!("cannot read the `for_each` file `{}`: {e}", path.display()),
                        "unreadable",
                    );
                    return None;
                }
            };
            let values = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| (l.to_string(), file.loc()))
                .collect();
            Some((FanOutSource::File { path: written }, Some(values)))
        }
    }
}

/// `for_each.discover`, checked.
fn discover(c: &mut Checker<'_>, raw: &RawDiscover) -> DiscoverSpec {
    let workspace = c.workspace(&raw.workspace);
    let name = match &raw.name {
        Some(n) => c.non_empty(n, "discover.name"),
        None => "*".to_string(),
    };
    let RawDiscoverItems::SemanticModels = raw.items.get();
    DiscoverSpec {
        workspace,
        name,
        exclude_named: raw.exclude_named.as_ref().is_some_and(|v| *v.get()),
    }
}

/// Keys for the values: every value must give a non-empty key, unique in the fan-out.
fn items(
    c: &mut Checker<'_>,
    for_each: &Sp<RawForEach>,
    values: Vec<(String, serde_saphyr::Location)>,
) -> Option<Vec<FanOutItem>> {
    if values.is_empty() {
        c.error(
            Code::ForEachValues,
            for_each.loc(),
            "`for_each` has no values",
            "an empty list expands to no step",
        );
        return None;
    }
    if values.len() > MAX_EXPANSIONS {
        c.error(
            Code::ForEachValues,
            for_each.loc(),
            format!(
                "`for_each` has {} values (at most {MAX_EXPANSIONS})",
                values.len()
            ),
            "too many values",
        );
        return None;
    }
    let mut items: Vec<FanOutItem> = Vec::with_capacity(values.len());
    let mut ok = true;
    for (value, loc) in values {
        let key = key_of(&value);
        if key.is_empty() {
            c.error(
                Code::ForEachValues,
                loc,
                "a `for_each` value is empty",
                "empty value",
            );
            ok = false;
        } else if let Some(first) = items.iter().find(|i| i.key == key) {
            let message = if first.value == value {
                format!("`{value}` is listed twice in `for_each`")
            } else {
                format!(
                    "`{value}` and `{}` give the same key `{key}` in `for_each`",
                    first.value
                )
            };
            c.error_help(
                Code::ForEachValues,
                loc,
                message,
                "repeated key",
                Some(
                    "a key is the value with every character but letters, digits, `_` and \
                     `-` replaced by `_`; keys must differ"
                        .into(),
                ),
            );
            ok = false;
        } else {
            items.push(FanOutItem { key, value });
        }
    }
    ok.then_some(items)
}

/// Every `depends_on` entry naming a fanned-out step becomes its expansions.
pub(super) fn link_dependents(
    steps: &mut IndexMap<StepId, Step>,
    fan_outs: &mut IndexMap<StepId, FanOut>,
) {
    if fan_outs.is_empty() {
        return;
    }
    let template_ids: Vec<StepId> = fan_outs
        .keys()
        .filter(|id| steps.contains_key(*id))
        .cloned()
        .collect();
    for step in steps.values_mut() {
        let deps = std::mem::take(&mut step.depends_on);
        for dep in deps {
            match fan_outs.get_mut(&dep) {
                // A template awaiting discovery is a step of its own until then.
                Some(_) if template_ids.contains(&dep) => step.depends_on.push(dep),
                Some(f) => {
                    f.dependents.push(step.id.clone());
                    step.depends_on
                        .extend(f.items.iter().map(|i| FanOut::expansion_id(&dep, &i.key)));
                }
                None => step.depends_on.push(dep),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn keys_keep_selector_characters_only() {
        assert_eq!(key_of("emea"), "emea");
        assert_eq!(key_of("North America"), "North_America");
        assert_eq!(key_of(" Sales (EU) "), "Sales__EU_");
        assert_eq!(key_of("a-b_c9"), "a-b_c9");
    }
}
