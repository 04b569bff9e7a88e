//! A job as a Kestra flow: one `io.kestra.plugin.core.flow.Dag` task whose child tasks are
//! the job's steps, each an `io.kestra.plugin.scripts.shell.Commands` task running
//! `pbibatch run JOB --select STEP --kestra`.
//!
//! Property names follow Kestra's own sources and plugin docs (cited in
//! `docs/kestra-export.md`): `Dag.tasks[].task` / `dependsOn` / `concurrent`; on every task
//! `timeout` and `retry` (`type: constant|exponential`, `maxAttempts`, `interval`,
//! `maxInterval`, ISO-8601 durations) and `allowFailure`; on script tasks `containerImage`,
//! `taskRunner.type`, `namespaceFiles`, `env`, `commands`, `outputFiles`; the
//! `io.kestra.plugin.core.trigger.Schedule` trigger's `cron`.
//!
//! Who retries: Kestra. Each task passes `--retries 0` so one Kestra attempt is one pbibatch
//! attempt (otherwise the two would multiply), and Kestra's `retry` carries the step's
//! `retries`, `retry_backoff` and `max_backoff`. pbibatch still enforces the step's `timeout`
//! itself, cancelling the refresh remotely; Kestra's `timeout` is that plus a grace period, a
//! backstop for a process that hangs.

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::export::ExportError;
use crate::export::iso8601;
use crate::export::notes::{self, Note};
use crate::job::model::{Job, Step, StepKind};

mod names;

use names::{check_cron, check_namespace, kestra_id, task_ids, unique_id};

/// The container image used when neither `--image` nor `--process` is given.
pub(crate) const DEFAULT_IMAGE: &str = "pbibatch:latest";

/// Added to a step's `timeout` for Kestra's: pbibatch's own timeout fires first and cancels
/// the remote refresh (a few HTTP calls, perhaps throttled); Kestra's only catches a hang.
pub(crate) const TIMEOUT_GRACE: Duration = Duration::from_secs(5 * 60);

/// Where the tasks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runner {
    /// `io.kestra.plugin.scripts.runner.docker.Docker` with this `containerImage`.
    Docker { image: String },
    /// `io.kestra.plugin.core.runner.Process`: on the worker, `pbibatch` on its PATH.
    Process,
}

/// Everything the export needs besides the job.
#[derive(Debug, Clone)]
pub(crate) struct KestraOptions {
    pub namespace: String,
    /// Five-field cron (UTC) for a Schedule trigger.
    pub cron: Option<String>,
    pub runner: Runner,
    /// The job file's path in the task's working directory (a namespace file).
    pub job_path: String,
    /// `--var` overrides, repeated on every task's command line.
    pub vars: Vec<(String, String)>,
}

/// The exported flow and what it could not keep.
#[derive(Debug, Clone)]
pub(crate) struct KestraFlow {
    /// The flow, with a comment header (including every note).
    pub yaml: String,
    /// Semantics that differ from `pbibatch run JOB` (also in the YAML comments).
    pub notes: Vec<Note>,
}

