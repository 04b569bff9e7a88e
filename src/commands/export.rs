//! `pbibatch export kestra JOB`: the job as a Kestra flow (see `docs/kestra-export.md`).

use crate::cli::ExportKestraArgs;
use crate::error::{Error, exit};
use crate::export::kestra;
use crate::job;

/// `pbibatch export kestra JOB`: prints (or writes) the flow; notes about semantics the flow
/// cannot keep go to stderr. Exit 0, or 2 for an invalid job or argument.
pub(super) fn kestra(args: &ExportKestraArgs) -> Result<u8, Error> {
    let overrides = super::load::var_overrides(&args.vars)?;
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
            super::load::print_diagnostics(&diags);
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
    let flow = kestra::export(&loaded.job, &options)?;
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
