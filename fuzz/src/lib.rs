//! What the fuzz targets exercise: a job file's bytes through everything `validate`, `plan`
//! and `graph` do before a run, including rendering the diagnostics (their spans come from the
//! parser, so a bad span would panic there, not in the parser).

use std::sync::Arc;

use pbibatch::job::{self, DiagFormat};
use pbibatch::plan::{self, Plan};

/// Env lookups answered for some names and not others, so both the warning path (unset) and
/// interpolation (set) run.
fn env(name: &str) -> Option<String> {
    (name.len() % 2 == 0).then(|| format!("value-of-{name}"))
}

/// Parses and validates `data` as a job file, then plans and renders the result. Returns the
/// number of error diagnostics (0 for a valid job) so callers can tell outcomes apart.
pub fn parse_and_validate(data: &[u8]) -> usize {
    match job::load_bytes("fuzz.yaml", data, &[], &env) {
        Ok(loaded) => {
            let _ = loaded.warnings.render(DiagFormat::Short, false);
            let job = Arc::new(loaded.job);
            let _ = plan::graph::mermaid(&job);
            let _ = plan::graph::dot(&job);
            if let Ok(p) = Plan::new(job) {
                let _ = plan::render::to_text(&p);
                let _ = plan::render::to_json(&p);
            }
            0
        }
        Err(diags) => {
            let _ = diags.render(DiagFormat::Human, false);
            let _ = diags.render(DiagFormat::Short, false);
            let _ = diags.to_json();
            diags.items().len()
        }
    }
}

/// The first error message of `data` with digits removed: a cheap stand-in for coverage
/// that the fallback mutator uses to keep inputs that reach a new kind of diagnostic.
pub fn outcome_signature(data: &[u8]) -> String {
    match job::load_bytes("fuzz.yaml", data, &[], &env) {
        Ok(loaded) => format!("valid:{}", loaded.job.steps.len().min(3)),
        Err(diags) => diags
            .items()
            .first()
            .map(|d| {
                // Drop what the input names (`quoted` text, numbers): keep the kind of problem.
                let mut inside = false;
                d.message
                    .chars()
                    .filter(|&c| {
                        if c == '`' {
                            inside = !inside;
                        }
                        !inside && !c.is_ascii_digit()
                    })
                    .take(60)
                    .collect()
            })
            .unwrap_or_default(),
    }
}
