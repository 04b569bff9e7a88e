//! Raw job -> validated [`Job`]: every semantic check, collecting ALL problems with their
//! positions (sorted at the end), then the model with defaults applied.
//!
//! - `mod.rs`: the [`Checker`] (diagnostics, interpolation, durations, bounds) and the
//!   job-level sections (`version`, `name`, `vars`, `workspaces`, `connections`, `pools`);
//! - `sections.rs`: `vars` (with `--var`) and `connections` (with the implicit `default`);
//! - `step.rs`: one step and its settings after `defaults:`;
//! - `kinds.rs`: the part of a step that depends on its type;
//! - `deps.rs`: `depends_on`, self-dependencies and cycles;
//! - `expr.rs`: `when:` CEL expressions;
//! - `identity.rs`: what the service refuses because of who signs in (app-only identities).

mod burst;
mod capacity;
mod cost;
mod data_check;
mod deps;
mod expr;
mod fabric_job;
mod fan_out;
mod freshness;
mod identity;
mod kinds;
mod sections;
pub(crate) use sections::implicit_default;
mod step;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_saphyr::Location;

use crate::job::diag::{Code, Diagnostics, Severity};
use crate::job::interp::{self, Piece, Ref};
use crate::job::load::Loaded;
use crate::job::model::Job;
use crate::job::raw::{RawJob, Sp};

/// Longest duration accepted anywhere (DESIGN: at most 7 days).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default `concurrency`.
pub(crate) const DEFAULT_CONCURRENCY: u32 = 4;

/// Byte range of a location in `src` (computed from line/column when the parser gave no byte
/// offset).
pub(crate) fn loc_span(src: &str, loc: Location) -> (usize, usize) {
    let span = loc.span();
    if let (Some(off), Some(len)) = (span.byte_offset(), span.byte_len()) {
        let off = usize::try_from(off).unwrap_or(usize::MAX).min(src.len());
        let len = usize::try_from(len).unwrap_or(0);
        return (off, len);
    }
    if loc.line() == 0 {
        return (0, 0);
    }
    let line = usize::try_from(loc.line()).unwrap_or(1);
    let col = usize::try_from(loc.column()).unwrap_or(1);
    let start = src
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum::<usize>();
    let off = src[start.min(src.len())..]
        .char_indices()
        .nth(col.saturating_sub(1))
        .map_or(src.len(), |(i, _)| start + i);
    (off, 0)
}

fn help_for(found: &str, candidates: impl Iterator<Item = impl AsRef<str>>) -> Option<String> {
    let all: Vec<String> = candidates.map(|c| c.as_ref().to_string()).collect();
    crate::suggest::hint_for(found, all.iter().map(String::as_str))
}

/// True for `[A-Za-z_][A-Za-z0-9_-]*` (step ids).
pub(crate) fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The state of one validation: the text, the problems found so far and what later checks
/// need (vars, aliases, step ids).
pub(crate) struct Checker<'a> {
    src: Arc<str>,
    errors: Diagnostics,
    warnings: Diagnostics,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Env vars already warned about (one warning per name).
    env_warned: HashSet<String>,
    vars: IndexMap<String, String>,
    aliases: IndexMap<String, String>,
    step_ids: HashSet<String>,
    /// What `${each.key}` / `${each.value}` stand for in the step being checked.
    each: Each,
    /// Ids of the steps with `for_each`: `steps.<id>` cannot name them (each expansion has its
    /// own status).
    fan_out_ids: HashSet<String>,
}

/// `${each.*}` in the step being checked.
#[derive(Debug, Clone, Default)]
pub(crate) enum Each {
    /// The step has no `for_each`: `${each.*}` is an error.
    #[default]
    None,
    /// One expansion: `(key, value)`.
    Item(String, String),
    /// The template of a fan-out over what the run will discover: `${each.*}` stays as
    /// written until then.
    Template,
}

impl<'a> Checker<'a> {
    fn new(name: &str, src: Arc<str>, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Checker {
            errors: Diagnostics::new(name, Arc::clone(&src)),
            warnings: Diagnostics::new(name, Arc::clone(&src)),
            src,
            env,
            env_warned: HashSet::new(),
            vars: IndexMap::new(),
            aliases: IndexMap::new(),
            step_ids: HashSet::new(),
            each: Each::None,
            fan_out_ids: HashSet::new(),
        }
    }