/// Renders `job` as a Kestra flow.
pub(crate) fn export(job: &Job, options: &KestraOptions) -> Result<KestraFlow, ExportError> {
    check_namespace(&options.namespace)?;
    if let Some(cron) = &options.cron {
        check_cron(cron)?;
    }
    if let Runner::Docker { image } = &options.runner
        && (image.is_empty() || image.chars().any(char::is_whitespace))
    {
        return Err(ExportError::Image(image.clone()));
    }
    let ids = task_ids(job);
    let dag_id = unique_id("dag", &ids);
    let mut secrets: Vec<String> = Vec::new();
    let mut dag_tasks = Vec::new();
    let mut error_tasks = Vec::new();
    for step in job.steps.values() {
        let fan_out = job.fan_out_of(&step.id).map(|(parent, _)| parent);
        if let Some(parent) = fan_out
            && job.fan_outs[parent]
                .items
                .first()
                .is_none_or(|i| step.id != crate::job::model::FanOut::expansion_id(parent, &i.key))
        {
            // Every expansion is the one ForEach task written at the first.
            continue;
        }
        let env = env_needed(job, step);
        for name in &env {
            if !secrets.contains(name) {
                secrets.push(name.clone());
            }
        }
        // A failure notification runs where Kestra runs tasks after a failure: the flow's
        // `errors:` (a Dag task would never run, as the Dag starts a task only after every
        // dependency succeeded).
        if notes::runs_on_errors(job, step) {
            error_tasks.push(step_task(step, &ids, &env, options, true));
            continue;
        }
        let mut entry = serde_json::Map::new();
        let task = match fan_out {
            Some(parent) => for_each_task(job, parent, &ids, &env, options),
            None => step_task(step, &ids, &env, options, false),
        };
        entry.insert("task".into(), task);
        if !step.depends_on.is_empty() {
            let mut deps: Vec<Value> = Vec::new();
            for d in &step.depends_on {
                let id = Value::String(ids[d].clone());
                if !deps.contains(&id) {
                    deps.push(id);
                }
            }
            entry.insert("dependsOn".into(), Value::Array(deps));
        }
        dag_tasks.push(Value::Object(entry));
    }

    let mut flow = serde_json::Map::new();
    flow.insert("id".into(), Value::String(kestra_id(&job.name, "job")));
    flow.insert("namespace".into(), Value::String(options.namespace.clone()));
    let description = match &job.description {
        Some(d) => format!("{d} (pbibatch job `{}`, one task per step)", job.name),
        None => format!("pbibatch job `{}`, one task per step", job.name),
    };
    flow.insert("description".into(), Value::String(description));
    flow.insert(
        "tasks".into(),
        json!([{
            "id": dag_id,
            "type": "io.kestra.plugin.core.flow.Dag",
            "concurrent": job.concurrency,
            "tasks": dag_tasks,
        }]),
    );
    if !error_tasks.is_empty() {
        flow.insert("errors".into(), Value::Array(error_tasks));
    }
    if let Some(cron) = &options.cron {
        flow.insert(
            "triggers".into(),
            json!([{
                "id": "schedule",
                "type": "io.kestra.plugin.core.trigger.Schedule",
                "cron": cron,
            }]),
        );
    }

    let notes = notes::notes(job);
    let mut yaml = header(job, options, &secrets, &notes);
    let mut ser = serde_saphyr::SerializerOptions::default();
    // Long command lines stay on one line (a folded `>` scalar would hide the command).
    ser.prefer_block_scalars = false;
    yaml.push_str(
        &serde_saphyr::to_string_with_options(&Value::Object(flow), ser)
            .map_err(|e| ExportError::Serialize(e.to_string()))?,
    );
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    Ok(KestraFlow { yaml, notes })
}

