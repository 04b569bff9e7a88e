//! `pbibatch export`: a job rendered for another tool. Today: a Kestra flow whose Dag task
//! mirrors the job's DAG, one task per step (see `docs/kestra-export.md`).
//!
//! ```text
//! job.yaml --job::load--> Job --kestra::export--> KestraFlow { yaml, notes }
//!                                                  notes -> stderr (and YAML comments)
//! ```

pub(crate) mod iso8601;
pub(crate) mod kestra;
mod notes;

use crate::cli::ExportKestraArgs;
use crate::error::{Error, exit};
use crate::job::{self, DiagFormat};

/// Why an export failed (the job itself was valid).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// `--namespace` is not a Kestra namespace.
    #[error(
        "invalid --namespace `{0}`: a Kestra namespace is lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"
    )]
    Namespace(String),
    /// `--cron` is not a cron expression Kestra's Schedule trigger accepts.
    #[error("invalid --cron `{cron}`: {reason}")]
    Cron { cron: String, reason: String },
    /// `--image` is empty or holds whitespace.
    #[error(
        "invalid --image `{0}`: expected a container image reference such as `pbibatch:latest`"
    )]
    Image(String),
    /// The YAML serializer refused the flow (a bug: the flow is built from plain values).
    #[error("serialize the Kestra flow: {0}")]
    Serialize(String),
}

/// `pbibatch export kestra JOB`: prints (or writes) the flow; notes about semantics the flow
/// cannot keep go to stderr. Exit 0, or 2 for an invalid job or argument.
pub(crate) fn kestra_command(args: &ExportKestraArgs) -> Result<u8, Error> {
    let overrides =
        job::parse_var_overrides(&args.vars).map_err(|e| Error::Invalid(e.to_string()))?;
    // The exported flow must not depend on the exporting machine's environment (the implicit
    // `default` connection looks at PBIBATCH_ACCESS_TOKEN), so env lookups see nothing here.
    let bytes = std::fs::read(&args.job).map_err(|e| {
        Error::io(
            format!("cannot read the job file {}", args.job.display()),
            e,
        )
    })?;
    let name = args.job.display().to_string();
    let loaded = match job::load_bytes(&name, &bytes, &overrides, &|_| None) {
        Ok(loaded) => loaded,
        Err(diags) => {
            let color = crate::term::color_on_stderr();
            eprint!("{}", diags.render(DiagFormat::Human, color));
            return Err(Error::Reported);
        }
    };
    let runner = match (&args.image, args.process) {
        (_, true) => kestra::Runner::Process,
        (Some(image), false) => kestra::Runner::Docker {
            image: image.clone(),
        },
        (None, false) => kestra::Runner::Docker {
            image: kestra::DEFAULT_IMAGE.to_string(),
        },
    };
    let options = kestra::KestraOptions {
        namespace: args.namespace.clone(),
        cron: args.cron.clone(),
        runner,
        job_path: job_path_for_kestra(&args.job),
        vars: overrides,
    };
    let flow = kestra::export(&loaded.job, &options).map_err(|e| Error::Invalid(e.to_string()))?;
    for note in &flow.notes {
        eprintln!("warning: {note}");
    }
    if args.image.is_none() && !args.process {
        eprintln!(
            "note: the tasks run in the container image `{}`; pass --image IMAGE or --process",
            kestra::DEFAULT_IMAGE
        );
    }
    match &args.output {
        Some(path) => std::fs::write(path, &flow.yaml)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?,
        None => {
            crate::stdout::write(&flow.yaml)?;
        }
    }
    Ok(exit::OK)
}

/// The job path as the tasks' commands and `namespaceFiles.include` use it: forward slashes,
/// no leading `./` (Kestra namespace file paths are relative, `/`-separated).
fn job_path_for_kestra(path: &std::path::Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut rest = text.as_str();
    while let Some(stripped) = rest.strip_prefix("./") {
        rest = stripped;
    }
    rest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_are_relative_and_forward_slashed() {
        assert_eq!(
            job_path_for_kestra(std::path::Path::new("./jobs/a.yaml")),
            "jobs/a.yaml"
        );
        assert_eq!(
            job_path_for_kestra(std::path::Path::new("jobs\\a.yaml")),
            "jobs/a.yaml"
        );
    }
}
