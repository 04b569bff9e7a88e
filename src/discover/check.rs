//! `pbibatch validate --lineage JOB`: the live dry run. Every named workspace and item must
//! exist (datasets must be refreshable), and the job's dependencies are compared with the
//! live lineage: a step that reads another step's output without depending on it (missing
//! edge), or a dependency the lineage does not explain (extra edge). Nothing is triggered.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use indexmap::IndexMap;

use super::lineage::{Graph, NodeKey, NodeKind};
use super::setup::{self, Target};
use super::{DiscoverOptions, Estate, Workspace, discover};
use crate::error::Error;
use crate::job::model::{Generation, Job, StepKind};
use crate::job::{self, Code, Severity};
use crate::powerbi::ClientError;
use crate::suggest::near_names;

/// One finding of the live check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// What kind of finding (`pbibatch::lineage::*`).
    pub code: Code,
    pub message: String,
}

fn error(code: Code, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        message,
    }
}

fn warning(code: Code, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        code,
        message,
    }
}

fn hint(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            near.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The workspace a step names (alias expanded: name or GUID).
fn find_workspace<'a>(estate: &'a Estate, wanted: &str) -> Option<&'a Workspace> {
    estate
        .workspaces
        .iter()
        .find(|w| w.id.eq_ignore_ascii_case(wanted) || w.name == wanted)
        .or_else(|| {
            estate
                .workspaces
                .iter()
                .find(|w| w.name.eq_ignore_ascii_case(wanted))
        })
}

/// Finds `wanted` (name or id) among `(id, name)` pairs: exact name, else one
/// case-insensitive match. `Err` holds the message.
fn find_item<'a>(
    items: &[(&'a str, &'a str)],
    wanted: &str,
    noun: &str,
    workspace: &str,
) -> Result<&'a str, String> {
    if let Some((id, _)) = items.iter().find(|(id, _)| id.eq_ignore_ascii_case(wanted)) {
        return Ok(id);
    }
    let exact: Vec<&str> = items
        .iter()
        .filter(|(_, n)| *n == wanted)
        .map(|(id, _)| *id)
        .collect();
    let found = if exact.is_empty() {
        items
            .iter()
            .filter(|(_, n)| n.eq_ignore_ascii_case(wanted))
            .map(|(id, _)| *id)
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let near = near_names(wanted, items.iter().map(|(_, n)| *n));
            Err(format!(
                "{noun} `{wanted}` not found in workspace `{workspace}`{}",
                hint(&near)
            ))
        }
        many => Err(format!(
            "{noun} name `{wanted}` is ambiguous in workspace `{workspace}` ({} items have it); use the id",
            many.len()
        )),
    }
}