    /// Did-you-mean hints cost a comparison per candidate; a file with thousands of bad
    /// references gets hints on the first ones only, so validation stays fast.
    pub(crate) fn suggestions_left(&self) -> bool {
        self.errors.items().len() < 100
    }

    pub(crate) fn span(&self, loc: Location) -> (usize, usize) {
        loc_span(&self.src, loc)
    }

    /// An error on the text at `loc`.
    pub(crate) fn error(
        &mut self,
        code: Code,
        loc: Location,
        message: impl Into<String>,
        label: &str,
    ) {
        self.error_help(code, loc, message, label, None);
    }

    /// An error on the text at `loc`, with a hint.
    pub(crate) fn error_help(
        &mut self,
        code: Code,
        loc: Location,
        message: impl Into<String>,
        label: &str,
        help: Option<String>,
    ) {
        let (off, len) = self.span(loc);
        self.error_at(code, off, len, message, label, help);
    }

    pub(crate) fn error_at(
        &mut self,
        code: Code,
        off: usize,
        len: usize,
        message: impl Into<String>,
        label: &str,
        help: Option<String>,
    ) {
        let label = (!label.is_empty()).then(|| label.to_string());
        self.errors
            .push_at(Severity::Error, code, off, len, message, label, help);
    }

    /// A [`Code::MissingKey`] error at `loc`: `key` is required and absent (a misspelt
    /// key that already explains it makes the loader leave this one out).
    pub(crate) fn missing_key(
        &mut self,
        loc: Location,
        key: &str,
        message: impl Into<String>,
        label: &str,
    ) {
        self.error(Code::MissingKey, loc, message, label);
        self.errors.mark_last_missing(key);
    }

    /// Byte range of `needle` inside the value at `loc` (falls back to the whole value).
    fn sub_span(&self, loc: Location, needle: &str) -> (usize, usize) {
        let (off, len) = self.span(loc);
        let window_end = off
            .saturating_add(len.max(needle.len()).saturating_add(4096))
            .min(self.src.len());
        let mut end = window_end;
        while !self.src.is_char_boundary(end) {
            end -= 1;
        }
        match self.src.get(off..end).and_then(|w| w.find(needle)) {
            Some(i) => (off + i, needle.len()),
            None => (off, len),
        }
    }

    /// Checks the `${...}` references of a string value, substitutes `${vars.X}` and returns
    /// the result. `allow_run`: `${run.*}` / `${steps.*}` are allowed (webhook bodies).
    pub(crate) fn interpolate(&mut self, s: &str, loc: Location, allow_run: bool) -> String {
        if !s.contains("${") {
            return s.to_string();
        }
        let pieces = match interp::scan(s) {
            Ok(p) => p,
            Err(e) => {
                let token = s.get(e.start..e.end).unwrap_or(s);
                let (off, len) = self.sub_span(loc, token);
                self.error_at(Code::Interpolation, off, len, e.message, "here", None);
                return s.to_string();
            }
        };
        for p in &pieces {
            let Piece::Ref { r, start, end } = p else {
                continue;
            };
            let token = &s[*start..*end];
            match r {
                Ref::Var(name) if !self.vars.contains_key(name) => {
                    let help = help_for(name, self.vars.keys());
                    let (off, len) = self.sub_span(loc, token);
                    self.error_at(
                        Code::UnknownVariable,
                        off,
                        len,
                        format!("unknown variable `{name}`"),
                        "not declared under `vars:`",
                        help,
                    );
                }
                Ref::Env(name) => self.note_env(name, loc, token),
                Ref::Each(_) if matches!(self.each, Each::None) => {
                    let (off, len) = self.sub_span(loc, token);
                    self.error_at(
                        Code::EachPlaceholder,
                        off,
                        len,
                        format!("`{token}` is only available in a step with `for_each`"),
                        "no `for_each` here",
                        None,
                    );
                }
                Ref::Run(_) | Ref::Step(..) if !allow_run => {
                    let (off, len) = self.sub_span(loc, token);
                    self.error_at(
                        Code::RunPlaceholder,
                        off,
                        len,
                        format!("`{token}` is only available in a webhook `body`"),
                        "run-time placeholder",
                        None,
                    );
                }
                Ref::Step(id, _) if self.fan_out_ids.contains(id) => {
                    let (off, len) = self.sub_span(loc, token);
                    self.error_at(Code::FanOutReference,
                        off,
                        len,
                        format!(
                            "`{token}` names a step with `for_each`, whose expansions have statuses of their own"
                        ),
                        "a fan-out",
                        Some("`${run.summary}` lists every expansion".into()),
                    );
                }
                Ref::Step(id, _) if !self.step_ids.contains(id) => {
                    let help = if self.suggestions_left() {
                        help_for(id, self.step_ids.iter())
                    } else {
                        None
                    };
                    let (off, len) = self.sub_span(loc, token);
                    self.error_at(
                        Code::UnknownStepReference,
                        off,
                        len,
                        format!("unknown step `{id}` in `{token}`"),
                        "no such step",
                        help,
                    );
                }
                _ => {}
            }
        }
        let vars = &self.vars;
        let each = match &self.each {
            Each::Item(key, value) => Some((key.as_str(), value.as_str())),
            Each::None | Each::Template => None,
        };
        interp::substitute_vars(s, &pieces, &|n| vars.get(n).cloned(), each)
    }

