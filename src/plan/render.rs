//! `pbibatch plan`: waves, selected steps with their resolved settings, pools and limits,
//! as text or JSON. Secrets show as `***` (through [`crate::secret::Secret`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::job::model::{HeaderValue, Step, StepKind, TriggerRule};
use crate::plan::Plan;

/// The JSON form of a plan.
#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    job: &'a str,
    file: String,
    concurrency: u32,
    pools: &'a indexmap::IndexMap<String, u32>,
    selected: Vec<&'a str>,
    waves: &'a [Vec<String>],
    /// [`StepJson`]s without the settings that do not apply to their step.
    steps: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct StepJson<'a> {
    #[serde(flatten)]
    step: &'a Step,
    resource: String,
    /// Selected dependencies (unselected ones count as satisfied).
    selected_parents: Vec<String>,
    /// Steps on the longest path from this one to the end, itself included.
    remaining_path: u32,
}

/// The plan as pretty JSON.
pub(crate) fn to_json(plan: &Plan) -> String {
    let job = &plan.job;
    let steps = plan
        .selected
        .iter()
        .filter_map(|id| job.steps.get(id))
        .map(|s| {
            let json = StepJson {
                step: s,
                resource: s.kind.resource_label(),
                selected_parents: plan.parents(&s.id),
                remaining_path: plan.remaining.get(&s.id).copied().unwrap_or(1),
            };
            let mut value = serde_json::to_value(json).unwrap_or_default();
            // Settings that do not apply to this step are not shown (as in the text form).
            if let Some(fields) = value.as_object_mut() {
                if !s.kind.watches_remote_run() {
                    fields.shift_remove("poll_interval");
                    fields.shift_remove("if_running");
                }
                if !crate::job::needs_auth(&s.kind) {
                    fields.shift_remove("connection");
                }
            }
            value
        })
        .collect();
    let out = PlanJson {
        job: &job.name,
        file: job.file.display().to_string(),
        concurrency: job.concurrency,
        pools: &job.pools,
        selected: plan.selected.iter().map(String::as_str).collect(),
        waves: &plan.waves,
        steps,
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|_| "{}".into()) + "\n"
}

