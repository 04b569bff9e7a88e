//! `when:` conditions: CEL expressions evaluated once a step's dependencies are final.
//!
//! Variables: `vars` (map of strings), `env` (map of strings), `run` (`id`, `job`,
//! `started_at` as an RFC 3339 string) and `steps.<dep>` for each dependency of the step:
//! `status` (final status name), `attempts` (int), `duration_secs` (float, from the first
//! attempt's start to the step's end; 0 without attempts), `selected` (bool), `fresh`
//! (bool) and `overran` (bool: it ran past its expected duration). A dependency outside the selection counts as satisfied, so it shows as
//! `succeeded`, 0 attempts, `selected: false`. A freshness skip (`skip_if_fresh`) shows as it
//! does in the report, `status == 'skipped'`, with `fresh: true`; it satisfies trigger rules,
//! so a condition is evaluated after it as after a success.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program, Value};

use crate::event::StepStatus;

/// A dependency's outcome as `when:` sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DepFacts {
    pub status: StepStatus,
    pub attempts: u32,
    pub duration_secs: f64,
    pub selected: bool,
    /// A freshness skip (`skip_if_fresh`): `status` is `skipped`, the data is current.
    pub fresh: bool,
    /// It ran past its expected duration.
    pub overran: bool,
}

/// Everything a condition can read (owned: evaluation runs on a thread of its own).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConditionInput {
    pub vars: Vec<(String, String)>,
    pub env: Arc<HashMap<String, String>>,
    pub run_id: String,
    pub job: String,
    pub started_at: String,
    pub steps: Vec<(String, DepFacts)>,
}

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ConditionError {
    #[error("parse condition `{expr}`: {message}")]
    Parse { expr: String, message: String },
    #[error("evaluate condition `{expr}`: {message}")]
    Evaluate { expr: String, message: String },
    #[error("evaluate condition `{expr}`: expected a bool, got {got}")]
    NotBool { expr: String, got: String },
    #[error("evaluate condition `{expr}`: still running after {}", humantime::format_duration(*.limit))]
    TooSlow {
        expr: String,
        limit: std::time::Duration,
    },
}

/// Evaluates `expr`; `Ok(false)` means the step is skipped.
pub(crate) fn evaluate(expr: &str, input: &ConditionInput) -> Result<bool, ConditionError> {
    let program = Program::compile(expr).map_err(|e| ConditionError::Parse {
        expr: expr.to_string(),
        message: e.to_string(),
    })?;
    let mut ctx = Context::default();
    ctx.add_variable_from_value(
        "vars",
        string_map(input.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    ctx.add_variable_from_value(
        "env",
        string_map(input.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    let run: HashMap<String, Value> = [
        ("id".to_string(), Value::from(input.run_id.as_str())),
        ("job".to_string(), Value::from(input.job.as_str())),
        (
            "started_at".to_string(),
            Value::from(input.started_at.as_str()),
        ),
    ]
    .into_iter()
    .collect();
    ctx.add_variable_from_value("run", run);
    let steps: HashMap<String, Value> = input
        .steps
        .iter()
        .map(|(id, facts)| {
            let fields: HashMap<String, Value> = [
                ("status".to_string(), Value::from(facts.status.as_str())),
                (
                    "attempts".to_string(),
                    Value::Int(i64::from(facts.attempts)),
                ),
                (
                    "duration_secs".to_string(),
                    Value::Float(facts.duration_secs),
                ),
                ("selected".to_string(), Value::Bool(facts.selected)),
                ("fresh".to_string(), Value::Bool(facts.fresh)),
                ("overran".to_string(), Value::Bool(facts.overran)),
            ]
            .into_iter()
            .collect();
            (id.to_string(), Value::from(fields))
        })
        .collect();
    ctx.add_variable_from_value("steps", steps);
    match program.execute(&ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(ConditionError::NotBool {
            expr: expr.to_string(),
            got: other.type_of().to_string(),
        }),
        Err(e) => Err(ConditionError::Evaluate {
            expr: expr.to_string(),
            message: e.to_string(),
        }),
    }
}

fn string_map<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> HashMap<String, Value> {
    pairs
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(env: &HashMap<String, String>) -> ConditionInput {
        ConditionInput {
            vars: vec![("export".into(), "yes".into())],
            env: Arc::new(env.clone()),
            run_id: "r1".into(),
            job: "order_list".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            steps: vec![(
                "model".into(),
                DepFacts {
                    status: StepStatus::Succeeded,
                    attempts: 2,
                    duration_secs: 12.5,
                    selected: true,
                    fresh: false,
                    overran: true,
                },
            )],
        }
    }

    #[test]
    fn reads_vars_env_run_and_steps() {
        let env: HashMap<String, String> = [("STAGE".to_string(), "prod".to_string())].into();
        let i = input(&env);
        assert_eq!(evaluate("vars.export == 'yes'", &i), Ok(true));
        assert_eq!(evaluate("env.STAGE == 'dev'", &i), Ok(false));
        assert_eq!(
            evaluate("run.job == 'order_list' && run.id == 'r1'", &i),
            Ok(true)
        );
        assert_eq!(
            evaluate(
                "steps.model.status == 'succeeded' && steps.model.attempts > 1 && steps.model.duration_secs < 20.0",
                &i
            ),
            Ok(true)
        );
        assert_eq!(evaluate("steps.model.overran", &i), Ok(true));
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        let env = HashMap::new();
        let i = input(&env);
        assert!(matches!(
            evaluate("vars.missing == 'x'", &i),
            Err(ConditionError::Evaluate { .. })
        ));
        assert!(matches!(
            evaluate("vars.export", &i),
            Err(ConditionError::NotBool { .. })
        ));
        assert!(matches!(
            evaluate("vars.export ==", &i),
            Err(ConditionError::Parse { .. })
        ));
    }
}