/// Which lineage node each step refreshes (Gen2 dataflows, flows without `wait_for` and
/// webhooks have none), and the errors for what does not exist or cannot be refreshed.
fn locate(job: &Job, estate: &Estate) -> (IndexMap<String, NodeKey>, Vec<Finding>) {
    let mut nodes = IndexMap::new();
    let mut findings = Vec::new();
    for (id, step) in &job.steps {
        let Some(ws_name) = step.kind.workspace() else {
            continue;
        };
        let Some(ws) = find_workspace(estate, ws_name) else {
            let near = near_names(ws_name, estate.workspaces.iter().map(|w| w.name.as_str()));
            findings.push(error(
                Code::LineageNotFound,
                format!(
                "step `{id}`: workspace `{ws_name}` not found (or the identity is not a member){}",
                hint(&near)
            )));
            continue;
        };
        let located = match &step.kind {
            StepKind::Dataset(s) => {
                let items: Vec<(&str, &str)> = ws
                    .datasets
                    .iter()
                    .map(|d| (d.id.as_str(), d.name.as_str()))
                    .collect();
                find_item(&items, &s.dataset, "dataset", &ws.name).map(|found| {
                    if let Some(d) = ws.datasets.iter().find(|d| d.id == found)
                        && d.refreshable == Some(false)
                    {
                        findings.push(error(
                            Code::LineageNotRefreshable,
                            format!(
                                "step `{id}`: {}",
                                crate::powerbi::resolve::not_refreshable(&d.name)
                            ),
                        ));
                    }
                    Some(NodeKey::new(NodeKind::Dataset, found))
                })
            }
            StepKind::Dataflow(s) if s.generation == Generation::Gen2 => {
                let items: Vec<(&str, &str)> = ws
                    .fabric_items
                    .iter()
                    .filter(|i| i.item_type == "Dataflow")
                    .map(|i| (i.id.as_str(), i.name.as_str()))
                    .collect();
                find_item(&items, &s.dataflow, "dataflow (gen2)", &ws.name).map(|_| None)
            }
            StepKind::Dataflow(s) => {
                let items: Vec<(&str, &str)> = ws
                    .dataflows
                    .iter()
                    .map(|d| (d.id.as_str(), d.name.as_str()))
                    .collect();
                find_item(&items, &s.dataflow, "dataflow", &ws.name)
                    .map(|found| Some(NodeKey::new(NodeKind::Dataflow, found)))
            }
            StepKind::SasFlow(s) => match &s.wait_for {
                Some(w) => {
                    let items: Vec<(&str, &str)> = ws
                        .dataflows
                        .iter()
                        .map(|d| (d.id.as_str(), d.name.as_str()))
                        .collect();
                    find_item(&items, &w.dataflow, "dataflow", &ws.name)
                        .map(|found| Some(NodeKey::new(NodeKind::Dataflow, found)))
                }
                None => Ok(None),
            },
            StepKind::Report(s) => {
                let items: Vec<(&str, &str)> = ws
                    .reports
                    .iter()
                    .map(|r| (r.id.as_str(), r.name.as_str()))
                    .collect();
                find_item(&items, &s.report, "report", &ws.name)
                    .map(|found| Some(NodeKey::new(NodeKind::Report, found)))
            }
            // A freshness step's resource is checked when it runs (its listing is the check).
            StepKind::Webhook(_) | StepKind::Capacity(_) | StepKind::Freshness(_) => Ok(None),
            StepKind::DataCheck(s) => {
                let items: Vec<(&str, &str)> = ws
                    .datasets
                    .iter()
                    .map(|d| (d.id.as_str(), d.name.as_str()))
                    .collect();
                find_item(&items, &s.dataset, "dataset", &ws.name).map(|_| None)
            }
            StepKind::FabricJob(s) => {
                let wanted = s.item_type.fabric_type();
                let items: Vec<(&str, &str)> = ws
                    .fabric_items
                    .iter()
                    .filter(|i| i.item_type.eq_ignore_ascii_case(wanted))
                    .map(|i| (i.id.as_str(), i.name.as_str()))
                    .collect();
                find_item(&items, &s.item, s.item_type.noun(), &ws.name).map(|_| None)
            }
        };
        match located {
            Ok(Some(node)) => {
                nodes.insert(id.clone(), node);
            }
            Ok(None) => {}
            Err(message) => findings.push(error(
                Code::LineageNotFound,
                format!("step `{id}`: {message}"),
            )),
        }
    }
    (nodes, findings)
}

/// Steps reachable from each step through `depends_on` (upstream closure).
fn job_upstream(job: &Job) -> HashMap<&str, HashSet<&str>> {
    let mut out: HashMap<&str, HashSet<&str>> = HashMap::new();
    for id in job.steps.keys() {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = vec![id.as_str()];
        while let Some(s) = stack.pop() {
            for d in job
                .steps
                .get(s)
                .map(|st| st.depends_on.as_slice())
                .unwrap_or_default()
            {
                if seen.insert(d.as_str()) {
                    stack.push(d.as_str());
                }
            }
        }
        out.insert(id.as_str(), seen);
    }
    out
}

/// Compares `job` with the live `estate` (which must hold its lineage).
pub fn compare(job: &Job, estate: &Estate) -> Vec<Finding> {
    compare_with(job, estate, &HashSet::new())
}

