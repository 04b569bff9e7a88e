//! What a per-step Kestra flow cannot keep from the job, said plainly.
//!
//! Each exported task runs `pbibatch run JOB --select STEP`: one step per process. Kestra's
//! `Dag` starts a task only once every task in its `dependsOn` succeeded (or failed with
//! `allowFailure`), and a failed task fails the flow. So anything that decides a step's fate
//! from its parents' outcomes, or spans several steps at once, changes meaning; these notes
//! name each case so nothing is dropped silently.

use std::collections::HashSet;

use crate::job::model::{Job, Step, StepKind, TriggerRule};

/// One semantic difference between `pbibatch run JOB` and the exported flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The step it concerns; `None` for the whole job.
    pub step: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(id) => write!(f, "step `{id}`: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

fn rule_name(rule: TriggerRule) -> &'static str {
    match rule {
        TriggerRule::AllSuccess => "all_success",
        TriggerRule::AllDone => "all_done",
        TriggerRule::AllFailed => "all_failed",
        TriggerRule::OneFailed => "one_failed",
        TriggerRule::OneSuccess => "one_success",
        TriggerRule::NoneFailed => "none_failed",
        TriggerRule::Always => "always",
    }
}

/// Every note for `job`, job-level first, then steps in job order.
pub(super) fn notes(job: &Job) -> Vec<Note> {
    let mut out = Vec::new();
    for (pool, limit) in &job.pools {
        let members: Vec<&str> = job
            .steps
            .values()
            .filter(|s| s.pool.as_deref() == Some(pool))
            .map(|s| s.id.as_str())
            .collect();
        // The expansions of one fan-out are one Kestra `ForEach`, whose `concurrencyLimit`
        // holds them to the pool.
        let one_for_each = members
            .first()
            .and_then(|first| job.fan_out_of(first))
            .is_some_and(|(parent, _)| {
                members
                    .iter()
                    .all(|m| job.fan_out_of(m).is_some_and(|(p, _)| p == parent))
            });
        let members = members.len();
        if members > *limit as usize && !one_for_each {
            out.push(Note {
                step: None,
                message: format!(
                    "pool `{pool}` (limit {limit}, {members} steps) is not enforced: each step runs in its own task, and only the Dag's `concurrent` limits them"
                ),
            });
        }
    }
    let has_dependents: HashSet<&str> = job
        .steps
        .values()
        .flat_map(|s| s.depends_on.iter().map(String::as_str))
        .collect();
    for (id, spec) in job.awaiting_discovery() {
        out.push(Note {
            step: Some(id.to_string()),
            message: format!(
                "`for_each: discover` finds the semantic models of {} when the task runs, so they cannot be a Kestra `ForEach`: the task runs them all (`--select {id}`), its `concurrency` and retries applying inside it",
                spec.workspace
            ),
        });
    }
    for step in job.steps.values() {
        // The expansions of a `for_each` are one Kestra task: one note for all of them.
        let owner = job
            .fan_out_of(&step.id)
            .map_or(step.id.clone(), |(parent, _)| parent.to_string());
        let mut add = |message: String| {
            let note = Note {
                step: Some(owner.clone()),
                message,
            };
            if !out.contains(&note) {
                out.push(note);
            }
        };
        if let Some(message) = trigger_note(job, step) {
            add(message);
        }
        if let Some(expr) = &step.when {
            if expr.contains("steps.") {
                add(format!(
                    "`when: {expr}` reads `steps.*` of dependencies that run in other tasks; inside the task they show as `succeeded` with 0 attempts and `selected: false`"
                ));
            }
            if expr.contains("run.id") || expr.contains("run.started_at") {
                add(format!(
                    "`when: {expr}` reads `run.id`/`run.started_at`, which are those of the task's own run, not of the flow's execution"
                ));
            }
            if has_dependents.contains(step.id.as_str()) {
                add(
                    "when its `when:` condition is false the task skips the step and succeeds, so its dependents still run (in one `pbibatch run` they would be skipped under all_success)"
                        .to_string(),
                );
            }
        }
        if let StepKind::Report(r) = &step.kind
            && r.export.path.is_absolute()
        {
            add(format!(
                "the export is written to {} inside the task's container or worker and not collected (use a relative `export.path` to get it as a Kestra output file)",
                r.export.path.display()
            ));
        }
        if let StepKind::Webhook(hook) = &step.kind
            && webhook_reads_the_run(hook.body.as_ref())
        {
            add("the webhook's run summary (`${run.*}`, `${steps.*}`, or the default text) describes only its own task's run, not the whole flow".to_string());
        }
    }
    out
}

