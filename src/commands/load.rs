//! What several commands do the same way: load a job file and print its problems, start a
//! runtime.

use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::job::{self, DiagFormat, Diagnostics};

/// Prints `diags` on stderr, as miette's graphical report.
pub(super) fn print_diagnostics(diags: &Diagnostics) {
    eprint!(
        "{}",
        diags.render(DiagFormat::Human, crate::term::color_on_stderr())
    );
}

/// The `--var K=V` overrides.
pub(super) fn var_overrides(vars: &[String]) -> Result<Vec<(String, String)>, Error> {
    Ok(job::parse_var_overrides(vars)?)
}

/// Loads a job for `plan` / `graph`, printing its warnings (short) or its problems (human).
pub(super) fn load_or_report(path: &Path, vars: &[String]) -> Result<job::model::Job, Error> {
    let overrides = var_overrides(vars)?;
    match job::load(path, &overrides) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                let _ = std::io::stderr()
                    .write_all(loaded.warnings.render(DiagFormat::Short, false).as_bytes());
            }
            Ok(loaded.job)
        }
        Err(d) => {
            print_diagnostics(&d);
            Err(Error::Reported)
        }
    }
}

/// A multi-threaded runtime for the commands that talk to the services.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("failed to start the async runtime", e))
}

/// The `--sim-profile` at `path`, else `fallback`.
pub(super) fn simulator_profile(
    path: Option<&Path>,
    fallback: impl FnOnce() -> crate::sim::Profile,
) -> Result<crate::sim::Profile, Error> {
    match path {
        Some(path) => Ok(crate::sim::Profile::load(path)?),
        None => Ok(fallback()),
    }
}