/// The Kestra task of one step.
fn step_task(
    step: &Step,
    ids: &IndexMap<String, String>,
    env: &[String],
    options: &KestraOptions,
    on_errors: bool,
) -> Value {
    let mut task = serde_json::Map::new();
    task.insert("id".into(), Value::String(ids[&step.id].clone()));
    task.insert(
        "type".into(),
        Value::String("io.kestra.plugin.scripts.shell.Commands".into()),
    );
    task.insert("description".into(), Value::String(describe(step)));
    match &options.runner {
        Runner::Docker { image } => {
            task.insert("containerImage".into(), Value::String(image.clone()));
            task.insert(
                "taskRunner".into(),
                json!({"type": "io.kestra.plugin.scripts.runner.docker.Docker"}),
            );
        }
        Runner::Process => {
            task.insert(
                "taskRunner".into(),
                json!({"type": "io.kestra.plugin.core.runner.Process"}),
            );
        }
    }
    task.insert(
        "namespaceFiles".into(),
        json!({"enabled": true, "include": [options.job_path]}),
    );
    if !env.is_empty() {
        let map: serde_json::Map<String, Value> = env
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    Value::String(format!("{{{{ secret('{name}') }}}}")),
                )
            })
            .collect();
        task.insert("env".into(), Value::Object(map));
    }
    task.insert(
        "timeout".into(),
        Value::String(iso8601::format(step.timeout.saturating_add(TIMEOUT_GRACE))),
    );
    if step.retries > 0 {
        task.insert("retry".into(), retry(step));
    }
    if step.continue_on_error {
        task.insert("allowFailure".into(), Value::Bool(true));
    }
    // In `errors:`, the dependencies (other tasks) count as failed: the flow failed.
    task.insert(
        "commands".into(),
        json!([command(
            &step.id,
            &options.job_path,
            &options.vars,
            on_errors
        )]),
    );
    // The working directory is discarded after the task: an exported file is kept only as a
    // Kestra output file (downloadable, and readable by later tasks).
    if let StepKind::Report(r) = &step.kind
        && r.export.path.is_relative()
    {
        task.insert("outputFiles".into(), json!([output_file(&r.export.path)]));
    }
    Value::Object(task)
}

/// An export's path as an `outputFiles` entry. Kestra reads each entry as a glob (and
/// renders it with Pebble first): glob characters are escaped, so the entry names this one
/// file (a `[`, `*` or `?` of a `${each.value}` would otherwise match another file or none,
/// and `{{` would be an expression).
fn output_file(path: &std::path::Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().replace('\\', "/").chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Kestra task of a step with `for_each`: an `io.kestra.plugin.core.flow.ForEach` over
/// the keys, running `pbibatch run JOB --select 'step[{{ taskrun.value }}]'` once per key,
/// as many at once as the job's `concurrency` and the expansions' pool allow.
fn for_each_task(
    job: &Job,
    parent: &str,
    ids: &IndexMap<String, String>,
    env: &[String],
    options: &KestraOptions,
) -> Value {
    let fan_out = &job.fan_outs[parent];
    let expansions: Vec<&Step> = fan_out
        .items
        .iter()
        .filter_map(|i| {
            job.steps
                .get(&crate::job::model::FanOut::expansion_id(parent, &i.key))
        })
        .collect();
    let mut child = step_task(expansions[0], ids, env, options, false);
    if let Value::Object(task) = &mut child {
        // Not the id of a step's task (a step may be named `<step>_each`).
        let id = unique_id(&format!("{}_each", ids[parent]), ids);
        task.insert("id".into(), Value::String(id));
        task.insert(
            "description".into(),
            Value::String(format!(
                "pbibatch step `{parent}[KEY]`, KEY = {{{{ taskrun.value }}}}"
            )),
        );
        let line = command(
            &format!("{parent}[KEY]"),
            &options.job_path,
            &options.vars,
            false,
        );
        task.insert("commands".into(), json!([each_command(&line, parent)]));
        let paths: Vec<Value> = expansions
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Report(r) if r.export.path.is_relative() => {
                    Some(Value::String(output_file(&r.export.path)))
                }
                _ => None,
            })
            .collect();
        if !paths.is_empty() {
            task.insert("outputFiles".into(), Value::Array(paths));
        }
    }
    let keys: Vec<Value> = fan_out
        .items
        .iter()
        .map(|i| Value::String(i.key.clone()))
        .collect();
    // Each child is a pbibatch run of its own, which cannot see the others' pool slots: the
    // ForEach holds the expansions to their pool (notes.rs reports the pools it cannot).
    let pool_limit = expansions[0]
        .pool
        .as_ref()
        .and_then(|p| job.pools.get(p))
        .copied();
    let limit = pool_limit.map_or(job.concurrency, |p| p.min(job.concurrency));
    json!({
        "id": ids[parent],
        "type": "io.kestra.plugin.core.flow.ForEach",
        "description": format!("pbibatch step `{parent}`: for_each over {} values", keys.len()),
        "values": keys,
        "concurrencyLimit": limit,
        "tasks": [child],
    })
}

