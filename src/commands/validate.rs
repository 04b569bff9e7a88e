//! `pbibatch validate FILE...`: the static checks of each job file, and with `--lineage` the
//! live check against the services (or the simulator).

use std::io::Write;

use crate::cli::{DiagnosticFormat, ValidateArgs};
use crate::discover::{LiveOptions, check_live};
use crate::error::{Error, exit};
use crate::job::{self, DiagFormat, Diagnostics, Severity};

/// `pbibatch validate FILE...`: exit 0 when every file is valid (warnings allowed), 2
/// otherwise. Human diagnostics go to stderr; `short` and `json` to stdout.
pub(super) fn command(args: &ValidateArgs) -> Result<u8, Error> {
    if args.lineage {
        return lineage(args);
    }
    let overrides = super::load::var_overrides(&args.vars)?;
    let mut failed = false;
    let mut json = Vec::new();
    let mut short = String::new();
    let color = crate::term::color_on_stderr();
    for path in &args.jobs {
        let (mut diags, summary): (Diagnostics, Option<String>) = match job::load(path, &overrides)
        {
            Ok(mut loaded) => {
                if args.allow_unset_env {
                    loaded.warnings.drop_unset_env();
                }
                let n = loaded.job.steps.len();
                let w = loaded.warnings.items().len();
                let summary = format!(
                    "{}: valid ({n} step{}{})",
                    path.display(),
                    if n == 1 { "" } else { "s" },
                    match w {
                        0 => String::new(),
                        1 => ", 1 warning".into(),
                        w => format!(", {w} warnings"),
                    }
                );
                (loaded.warnings, Some(summary))
            }
            Err(d) => {
                failed = true;
                (d, None)
            }
        };
        if args.allow_unset_env {
            diags.drop_unset_env();
        }
        match args.format {
            DiagnosticFormat::Human => {
                let text = diags.render(DiagFormat::Human, color);
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                match summary {
                    Some(s) => {
                        let _ = writeln!(err, "{s}");
                    }
                    None => {
                        let n = diags
                            .items()
                            .iter()
                            .filter(|d| d.severity == job::Severity::Error)
                            .count();
                        let _ = writeln!(
                            err,
                            "{}: invalid ({n} error{})",
                            path.display(),
                            if n == 1 { "" } else { "s" }
                        );
                    }
                }
            }
            DiagnosticFormat::Short => short.push_str(&diags.render(DiagFormat::Short, false)),
            DiagnosticFormat::Json => json.extend(diags.to_json()),
        }
    }
    write_collected(args.format, &short, &json)?;
    Ok(if failed { exit::INVALID } else { exit::OK })
}

/// `pbibatch validate --lineage [--simulate] JOB...`: static validation, then the live
/// check. Exit 0 (warnings allowed), 1 when the live check could not run (credentials,
/// network), 2 when a file is invalid or names something that does not exist.
/// Writes what `--format short` / `json` collected over the files to stdout (the human form
/// went to stderr as it came).
fn write_collected(
    format: DiagnosticFormat,
    short: &str,
    json: &[serde_json::Value],
) -> Result<(), Error> {
    match format {
        DiagnosticFormat::Human => {}
        DiagnosticFormat::Short => crate::stdout::write(short)?,
        DiagnosticFormat::Json => {
            let text = serde_json::to_string_pretty(json).unwrap_or_else(|_| "[]".into());
            crate::stdout::write(&(text + "\n"))?;
        }
    }
    Ok(())
}

fn lineage(args: &ValidateArgs) -> Result<u8, Error> {
    super::load::runtime()?.block_on(validate_async(args))
}

async fn validate_async(args: &ValidateArgs) -> Result<u8, Error> {
    let overrides = super::load::var_overrides(&args.vars)?;
    let color = crate::term::color_on_stderr();
    let live = LiveOptions {
        simulate: args.simulate,
        sim_profile: args.sim_profile.as_deref(),
    };
    let (mut invalid, mut unreachable) = (false, false);
    let mut json = Vec::new();
    let mut short = String::new();
    for path in &args.jobs {
        let (diags, summary) = match job::load(path, &overrides) {
            Err(d) => {
                invalid = true;
                (d, None)
            }
            Ok(loaded) => {
                let mut diags = loaded.warnings;
                if args.allow_unset_env {
                    diags.drop_unset_env();
                }
                let job = loaded.job;
                match check_live(&job, live).await? {
                    Ok((findings, n_ws)) => {
                        for f in &findings {
                            diags.push_global(f.severity, f.code, format!("live: {}", f.message));
                        }
                        let errors = findings
                            .iter()
                            .filter(|f| f.severity == Severity::Error)
                            .count();
                        invalid |= errors > 0;
                        let warnings = diags
                            .items()
                            .iter()
                            .filter(|d| d.severity == Severity::Warning)
                            .count();
                        let verdict = if errors > 0 {
                            format!(
                                "invalid ({errors} error{})",
                                if errors == 1 { "" } else { "s" }
                            )
                        } else {
                            format!("valid ({} steps", job.steps.len())
                                + &match warnings {
                                    0 => String::new(),
                                    1 => ", 1 warning".into(),
                                    w => format!(", {w} warnings"),
                                }
                                + ")"
                        };
                        (
                            diags,
                            Some(format!(
                                "{}: {verdict}; lineage checked against {n_ws} workspace{}",
                                path.display(),
                                if n_ws == 1 { "" } else { "s" }
                            )),
                        )
                    }
                    Err(message) => {
                        unreachable = true;
                        diags.push_global(
                            Severity::Error,
                            job::Code::LineageCheckFailed,
                            format!("live check failed: {message}"),
                        );
                        (
                            diags,
                            Some(format!("{}: live check not done", path.display())),
                        )
                    }
                }
            }
        };
        match args.format {
            DiagnosticFormat::Human => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(diags.render(DiagFormat::Human, color).as_bytes());
                let line = summary.unwrap_or_else(|| {
                    let n = diags
                        .items()
                        .iter()
                        .filter(|d| d.severity == Severity::Error)
                        .count();
                    format!(
                        "{}: invalid ({n} error{})",
                        path.display(),
                        if n == 1 { "" } else { "s" }
                    )
                });
                let _ = writeln!(err, "{line}");
            }
            DiagnosticFormat::Short => short.push_str(&diags.render(DiagFormat::Short, false)),
            DiagnosticFormat::Json => json.extend(diags.to_json()),
        }
    }
    write_collected(args.format, &short, &json)?;
    Ok(if invalid {
        exit::INVALID
    } else if unreachable {
        exit::FAILED
    } else {
        exit::OK
    })
}