/// True for a failure notification: a `one_failed` step with dependencies that no step
/// depends on. It is exported as a flow `errors:` task, which Kestra runs when a task failed.
pub(crate) fn runs_on_errors(job: &Job, step: &Step) -> bool {
    step.trigger == TriggerRule::OneFailed
        && !step.depends_on.is_empty()
        && !job
            .steps
            .values()
            .any(|s| s.depends_on.iter().any(|d| d == &step.id))
}

/// The note for a trigger rule other than all_success on a step with dependencies.
fn trigger_note(job: &Job, step: &Step) -> Option<String> {
    if step.trigger == TriggerRule::AllSuccess || step.depends_on.is_empty() {
        return None;
    }
    if runs_on_errors(job, step) {
        return Some(
            "`trigger: one_failed` runs as a flow `errors:` task: when any task of the flow failed (not only one of its dependencies), with its dependencies counted as failed (`--unselected-as failed`)"
                .to_string(),
        );
    }
    let rule = rule_name(step.trigger);
    let base = format!(
        "`trigger: {rule}` cannot be expressed by Kestra's Dag, which starts a task only after every `dependsOn` task succeeded"
    );
    let consequence = match step.trigger {
        TriggerRule::OneFailed | TriggerRule::AllFailed => {
            "; the task then finds no failed dependency and skips the step: it never runs. Keep it in a whole-job task, or move it to the flow's `errors:` tasks"
        }
        TriggerRule::AllDone | TriggerRule::Always => {
            "; the step no longer runs after a failed dependency"
        }
        TriggerRule::OneSuccess | TriggerRule::NoneFailed => {
            "; the step no longer runs when some dependency failed or was skipped"
        }
        TriggerRule::AllSuccess => "",
    };
    Some(format!("{base}{consequence}"))
}

/// True when a webhook sends the default summary or a body with run placeholders.
fn webhook_reads_the_run(body: Option<&serde_json::Value>) -> bool {
    fn any_placeholder(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains("${run.") || s.contains("${steps."),
            serde_json::Value::Array(a) => a.iter().any(any_placeholder),
            serde_json::Value::Object(m) => m.values().any(any_placeholder),
            _ => false,
        }
    }
    body.is_none_or(any_placeholder)
}

/// Env var names a `when:` expression reads (`env.NAME`, `env["NAME"]`, `env['NAME']`), in
/// order of appearance, without duplicates.
pub(super) fn env_in_condition(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("env") {
        let start = i + pos;
        i = start + 3;
        // `env` must be a whole identifier (not `myenv` or `env_x`).
        let before_ok = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        };
        if !before_ok {
            continue;
        }
        let rest = &expr[i..];
        let name = if let Some(r) = rest.strip_prefix('.') {
            r.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
        } else if let Some(r) = rest.strip_prefix("[\"") {
            r.split('"').next().unwrap_or("")
        } else if let Some(r) = rest.strip_prefix("['") {
            r.split('\'').next().unwrap_or("")
        } else {
            ""
        };
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_env_names_in_conditions() {
        assert_eq!(
            env_in_condition("env.A == 'x' && env[\"B\"] != '' || env['C'] == myenv.D"),
            ["A", "B", "C"]
        );
        assert_eq!(env_in_condition("vars.env == 'x'"), Vec::<String>::new());
        assert_eq!(env_in_condition("env.A || env.A"), ["A"]);
    }

    #[test]
    fn webhook_summary_detection() {
        assert!(webhook_reads_the_run(None));
        assert!(webhook_reads_the_run(Some(
            &serde_json::json!({"t": "${run.status}"})
        )));
        assert!(!webhook_reads_the_run(Some(
            &serde_json::json!({"t": "fixed"})
        )));
    }
}
