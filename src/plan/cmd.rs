//! The `validate`, `plan`, `graph` and `schema` commands.

use std::io::Write;
use std::sync::Arc;

use crate::cli::{DiagnosticFormat, GraphArgs, GraphFormat, PlanArgs, PlanFormat, ValidateArgs};
use crate::error::{Error, exit};
use crate::job::{self, DiagFormat, Diagnostics};
use crate::plan::{Plan, graph, render};

fn write_stdout(text: &str) -> Result<(), Error> {
    crate::stdout::write(text)
}

/// `pbibatch validate FILE...`: exit 0 when every file is valid (warnings allowed), 2
/// otherwise. Human diagnostics go to stderr; `short` and `json` to stdout.
pub(crate) fn validate(args: &ValidateArgs) -> Result<u8, Error> {
    if args.lineage {
        return crate::discover::validate_lineage(args);
    }
    let overrides =
        job::parse_var_overrides(&args.vars).map_err(|e| Error::Invalid(e.to_string()))?;
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
    match args.format {
        DiagnosticFormat::Human => {}
        DiagnosticFormat::Short => write_stdout(&short)?,
        DiagnosticFormat::Json => {
            let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| "[]".into());
            write_stdout(&(text + "\n"))?;
        }
    }
    Ok(if failed { exit::INVALID } else { exit::OK })
}

/// Loads a job for `plan` / `graph`, printing its problems on failure.
fn load_or_report(path: &std::path::Path, vars: &[String]) -> Result<job::model::Job, Error> {
    let overrides = job::parse_var_overrides(vars).map_err(|e| Error::Invalid(e.to_string()))?;
    match job::load(path, &overrides) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                let _ = std::io::stderr()
                    .write_all(loaded.warnings.render(DiagFormat::Short, false).as_bytes());
            }
            Ok(loaded.job)
        }
        Err(d) => {
            let _ = std::io::stderr().write_all(
                d.render(DiagFormat::Human, crate::term::color_on_stderr())
                    .as_bytes(),
            );
            Err(Error::Reported)
        }
    }
}

/// `pbibatch plan FILE`: waves, selected steps and their resolved settings.
pub(crate) fn plan(args: &PlanArgs) -> Result<u8, Error> {
    let job = load_or_report(&args.job, &args.selection.vars)?;
    let selected = crate::plan::select(&job, &args.selection.select, &args.selection.exclude)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let plan =
        Plan::with_selected(Arc::new(job), selected).map_err(|e| Error::Invalid(e.to_string()))?;
    let capacities = if args.capacities {
        Some(crate::run::capacities_now(
            &plan,
            args.simulate,
            args.sim_profile.as_deref(),
        )?)
    } else {
        None
    };
    let text = match (args.format, capacities) {
        (PlanFormat::Text, None) => render::to_text(&plan),
        (PlanFormat::Json, None) => render::to_json(&plan),
        (PlanFormat::Text, Some(c)) => format!("{}\n{}", render::to_text(&plan), c.to_text()),
        (PlanFormat::Json, Some(c)) => {
            let mut v: serde_json::Value =
                serde_json::from_str(&render::to_json(&plan)).unwrap_or_default();
            v["capacity_limits"] = serde_json::to_value(&c).unwrap_or_default();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
    };
    write_stdout(&text)?;
    Ok(exit::OK)
}

/// `pbibatch graph FILE`: Mermaid or dot.
pub(crate) fn graph(args: &GraphArgs) -> Result<u8, Error> {
    let job = load_or_report(&args.job, &[])?;
    let text = match args.format {
        GraphFormat::Mermaid => graph::mermaid(&job),
        GraphFormat::Dot => graph::dot(&job),
    };
    write_stdout(&text)?;
    Ok(exit::OK)
}

/// `pbibatch schema`: the job file's JSON Schema.
pub(crate) fn schema() -> Result<u8, Error> {
    write_stdout(&job::schema::schema_text())?;
    Ok(exit::OK)
}