    /// A warning when an env var the job uses is not set here.
    fn note_env(&mut self, name: &str, loc: Location, token: &str) {
        if (self.env)(name).is_some() || !self.env_warned.insert(name.to_string()) {
            return;
        }
        let (off, len) = self.sub_span(loc, token);
        let help = crate::job::env::near_set_variable(name, self.env)
            .map(|near| format!("did you mean `{near}`? it is set here"));
        self.warnings.push_at(
            Severity::Warning,
            Code::EnvNotSet,
            off,
            len,
            format!("environment variable `{name}` is not set (it is needed at run time)"),
            Some("not set here".into()),
            help,
        );
    }

    /// A spanned string with references checked and vars substituted.
    pub(crate) fn text(&mut self, v: &Sp<String>) -> String {
        self.interpolate(v.get(), v.loc(), false)
    }

    /// A required, non-empty string.
    pub(crate) fn non_empty(&mut self, v: &Sp<String>, what: &str) -> String {
        let s = self.text(v);
        if s.trim().is_empty() {
            self.error(
                Code::EmptyValue,
                v.loc(),
                format!("`{what}` is empty"),
                "empty value",
            );
        }
        s
    }

    /// Every string inside a JSON value (body, parameters).
    pub(crate) fn json(
        &mut self,
        v: &serde_json::Value,
        loc: Location,
        allow_run: bool,
    ) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => {
                serde_json::Value::String(self.interpolate(s, loc, allow_run))
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items.iter().map(|i| self.json(i, loc, allow_run)).collect(),
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, i)| (k.clone(), self.json(i, loc, allow_run)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A humantime duration, > 0 and at most `max`.
    pub(crate) fn duration(
        &mut self,
        v: &Sp<String>,
        key: &str,
        max: Duration,
    ) -> Option<Duration> {
        let text = self.text(v);
        if text.contains("${") {
            self.error(
                Code::StaticDuration,
                v.loc(),
                format!("`{key}` cannot use `${{env.*}}`: durations must be known before a run"),
                "environment reference",
            );
            return None;
        }
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => {
                self.error(
                    Code::OutOfRange,
                    v.loc(),
                    format!("`{key}` must be longer than zero"),
                    "zero",
                );
                None
            }
            Ok(d) if d > max => {
                self.error(
                    Code::OutOfRange,
                    v.loc(),
                    format!(
                        "`{key}` is too long: {} (at most {})",
                        humantime::format_duration(d),
                        humantime::format_duration(max)
                    ),
                    "over the limit",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error_help(
                    Code::InvalidDuration,
                    v.loc(),
                    format!("invalid duration `{text}` for `{key}`: {e}"),
                    "not a duration",
                    Some("use humantime units, e.g. `30s`, `15m`, `2h`, `1h 30m`".into()),
                );
                None
            }
        }
    }

    /// An integer in `lo..=hi`.
    pub(crate) fn bounded(&mut self, v: &Sp<i64>, key: &str, lo: i64, hi: i64) -> Option<u32> {
        let n = *v.get();
        if n < lo || n > hi {
            self.error(
                Code::OutOfRange,
                v.loc(),
                format!("`{key}` must be between {lo} and {hi}, not {n}"),
                "out of range",
            );
            return None;
        }
        u32::try_from(n).ok()
    }

    /// A workspace: an alias is expanded; anything else is a name or GUID, except a likely
    /// typo of an alias, which is an error.
    pub(crate) fn workspace(&mut self, v: &Sp<String>) -> String {
        let s = self.non_empty(v, "workspace");
        if let Some(target) = self.aliases.get(&s) {
            return target.clone();
        }
        let likely_alias = !s.contains(' ') && !s.contains("${");
        if likely_alias
            && let Some(best) =
                crate::suggest::did_you_mean(&s, self.aliases.keys().map(String::as_str))
        {
            let help = Some(format!(
                "did you mean `{best}`? A value that is not an alias is taken as a workspace \
                 name or GUID"
            ));
            self.error_help(
                Code::UnknownWorkspaceAlias,
                v.loc(),
                format!("unknown workspace alias `{s}`"),
                "not under `workspaces:`",
                help,
            );
        }
        s
    }
}

/// Raw job -> model, or every problem found.
pub(crate) fn validate(
    name: &str,
    source: Arc<str>,
    file_hash: String,
    raw: &RawJob,
    var_overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    discovered: &crate::job::Discovered,
) -> Result<Loaded, Diagnostics> {
    let mut c = Checker::new(name, source, env);

    if *raw.version.get() != 1 {
        c.error(
            Code::UnsupportedVersion,
            raw.version.loc(),
            format!("unsupported job file version {}", raw.version.get()),
            "only version 1 exists",
        );
    }
    let job_name = raw.name.get().clone();
    if job_name.is_empty()
        || !job_name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
    {
        c.error(
            Code::InvalidName,
            raw.name.loc(),
            format!("invalid job name `{job_name}`"),
            "use lowercase letters, digits, `_` and `-`",
        );
    }

    sections::vars(&mut c, raw, var_overrides);
    c.step_ids = raw.steps.get().keys().map(|k| k.get().clone()).collect();
    c.fan_out_ids = raw
        .steps
        .get()
        .iter()
        .filter(|(_, s)| s.get().for_each.is_some())
        .map(|(k, _)| k.get().clone())
        .collect();
    if let Some(ws) = &raw.workspaces {
        for (alias, target) in ws {
            let t = c.non_empty(target, "workspace");
            c.aliases.insert(alias.get().clone(), t);
        }
    }
    let description = raw.description.clone();
    let connections = sections::connections(&mut c, raw);

    let concurrency = match &raw.concurrency {
        Some(v) => c.bounded(v, "concurrency", 1, 10_000).unwrap_or(1),
        None => DEFAULT_CONCURRENCY,
    };
    let mut pools = IndexMap::new();
    for (pool, limit) in raw.pools.iter().flatten() {
        if pool.get().trim().is_empty() {
            c.error(Code::EmptyValue, pool.loc(), "empty pool name", "");
        }
        let l = c.bounded(limit, "pool limit", 1, 10_000).unwrap_or(1);
        pools.insert(pool.get().clone(), l);
    }

    let defaults = step::Defaults::from_raw(&mut c, raw.defaults.as_ref(), &connections);
    let mut steps = IndexMap::new();
    if raw.steps.get().is_empty() {
        c.error(
            Code::EmptySteps,
            raw.steps.loc(),
            "`steps` is empty",
            "a job needs at least one step",
        );
    }
    let mut fan_outs = IndexMap::new();
    for (id, s) in raw.steps.get() {
        if let Some(for_each) = &s.get().for_each {
            let ctx = fan_out::Context {
                job_file: name,
                discovered,
                defaults: &defaults,
                connections: &connections,
                pools: &pools,
            };
            if let Some(f) = fan_out::expand(&mut c, &ctx, id, s, for_each, &mut steps) {
                fan_outs.insert(id.get().clone(), f);
            }
        } else if let Some(step) = step::build(&mut c, id, s, &defaults, &connections, &pools) {
            steps.insert(id.get().clone(), step);
        }
    }
    deps::check(&mut c, raw, &mut steps);
    fan_out::link_dependents(&mut steps, &mut fan_outs);
    sections::implicit_default_warning(&mut c, raw, &steps);
    identity::check(&mut c, raw, &steps, &connections);

    let Checker {
        mut errors,
        mut warnings,
        vars,
        ..
    } = c;
    if errors.has_errors() {
        errors.extend(warnings);
        errors.sort();
        return Err(errors);
    }
    warnings.sort();
    Ok(Loaded {
        job: Job {
            name: job_name,
            description,
            file: PathBuf::from(name),
            file_hash,
            vars,
            connections,
            concurrency,
            pools,
            capacity_limits: raw
                .capacity_limits
                .as_ref()
                .is_none_or(|v| *v.get() == crate::job::raw::RawCapacityLimits::Auto),
            steps,
            fan_outs,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests;