fn dur(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The plan as text for people.
pub(crate) fn to_text(plan: &Plan) -> String {
    let job = &plan.job;
    let mut o = String::new();
    let _ = writeln!(o, "job: {} ({})", job.name, job.file.display());
    if let Some(d) = &job.description {
        let _ = writeln!(o, "description: {d}");
    }
    let _ = writeln!(o, "concurrency: {}", job.concurrency);
    if job.pools.is_empty() {
        let _ = writeln!(o, "pools: none");
    } else {
        let pools: Vec<String> = job.pools.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(o, "pools: {}", pools.join(", "));
    }
    let _ = writeln!(
        o,
        "selected: {} of {} steps",
        plan.selected.len(),
        job.steps.len()
    );
    let _ = writeln!(o);
    for (i, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(o, "wave {}: {}", i + 1, wave.join(", "));
    }
    for id in &plan.selected {
        let Some(s) = job.steps.get(id) else {
            continue;
        };
        let _ = writeln!(o);
        let _ = writeln!(o, "{} ({})", s.id, s.type_name());
        if s.kind.workspace().is_some() && !matches!(s.kind, StepKind::SasFlow(_)) {
            let _ = writeln!(o, "  resource: {}", s.kind.resource_label());
        }
        if let Some((_, d)) = job.awaiting_discovery().into_iter().find(|(t, _)| t == id) {
            let _ = writeln!(
                o,
                "  for_each: the refreshable semantic models of {} named like `{}`{}, found when the run starts (one step `{id}[key]` each)",
                d.workspace,
                d.name,
                if d.exclude_named {
                    " that no other step names"
                } else {
                    ""
                }
            );
        }
        let parents = plan.parents(id);
        if !s.depends_on.is_empty() {
            let skipped: Vec<&String> = s
                .depends_on
                .iter()
                .filter(|d| !parents.contains(d))
                .collect();
            let mut line = format!("  depends_on: {}", s.depends_on.join(", "));
            if !skipped.is_empty() {
                let names: Vec<&str> = skipped.iter().map(|d| d.as_str()).collect();
                let _ = write!(
                    line,
                    " (not selected, counted as satisfied: {})",
                    names.join(", ")
                );
            }
            let _ = writeln!(o, "{line}");
        }
        if s.trigger != TriggerRule::AllSuccess {
            let _ = writeln!(o, "  trigger: {}", trigger_name(s.trigger));
        }
        if let Some(w) = &s.when {
            let _ = writeln!(o, "  when: {w}");
        }
        if let Some(p) = &s.pool {
            let _ = writeln!(o, "  pool: {p}");
        }
        if !s.tags.is_empty() {
            let _ = writeln!(o, "  tags: {}", s.tags.join(", "));
        }
        if crate::job::needs_auth(&s.kind) {
            let _ = writeln!(o, "  connection: {}", s.connection);
        }
        let _ = writeln!(
            o,
            "  timeout: {}, retries: {}, retry_backoff: {}, max_backoff: {}",
            dur(s.timeout),
            s.retries,
            dur(s.retry_backoff),
            dur(s.max_backoff)
        );
        if s.kind.watches_remote_run() {
            let _ = writeln!(
                o,
                "  poll_interval: {}, if_running: {}",
                dur(s.poll_interval),
                serde_name(&s.if_running),
            );
        }
        if s.continue_on_error {
            let _ = writeln!(o, "  continue_on_error: true");
        }
        if let Some(f) = s.skip_if_fresh {
            let _ = writeln!(o, "  skip_if_fresh: {}", dur(f));
        }
        match s.expected_duration {
            Some(crate::job::model::ExpectedDuration::Stated(d)) => {
                let _ = writeln!(
                    o,
                    "  expected_duration: {}, on_overrun: {}",
                    dur(d),
                    s.on_overrun.as_str()
                );
            }
            Some(crate::job::model::ExpectedDuration::Auto) => {
                let _ = writeln!(
                    o,
                    "  expected_duration: auto (learned when the run starts), on_overrun: {}",
                    s.on_overrun.as_str()
                );
            }
            None => {}
        }
        kind_lines(&mut o, &s.kind);
        let _ = writeln!(
            o,
            "  remaining path: {}",
            plan.remaining.get(id).copied().unwrap_or(1)
        );
    }
    o
}

/// The snake_case name serde gives a unit enum value.
fn serde_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `one_failed`, ...
pub(crate) fn trigger_name(t: TriggerRule) -> String {
    serde_name(&t)
}

fn headers_line(o: &mut String, headers: &indexmap::IndexMap<String, HeaderValue>) {
    if headers.is_empty() {
        return;
    }
    let shown: Vec<String> = headers
        .iter()
        .map(|(k, v)| match v {
            HeaderValue::Plain(p) => format!("{k}: {p}"),
            HeaderValue::Secret(_) => format!("{k}: ***"),
        })
        .collect();
    let _ = writeln!(o, "  headers: {}", shown.join(", "));
}

fn kind_lines(o: &mut String, kind: &StepKind) {
    match kind {
        StepKind::Freshness(s) => {
            let bound = |d: Option<std::time::Duration>| {
                d.map(|d| humantime::format_duration(d).to_string())
                    .unwrap_or_else(|| "-".into())
            };
            let _ = writeln!(
                o,
                "  checks: last successful {} of {} (max_age {}, warn_after {}); triggers nothing",
                match s.target.as_ref() {
                    StepKind::Dataset(_) => "refresh",
                    StepKind::Dataflow(_) => "refresh / job",
                    _ => "job instance",
                },
                s.target.type_name(),
                bound(s.max_age),
                bound(s.warn_after)
            );
        }
        StepKind::DataCheck(s) => {
            let _ = writeln!(
                o,
                "  query: {}",
                s.query.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            let expect = match &s.expect {
                crate::job::model::Expectation::NoRows => "no rows".to_string(),
                crate::job::model::Expectation::Rows { min, max } => format!(
                    "rows{}{}",
                    min.map(|m| format!(" >= {m}")).unwrap_or_default(),
                    max.map(|m| format!(" <= {m}")).unwrap_or_default()
                ),
                crate::job::model::Expectation::Value {
                    column,
                    min,
                    max,
                    equals,
                } => format!(
                    "value{}{}{}{}",
                    column
                        .as_ref()
                        .map(|c| format!(" of {c}"))
                        .unwrap_or_default(),
                    min.map(|m| format!(" >= {m}")).unwrap_or_default(),
                    max.map(|m| format!(" <= {m}")).unwrap_or_default(),
                    equals
                        .as_ref()
                        .map(|e| format!(" = {e}"))
                        .unwrap_or_default()
                ),
            };
            let _ = writeln!(
                o,
                "  expect: {expect}, severity: {}",
                match s.severity {
                    crate::job::model::Severity::Error => "error",
                    crate::job::model::Severity::Warn => "warn",
                }
            );
            if let Some(u) = &s.impersonated_user {
                let _ = writeln!(o, "  impersonated user: {u}");
            }
        }
        StepKind::SasFlow(s) => {
            let _ = writeln!(o, "  request: {} (url is secret)", s.method);
            headers_line(o, &s.headers);
            if let Some(b) = &s.body {
                let _ = writeln!(o, "  body: {b}");
            }
            if let Some(w) = &s.wait_for {
                let _ = writeln!(
                    o,
                    "  wait_for: Gen1 dataflow {} / {}",
                    w.workspace, w.dataflow
                );
            }
        }
        StepKind::Webhook(s) => {
            let _ = writeln!(o, "  request: {} (url is secret)", s.method);
            headers_line(o, &s.headers);
            match &s.body {
                Some(b) => {
                    let _ = writeln!(o, "  body: {b}");
                }
                None => {
                    let body = match s.format {
                        crate::job::model::WebhookFormat::Plain => "{\"text\": <run summary>}",
                        crate::job::model::WebhookFormat::Teams => {
                            "Teams Workflows message (Adaptive Card 1.4: status, counts, failed steps, run id)"
                        }
                        crate::job::model::WebhookFormat::Slack => {
                            "Slack message (Block Kit: status, counts, failed steps, run id)"
                        }
                    };
                    let _ = writeln!(o, "  body: {body}");
                    if let Some(link) = &s.link {
                        let _ = writeln!(o, "  link: {link}");
                    }
                }
            }
        }
        StepKind::Dataflow(s) => {
            let _ = writeln!(o, "  generation: {}", serde_name(&s.generation));
            if s.generation == crate::job::model::Generation::Gen1 {
                let _ = writeln!(o, "  notify: {}", serde_name(&s.notify));
                if let Some(p) = s.process_type {
                    let _ = writeln!(o, "  process_type: {}", serde_name(&p));
                }
            } else {
                if let Some(e) = s.execute_option {
                    let _ = writeln!(o, "  execute_option: {}", serde_name(&e));
                }
                if !s.parameters.is_empty() {
                    let p = serde_json::to_string(&s.parameters).unwrap_or_default();
                    let _ = writeln!(o, "  parameters: {p}");
                }
            }
        }
        StepKind::FabricJob(s) => {
            let _ = writeln!(o, "  item_type: {}", s.item_type.name());
            if !s.parameters.is_empty() {
                let p = serde_json::to_string(&s.parameters).unwrap_or_default();
                let _ = writeln!(o, "  parameters: {p}");
            }
            if let Some(c) = &s.configuration {
                let _ = writeln!(o, "  configuration: {c}");
            }
        }
        StepKind::Dataset(s) => match &s.refresh {
            None => {
                let _ = writeln!(o, "  refresh: standard, notify: {}", serde_name(&s.notify));
            }
            Some(r) => {
                let mut parts = Vec::new();
                if let Some(t) = r.refresh_type {
                    parts.push(format!("type {}", serde_name(&t)));
                }
                if let Some(m) = r.commit_mode {
                    parts.push(format!("commit_mode {}", serde_name(&m)));
                }
                if let Some(p) = r.max_parallelism {
                    parts.push(format!("max_parallelism {p}"));
                }
                if let Some(p) = r.retry_count {
                    parts.push(format!("retry_count {p}"));
                }
                if let Some(p) = r.apply_refresh_policy {
                    parts.push(format!("apply_refresh_policy {p}"));
                }
                if let Some(p) = &r.effective_date {
                    parts.push(format!("effective_date {p}"));
                }
                if let Some(t) = r.timeout {
                    parts.push(format!("timeout {}", dur(t)));
                }
                let _ = writeln!(o, "  refresh: enhanced ({})", parts.join(", "));
                for obj in &r.objects {
                    match &obj.partition {
                        Some(p) => {
                            let _ = writeln!(o, "    table {} partition {p}", obj.table);
                        }
                        None => {
                            let _ = writeln!(o, "    table {}", obj.table);
                        }
                    }
                }
            }
        },
        StepKind::Report(s) => {
            let e = &s.export;
            let _ = writeln!(o, "  export: {} -> {}", e.format.as_str(), e.path.display());
            if !e.pages.is_empty() {
                let _ = writeln!(o, "  pages: {}", e.pages.join(", "));
            }
            if let Some(b) = &e.bookmark {
                let _ = writeln!(o, "  bookmark: {b}");
            }
            if !e.parameters.is_empty() {
                let p: Vec<String> = e
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(o, "  parameters: {}", p.join(", "));
            }
            if let Some(l) = &e.locale {
                let _ = writeln!(o, "  locale: {l}");
            }
            if let Some(f) = &e.filter {
                let _ = writeln!(o, "  filter: {f}");
            }
            for i in &e.identities {
                let roles = if i.roles.is_empty() {
                    String::new()
                } else {
                    format!(" as {}", i.roles.join(", "))
                };
                let models = if i.datasets.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", i.datasets.join(", "))
                };
                let _ = writeln!(o, "  identity: {}{roles}{models}", i.username);
            }
        }
        StepKind::Capacity(s) => {
            let action = match &s.action {
                crate::job::model::CapacityAction::Scale { sku } => format!("scale to {sku}"),
                other => other.name().to_string(),
            };
            let _ = writeln!(o, "  capacity: {action} ({})", s.label());
        }
    }
}