/// The command of a ForEach child: `'step[KEY]'` becomes `'step[{{ taskrun.value }}]'`,
/// the one Pebble expression; anything else that looks like Pebble stays raw.
fn each_command(line: &str, parent: &str) -> String {
    let line = line
        .strip_prefix("{% raw %}")
        .and_then(|l| l.strip_suffix("{% endraw %}"))
        .unwrap_or(line);
    let placeholder = shell_quote(&format!("{parent}[KEY]"));
    let Some((before, after)) = line.split_once(&placeholder) else {
        return line.to_string();
    };
    let raw = |s: &str| {
        if s.contains("{{") || s.contains("{%") {
            format!("{{% raw %}}{s}{{% endraw %}}")
        } else {
            s.to_string()
        }
    };
    format!(
        "{}'{parent}[{{{{ taskrun.value }}}}]'{}",
        raw(before),
        raw(after)
    )
}

/// Kestra's `retry` for a step's `retries`, `retry_backoff` and `max_backoff`: pbibatch's
/// backoff doubles from `retry_backoff` up to `max_backoff`, which is Kestra's exponential
/// retry (delay factor 2 by default); when it cannot grow it is a constant one.
/// `maxAttempts` (Kestra's name since it deprecated `maxAttempt`) counts every attempt, the
/// first included.
fn retry(step: &Step) -> Value {
    let attempts = step.retries.saturating_add(1);
    if step.max_backoff > step.retry_backoff {
        json!({
            "type": "exponential",
            "maxAttempts": attempts,
            "interval": iso8601::format(step.retry_backoff),
            "maxInterval": iso8601::format(step.max_backoff),
        })
    } else {
        json!({
            "type": "constant",
            "maxAttempts": attempts,
            "interval": iso8601::format(step.retry_backoff.min(step.max_backoff)),
        })
    }
}

/// The shell command of a step's task. Kestra renders `commands` with Pebble, so a value
/// holding `{{` or `{%` is wrapped in `{% raw %}`.
fn command(
    step_id: &str,
    job_path: &str,
    vars: &[(String, String)],
    unselected_failed: bool,
) -> String {
    let mut words = vec![
        "pbibatch".to_string(),
        "run".to_string(),
        shell_quote(job_path),
        "--select".to_string(),
        shell_quote(step_id),
    ];
    for (k, v) in vars {
        words.push("--var".to_string());
        words.push(shell_quote(&format!("{k}={v}")));
    }
    // --kestra: outputs and metrics for Kestra; --retries 0: Kestra retries (see the module
    // doc); --state none: the working directory is thrown away after the task, and parallel
    // tasks of one job must not wait on each other's job lock.
    words.extend(
        ["--kestra", "--retries", "0", "--state", "none"]
            .iter()
            .map(|s| s.to_string()),
    );
    if unselected_failed {
        words.extend(["--unselected-as".to_string(), "failed".to_string()]);
    }
    let line = words.join(" ");
    if line.contains("{{") || line.contains("{%") {
        format!("{{% raw %}}{line}{{% endraw %}}")
    } else {
        line
    }
}

/// POSIX single-quoting when a word holds anything but safe characters.
fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A one-line description of what the step does remotely. URLs (`sas_flow`, `webhook`) are
/// left out: they are credentials.
fn describe(step: &Step) -> String {
    let what = match &step.kind {
        StepKind::SasFlow(_) | StepKind::Webhook(_) => step.type_name().to_string(),
        other => format!("{} {}", step.type_name(), other.resource_label()),
    };
    format!("pbibatch step `{}`: {what}", step.id)
}

