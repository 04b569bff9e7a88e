//! YAML text -> [`model::Job`]: raw serde types with spans, validation with located
//! diagnostics, and `${env.X}` / `${vars.X}` interpolation.
//!
//! ```text
//! bytes --load::parse_raw (serde-saphyr, bounded; every unknown key, else the first structural error)--> raw::RawJob
//!       --validate (all semantic errors, sorted)--> model::Job (+ warnings)
//!       --resolve_env (before a run; every missing env var)--> model::Job
//! ```

mod code;
pub(crate) mod diag;
mod env;
pub(crate) mod interp;
pub(crate) mod keys;
mod load;
pub mod model;
mod outbound;
pub(crate) mod raw;
mod relocate;
pub(crate) mod schema;
pub(crate) mod validate;

pub use diag::{Code, DiagFormat, Diagnostic, Diagnostics, Severity};
pub use env::{MissingEnv, MissingVar, needs_auth, resolve_env};
pub use load::{Discovered, Loaded, load, load_bytes, load_bytes_discovered, load_discovered};
pub use outbound::Outbound;

/// A `--var` argument that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("invalid --var `{0}`: expected KEY=VALUE")]
#[diagnostic(code(pbibatch::job::var_argument))]
pub struct VarOverrideError(pub String);

/// Parses `--var KEY=VALUE` arguments (the value may contain `=`; later ones win).
pub(crate) fn parse_var_overrides(
    args: &[String],
) -> Result<Vec<(String, String)>, VarOverrideError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(VarOverrideError(arg.clone()));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(VarOverrideError(arg.clone()));
        }
        out.retain(|(old, _)| old != k);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_overrides() {
        let args = vec!["a=1".to_string(), "b=x=y".to_string(), "a=2".to_string()];
        assert_eq!(
            parse_var_overrides(&args).unwrap(),
            vec![
                ("b".to_string(), "x=y".to_string()),
                ("a".to_string(), "2".to_string())
            ]
        );
        assert!(parse_var_overrides(&["nope".to_string()]).is_err());
        assert!(parse_var_overrides(&["=v".to_string()]).is_err());
    }
}