/// The ids of the steps whose item the simulator profile does not declare (it is provisioned
/// without lineage, so no "extra dependency" can be told about it).
fn provisioned_steps(job: &Job, profile: &crate::sim::Profile) -> HashSet<String> {
    // Power BI names are unique regardless of case, as the simulator's provisioning sees them.
    fn lower(s: &str) -> String {
        s.to_lowercase()
    }
    fn has<'a>(mut names: impl Iterator<Item = &'a String>, wanted: &str) -> bool {
        names.any(|n| lower(n) == lower(wanted))
    }
    job.steps
        .iter()
        .filter(|(_, step)| {
            let Some(ws_name) = step.kind.workspace() else {
                return false;
            };
            let Some(ws) = profile
                .workspaces
                .iter()
                .find(|(n, _)| lower(n) == lower(ws_name))
                .map(|(_, w)| w)
            else {
                return true;
            };
            match &step.kind {
                StepKind::Dataset(s) => !has(ws.datasets.keys(), &s.dataset),
                StepKind::Dataflow(s) if s.generation == Generation::Gen2 => {
                    !has(ws.fabric_dataflows.keys(), &s.dataflow)
                }
                StepKind::Dataflow(s) => !has(ws.dataflows.keys(), &s.dataflow),
                StepKind::Report(s) => !has(ws.reports.keys(), &s.report),
                StepKind::SasFlow(s) => s
                    .wait_for
                    .as_ref()
                    .is_some_and(|w| !has(ws.dataflows.keys(), &w.dataflow)),
                _ => false,
            }
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// [`compare`], telling no "extra dependency" about the steps in `unknown_lineage`.
fn compare_with(job: &Job, estate: &Estate, unknown_lineage: &HashSet<String>) -> Vec<Finding> {
    let (nodes, mut findings) = locate(job, estate);
    let edges = estate.lineage.as_deref().unwrap_or_default();
    let graph = Graph::new(edges);
    let mut labels: HashMap<NodeKey, String> = edges
        .iter()
        .flat_map(|e| [&e.from, &e.to])
        .map(|n| (n.key(), format!("{} `{}`", n.kind.as_str(), n.label())))
        .collect();
    // Items without edges are named from the estate.
    for w in &estate.workspaces {
        let named = w
            .dataflows
            .iter()
            .map(|d| (NodeKind::Dataflow, &d.id, &d.name))
            .chain(
                w.datasets
                    .iter()
                    .map(|d| (NodeKind::Dataset, &d.id, &d.name)),
            )
            .chain(w.reports.iter().map(|r| (NodeKind::Report, &r.id, &r.name)));
        for (kind, id, name) in named {
            labels
                .entry(NodeKey::new(kind, id))
                .or_insert_with(|| format!("{} `{} / {name}`", kind.as_str(), w.name));
        }
    }
    let label = |k: &NodeKey| {
        labels
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("{} {}", k.kind.as_str(), k.id))
    };
    let mut step_of: HashMap<&NodeKey, Vec<&str>> = HashMap::new();
    for (id, node) in &nodes {
        step_of.entry(node).or_default().push(id.as_str());
    }
    let upstream = job_upstream(job);
    let depends = |b: &str, a: &str| upstream.get(b).is_some_and(|u| u.contains(a));

    // Missing: a step reads (through items no step refreshes) another step's item.
    for (b, nb) in &nodes {
        let found = graph.nearest_upstream(nb, |k| step_of.contains_key(k));
        for (na, via) in found {
            for a in step_of.get(&na).map(Vec::as_slice).unwrap_or_default() {
                if *a == b.as_str() || depends(b, a) {
                    continue;
                }
                let through = if via.is_empty() {
                    String::new()
                } else {
                    format!(
                        " through {}",
                        via.iter().map(&label).collect::<Vec<_>>().join(", ")
                    )
                };
                findings.push(warning(
                    Code::LineageMissingDependency,
                    format!(
                    "missing dependency: step `{b}` ({}) reads step `{a}` ({}){through} but does not depend on it, so it may refresh before `{a}` ends; add `{a}` to its depends_on",
                    label(nb),
                    label(&na)
                )));
            }
        }
    }
    // Extra: a declared dependency between two lineage-aware steps with no live path.
    for (b, step) in &job.steps {
        let Some(nb) = nodes.get(b) else { continue };
        for a in &step.depends_on {
            let Some(na) = nodes.get(a) else { continue };
            if unknown_lineage.contains(b) || unknown_lineage.contains(a) {
                continue;
            }
            if na == nb || graph.path(na, nb).is_some() {
                continue;
            }
            findings.push(warning(
                Code::LineageExtraDependency,
                format!(
                "extra dependency: step `{b}` ({}) depends on `{a}` ({}) but the live lineage has no path between them; keep it if the link is outside Power BI, else remove it so both can run at once",
                label(nb),
                label(na)
            )));
        }
    }
    findings
}

/// The workspaces the job's Power BI / Fabric steps name, per connection.
fn workspaces_by_connection(job: &Job) -> IndexMap<String, Vec<String>> {
    let mut out: IndexMap<String, Vec<String>> = IndexMap::new();
    for step in job.steps.values() {
        if let Some(ws) = step.kind.workspace() {
            let list = out.entry(step.connection.clone()).or_default();
            if !list.iter().any(|w| w == ws) {
                list.push(ws.to_string());
            }
        }
    }
    out
}

/// Reads the estate the job names (per connection) with lineage; unknown workspaces are
/// simply absent (`locate` reports them per step).
async fn live_estate(target: &Target, job: &Job) -> Result<Estate, (String, ClientError)> {
    let mut estate = Estate {
        lineage: Some(Vec::new()),
        ..Estate::default()
    };
    for (conn, wanted) in workspaces_by_connection(job) {
        let groups = target
            .client
            .groups_all(&conn)
            .await
            .map_err(|e| (format!("list the workspaces of connection `{conn}`"), e))?;
        let present: Vec<String> = wanted
            .iter()
            .filter_map(|w| {
                groups
                    .iter()
                    .find(|g| g.id.eq_ignore_ascii_case(w) || g.name.eq_ignore_ascii_case(w))
                    .map(|g| g.id.clone())
            })
            .collect();
        if present.is_empty() {
            continue;
        }
        let options = DiscoverOptions {
            workspaces: present,
            lineage: true,
        };
        let part = discover(&target.client, &conn, &options)
            .await
            .map_err(|e| match e {
                super::DiscoverError::Client { what, source } => (what, *source),
                other => (other.to_string(), ClientError::Config(other.to_string())),
            })?;
        for w in part.workspaces {
            if !estate.workspaces.iter().any(|x| x.id == w.id) {
                estate.workspaces.push(w);
            }
        }
        if let (Some(all), Some(more)) = (estate.lineage.as_mut(), part.lineage) {
            let mut seen: HashSet<(NodeKey, NodeKey)> =
                all.iter().map(|e| (e.from.key(), e.to.key())).collect();
            all.extend(
                more.into_iter()
                    .filter(|e| seen.insert((e.from.key(), e.to.key()))),
            );
        }
    }
    Ok(estate)
}

/// Where the live check reads the estate.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveOptions<'a> {
    /// The built-in simulator instead of the services.
    pub(crate) simulate: bool,
    /// The simulator's profile (the demo estate when `None`).
    pub(crate) sim_profile: Option<&'a Path>,
}

