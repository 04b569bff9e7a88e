//! Reading a job file: bytes -> YAML (serde-saphyr, bounded) -> raw types -> validated model.
//!
//! Structural problems (YAML syntax, wrong type, missing field, duplicate key, bad enum value)
//! come from the deserializer and stop at the first one, like cargo does. Unknown keys,
//! duplicate keys and bad values (an unknown word, a wrong type), the most common slips, do
//! not: [`read`] reports each and reads on, and the semantic problems that follow
//! are added here (see [`crate::job::validate`], which collects every problem).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::job::diag::{Code, Diagnostics, Severity};
use crate::job::model::Job;
use crate::job::raw::RawStep;
use crate::job::validate;

mod read;
mod slips;

use read::parse_raw;

/// A job that passed validation, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `${vars.X}` substituted; `${env.X}` still unresolved (see [`crate::job::resolve_env`]).
    pub job: Job,
    /// E.g. env vars that are not set in the current environment.
    pub warnings: Diagnostics,
}

/// Loads and validates a job file. `var_overrides` are `--var K=V` pairs (they must name
/// declared `vars:`). Env vars are looked up in the process environment for warnings and to
/// pick the implicit `default` connection.
pub fn load(path: &Path, var_overrides: &[(String, String)]) -> Result<Loaded, Diagnostics> {
    load_discovered(path, var_overrides, &Discovered::new())
}

/// What run-time discovery found for each `for_each: { discover: ... }` step (by the id the
/// file gives it): the values, in order.
pub type Discovered = indexmap::IndexMap<String, Vec<String>>;

/// [`load`], with the fan-outs over discovered items expanded to `discovered` (those it does
/// not name stay templates).
pub fn load_discovered(
    path: &Path,
    var_overrides: &[(String, String)],
    discovered: &Discovered,
) -> Result<Loaded, Diagnostics> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let mut d = Diagnostics::new(name.clone(), Arc::from(""));
            let what = if path.is_dir() {
                "is a directory, not a job file".to_string()
            } else if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                e.to_string()
            };
            d.push_global(
                Severity::Error,
                Code::Unreadable,
                format!("cannot read the job file `{name}`: {what}"),
            );
            return Err(d);
        }
    };
    load_bytes_discovered(
        &name,
        &bytes,
        var_overrides,
        &|k| std::env::var(k).ok(),
        discovered,
    )
}

/// Like [`load`], from bytes already read; `env` answers env lookups (tests, benches).
pub fn load_bytes(
    name: &str,
    bytes: &[u8],
    var_overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Diagnostics> {
    load_bytes_discovered(name, bytes, var_overrides, env, &Discovered::new())
}

/// [`load_bytes`] with discovered fan-out values (see [`load_discovered`]).
pub fn load_bytes_discovered(
    name: &str,
    bytes: &[u8],
    var_overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    discovered: &Discovered,
) -> Result<Loaded, Diagnostics> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).as_ref());
            let mut d = Diagnostics::new(name, lossy);
            // The lossy text has the same prefix up to the first bad byte.
            d.push_at(
                Severity::Error,
                Code::NotUtf8,
                e.valid_up_to(),
                1,
                "the job file is not valid UTF-8 text",
                Some("invalid byte here".into()),
                None,
            );
            return Err(d);
        }
    };
    let source: Arc<str> = Arc::from(text);
    let hash = hex::encode(Sha256::digest(bytes));
    let parsed = parse_raw(name, &source)?;
    let checked = validate::validate(
        name,
        source.clone(),
        hash,
        &parsed.raw,
        var_overrides,
        env,
        discovered,
    );
    let mut problems = parsed.read_past;
    if problems.is_empty() {
        return checked;
    }
    let mut more = match checked {
        Ok(loaded) => loaded.warnings,
        Err(found) => found,
    };
    // "a `dataset` step needs `dataset`" next to "unknown key `datset` (did you mean
    // `dataset`?)" in the same step says one thing twice: keep the unknown key.
    let step_starts: Vec<usize> = parsed
        .raw
        .steps
        .get()
        .keys()
        .map(|id| crate::job::validate::loc_span(&source, id.loc()).0)
        .collect();
    let step_of = |offset: usize| step_starts.iter().filter(|&&s| s <= offset).max().copied();
    // An unknown key of a step with no near match: list the keys of that step's type, not
    // those of every type.
    let steps: Vec<&RawStep> = parsed.raw.steps.get().values().map(|s| s.get()).collect();
    problems.rewrite_help(|d| {
        let p = d.position?;
        if !(d.code == Code::UnknownKey && parsed.listed_keys.contains(&p.offset)) {
            return None;
        }
        let start = step_of(p.offset)?;
        let step = steps[step_starts.iter().position(|&s| s == start)?];
        let ty = *step.step_type.get();
        let keys: Vec<&str> = crate::job::keys::COMMON_KEYS
            .iter()
            .chain(crate::job::keys::type_keys(ty))
            .copied()
            .collect();
        Some(format!("a `{}` step takes: {}", ty.name(), keys.join(", ")))
    });
    more.retain(|d| {
        let Some(p) = d.position else { return true };
        !parsed.meant.iter().any(|m| {
            d.code == Code::MissingKey
                && d.missing.as_deref() == Some(m.key.as_str())
                && step_of(p.offset).is_some()
                && step_of(p.offset) == step_of(m.offset)
        })
    });
    problems.extend(more);
    problems.sort();
    Err(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_without_a_near_match_lists_the_keys_of_its_step_type() {
        let yaml = "version: 1\nname: n\nsteps:\n  a:\n    type: webhook\n    url: https://x\n    zork: 1\n";
        let all = load_bytes("job.yaml", yaml.as_bytes(), &[], &|_| None).unwrap_err();
        let help = all.items()[0].help.clone().unwrap_or_default();
        assert!(
            help.starts_with("a `webhook` step takes: type, depends_on,"),
            "{help}"
        );
        assert!(
            help.contains("expect_status") && !help.contains("dataset"),
            "{help}"
        );
    }

    #[test]
    fn a_misspelt_required_key_is_not_also_reported_missing_but_another_missing_key_is() {
        let yaml = "version: 1\nname: n\nsteps:\n  a:\n    type: dataset\n    workspace: W\n    datset: M\n  b:\n    type: dataset\n    datset: M\n";
        let all = load_bytes("job.yaml", yaml.as_bytes(), &[], &|_| Some("x".into())).unwrap_err();
        let found: Vec<(Code, &str)> = all
            .items()
            .iter()
            .map(|d| (d.code, d.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Code::UnknownKey, "unknown key `datset`"),
                (Code::MissingKey, "a `dataset` step needs `workspace`"),
                (Code::UnknownKey, "unknown key `datset`"),
            ],
            "{all}"
        );
    }
}