/// Env var names a step's task needs: `${env.X}` in the step, in its connection (when the step
/// calls Power BI / Fabric), and `env.X` read by its `when:`. Found by resolving a job that
/// holds only this step and that connection with an empty environment.
fn env_needed(job: &Job, step: &Step) -> Vec<String> {
    let mut solo = job.clone();
    solo.description = None;
    solo.steps = IndexMap::from([(step.id.clone(), step.clone())]);
    solo.connections
        .retain(|name, _| name == &step.connection && crate::job::needs_auth(&step.kind));
    let mut names: Vec<String> = match crate::job::resolve_env(&solo, &|_| None) {
        Ok(_) => Vec::new(),
        Err(missing) => missing.missing.keys().cloned().collect(),
    };
    if let Some(expr) = &step.when {
        for name in notes::env_in_condition(expr) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The comment block above the flow: where it came from, what to set up in Kestra, and
/// every note.
fn header(job: &Job, options: &KestraOptions, secrets: &[String], notes: &[Note]) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "# Kestra flow exported by `pbibatch export kestra` from {} (job `{}`).\n",
        options.job_path, job.name
    ));
    h.push_str(
        "# Each task runs one step (`pbibatch run JOB --select STEP`); the Dag orders them.\n",
    );
    h.push_str(&format!(
        "# Before running it: upload the job file as the namespace file `{}` of namespace `{}`",
        options.job_path, options.namespace
    ));
    if secrets.is_empty() {
        h.push_str(".\n");
    } else {
        h.push_str(",\n# and create these Kestra secrets: ");
        h.push_str(&secrets.join(", "));
        h.push_str(".\n");
    }
    if !notes.is_empty() {
        h.push_str("#\n# Not kept from the job (Kestra's Dag cannot express it):\n");
        for note in notes {
            h.push_str(&format!("# - {note}\n"));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_pebble_escaping() {
        assert_eq!(shell_quote("jobs/a.yaml"), "jobs/a.yaml");
        assert_eq!(shell_quote("my jobs/a.yaml"), "'my jobs/a.yaml'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let line = command("a", "j.yaml", &[("x".into(), "{{ y }}".into())], false);
        assert!(line.starts_with("{% raw %}pbibatch run j.yaml --select a --var 'x={{ y }}'"));
        assert!(line.ends_with("{% endraw %}"));
    }

    #[test]
    fn cron_and_namespace_checks() {
        assert!(check_cron("0 2 * * *").is_ok());
        assert!(check_cron("*/15 1-5 * JAN MON-FRI").is_ok());
        assert!(check_cron("@daily").is_ok());
        assert!(check_cron("0 2 * *").is_err());
        assert!(check_cron("0 2 * * * *").is_err());
        assert!(check_cron("0 2 * * $(rm)").is_err());
        assert!(check_cron("0,30 */2 1-15 * mon-fri").is_ok());
        assert!(check_cron("0 2 ? * 7").is_ok());
        for (bad, reason) in [
            ("99 2 * * *", "minute `99` is out of range 0-59"),
            ("0 25 * * *", "hour `25` is out of range 0-23"),
            ("0 2 0 * *", "day-of-month `0` is out of range 1-31"),
            ("0 2 * 13 *", "month `13` is out of range 1-12"),
            ("0 2 * * MON-XYZ", "day-of-week `XYZ` is not a number"),
            (
                "*/0 * * * *",
                "minute step `/0` must be a number from 1 to 59",
            ),
            ("0 5-2 * * *", "hour range `5-2` runs backwards"),
            ("0 ? * * *", "hour `?` is not a number"),
            ("0 2 * *", "4 fields, expected five"),
        ] {
            match check_cron(bad) {
                Err(ExportError::Cron { reason: got, .. }) => {
                    assert!(got.starts_with(reason), "{bad}: {got}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(check_namespace("company.team").is_ok());
        assert!(check_namespace("Company").is_err());
        assert!(check_namespace(".x").is_err());
        assert!(check_namespace("").is_err());
    }
}