/// The live check of one loaded job: `Ok(Ok((findings, workspaces read)))`, or
/// `Ok(Err(message))` when the services could not be asked. `Err` is bad input.
pub(crate) async fn check_live(
    job: &Job,
    options: LiveOptions<'_>,
) -> Result<Result<(Vec<Finding>, usize), String>, Error> {
    // Step fields may use ${env.X}; an unset one stays as written and shows as not found.
    let lookup =
        |name: &str| Some(std::env::var(name).unwrap_or_else(|_| format!("${{env.{name}}}")));
    let unresolved = job;
    let job = job::resolve_env(job, &lookup)?;
    let used: HashSet<&str> = job
        .steps
        .values()
        .filter(|s| job::needs_auth(&s.kind))
        .map(|s| s.connection.as_str())
        .collect();
    // Credentials come from the unresolved connections: `resolve_all` reports what is unset.
    let conns: IndexMap<_, _> = unresolved
        .connections
        .iter()
        .filter(|(name, _)| used.contains(name.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if conns.is_empty() {
        // Only flows and webhooks: nothing Power BI could say about them.
        return Ok(Ok((Vec::new(), 0)));
    }
    let mut findings = Vec::new();
    let mut unknown_lineage = HashSet::new();
    let target = if options.simulate {
        // The estate `run --simulate` would run against: the profile plus what the job names.
        // Without --sim-profile, the demo estate `discover --simulate` shows (it has lineage).
        let profile = match options.sim_profile {
            Some(path) => crate::sim::Profile::load(path)?,
            None => super::demo_profile(),
        };
        unknown_lineage = provisioned_steps(&job, &profile);
        let (sim, warnings) = crate::sim::start_for_job(&job, profile)
            .await
            .map_err(Error::SimStart)?;
        findings.extend(
            warnings
                .into_iter()
                .map(|w| warning(Code::LineageUnusedProfileEntry, w)),
        );
        Target::on_simulator(sim, conns, String::new())?
    } else {
        Target::live(setup::resolve_all(conns)?, String::new())?
    };
    let result = live_estate(&target, &job).await;
    target.shutdown().await;
    Ok(match result {
        Ok(estate) => {
            findings.extend(compare_with(&job, &estate, &unknown_lineage));
            Ok((findings, estate.workspaces.len()))
        }
        Err((what, e)) => {
            let advice = super::auth::advice(&e)
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            Err(format!("failed to {what}: {e}{advice}"))
        }
    })
}
