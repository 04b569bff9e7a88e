//! `discover --emit-job`: a job skeleton from the discovered estate. Names, not ids (ids are
//! resolved at run time, and names survive a redeploy); `depends_on` from the lineage;
//! `DECIDE` comments wherever a human must choose.

use std::collections::HashMap;

use super::Estate;
use super::lineage::{NodeKey, NodeKind};
use crate::job::model::FabricItemType;

/// Choices for the skeleton.
#[derive(Debug, Clone)]
pub(crate) struct EmitOptions {
    /// The job's `name:`.
    pub name: String,
    /// The `$schema` path in the yaml-language-server comment.
    pub schema: String,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            name: "discovered".into(),
            // The repository keeps jobs in jobs/ and the schema in schemas/.
            schema: "../schemas/pbibatch-job.schema.json".into(),
        }
    }
}

/// Where the `$schema` comment of a job written at some path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaPath {
    /// Relative to the job file's directory, with `/` separators.
    pub path: String,
    /// Whether the schema file exists there (else: where `pbibatch schema` would write it,
    /// under the current directory).
    pub found: bool,
}

/// The schema's path relative to the directory `job` is written in: the nearest
/// `schemas/pbibatch-job.schema.json` in that directory or one above it, else the one under
/// `cwd` (relative paths resolve against `cwd`).
pub(crate) fn schema_path_for(job: &std::path::Path, cwd: &std::path::Path) -> SchemaPath {
    const SCHEMA: &str = "schemas/pbibatch-job.schema.json";
    let job = cwd.join(job);
    let dir = job.parent().unwrap_or(cwd);
    // `a/./b/../c` -> `a/c`, without touching the file system (the job may not exist yet).
    let normal = |p: &std::path::Path| -> std::path::PathBuf {
        let mut out = std::path::PathBuf::new();
        for part in p.components() {
            match part {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    };
    let dir = normal(dir);
    let found = dir.ancestors().find(|d| d.join(SCHEMA).is_file());
    let base = found.map_or_else(|| normal(cwd), std::path::Path::to_path_buf);
    // Up from `dir` to `base` (an ancestor of both), then down into `schemas/`.
    let common = dir
        .ancestors()
        .find(|a| base.starts_with(a))
        .unwrap_or(std::path::Path::new("/"));
    let ups = dir
        .strip_prefix(common)
        .map_or(0, |rest| rest.components().count());
    let mut parts: Vec<String> = vec!["..".into(); ups];
    if let Ok(down) = base.strip_prefix(common) {
        parts.extend(
            down.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
    }
    parts.push(SCHEMA.into());
    SchemaPath {
        path: parts.join("/"),
        found: found.is_some(),
    }
}

/// A generated job file.
#[derive(Debug, Clone)]
pub(crate) struct Skeleton {
    /// The YAML text.
    pub text: String,
    /// Active (not commented-out) steps.
    pub steps: usize,
}

/// A YAML double-quoted scalar (JSON escaping is valid YAML) in which `${` stays literal.
fn quote(s: &str) -> String {
    serde_json::to_string(&s.replace("${", "$${")).unwrap_or_else(|_| "\"\"".into())
}

/// `[a-z0-9_]` words from a display name; empty when nothing is left.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// Unique identifiers (`[A-Za-z_][A-Za-z0-9_-]*`) derived from names.
#[derive(Default)]
struct Ids {
    taken: Vec<String>,
}

impl Ids {
    fn make(&mut self, name: &str, prefix: &str, qualifier: &str) -> String {
        let mut base = slug(name);
        if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            base = format!("{prefix}_{base}").trim_end_matches('_').to_string();
        }
        let mut id = base.clone();
        if self.taken.contains(&id) && !qualifier.is_empty() {
            id = format!("{qualifier}_{base}");
        }
        let mut n = 2;
        while self.taken.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.taken.push(id.clone());
        id
    }
}

/// One step to write.
struct StepOut {
    id: String,
    lines: Vec<String>,
    /// Commented out: written with `# ` in front of every line.
    commented: bool,
}

/// Writes the skeleton for `estate` (its lineage, when present, gives `depends_on`).
pub(crate) fn job_skeleton(estate: &Estate, options: &EmitOptions) -> Skeleton {
    let mut aliases = Ids::default();
    let ws_alias: Vec<String> = estate
        .workspaces
        .iter()
        .map(|w| aliases.make(&w.name, "ws", ""))
        .collect();

    // Step ids for every refreshable item, in a stable order.
    let mut ids = Ids::default();
    let mut step_of: HashMap<NodeKey, String> = HashMap::new();
    for (wi, w) in estate.workspaces.iter().enumerate() {
        for d in &w.dataflows {
            let id = ids.make(&d.name, "dataflow", &ws_alias[wi]);
            step_of.insert(NodeKey::new(NodeKind::Dataflow, &d.id), id);
        }
    }
    for (wi, w) in estate.workspaces.iter().enumerate() {
        for d in &w.datasets {
            let id = ids.make(&d.name, "dataset", &ws_alias[wi]);
            step_of.insert(NodeKey::new(NodeKind::Dataset, &d.id), id);
        }
    }

    // Parents of each node from the lineage, in edge order.
    let edges = estate.lineage.as_deref().unwrap_or_default();
    let mut parents: HashMap<NodeKey, Vec<&super::lineage::Node>> = HashMap::new();
    for e in edges {
        parents.entry(e.to.key()).or_default().push(&e.from);
    }
    // depends_on of a node's step, and comments for parents that are not steps here.
    let deps = |key: &NodeKey| -> (Vec<String>, Vec<String>) {
        let mut on = Vec::new();
        let mut notes = Vec::new();
        for p in parents.get(key).map(Vec::as_slice).unwrap_or_default() {
            match step_of.get(&p.key()) {
                Some(id) if !on.contains(id) => on.push(id.clone()),
                Some(_) => {}
                None => notes.push(format!(
                    "# DECIDE: reads {} {} (not discovered here): add a step for it or depend on the step that refreshes it",
                    p.kind.as_str(),
                    p.label()
                )),
            }
        }
        (on, notes)
    };

    let mut steps: Vec<StepOut> = Vec::new();
    for (wi, w) in estate.workspaces.iter().enumerate() {
        let alias = &ws_alias[wi];
        for d in &w.dataflows {
            let key = NodeKey::new(NodeKind::Dataflow, &d.id);
            let (on, notes) = deps(&key);
            let mut lines = vec![
                "type: dataflow".to_string(),
                format!("workspace: {alias}"),
                format!("dataflow: {}", quote(&d.name)),
            ];
            push_deps(&mut lines, &on, notes);
            steps.push(StepOut {
                id: step_of[&key].clone(),
                lines,
                commented: false,
            });
        }
        for i in w.fabric_items.iter().filter(|i| i.item_type == "Dataflow") {
            let id = ids.make(&i.name, "dataflow", alias);
            steps.push(StepOut {
                id,
                lines: vec![
                    "# DECIDE: Fabric runs a Dataflow Gen2 for a signed-in user only (a service principal's".to_string(),
                    "# run fails with SPNBasedRefreshNotAllowed): uncomment with `connection:` naming a".to_string(),
                    "# connection that holds a user's token (docs/authentication.md).".to_string(),
                    "type: dataflow".to_string(),
                    "generation: 2".to_string(),
                    format!("workspace: {alias}"),
                    format!("dataflow: {}", quote(&i.name)),
                    "# DECIDE: Fabric gives no lineage for a Dataflow Gen2: add depends_on for what it reads,".to_string(),
                    "# and make the steps that read its output depend on it.".to_string(),
                ],
                commented: true,
            });
        }
    }
    for (wi, w) in estate.workspaces.iter().enumerate() {
        let alias = &ws_alias[wi];
        for d in &w.datasets {
            let key = NodeKey::new(NodeKind::Dataset, &d.id);
            let (on, notes) = deps(&key);
            let mut lines = vec![
                "type: dataset".to_string(),
                format!("workspace: {alias}"),
                format!("dataset: {}", quote(&d.name)),
            ];
            push_deps(&mut lines, &on, notes);
            let refreshable = d.refreshable != Some(false);
            if !refreshable {
                lines.insert(
                    0,
                    "# not refreshable (DirectQuery or live connection): nothing to refresh"
                        .to_string(),
                );
            }
            steps.push(StepOut {
                id: step_of[&key].clone(),
                lines,
                commented: !refreshable,
            });
        }
    }
    let mut first_report = true;
    for (wi, w) in estate.workspaces.iter().enumerate() {
        let alias = &ws_alias[wi];
        for r in &w.reports {
            let base = ids.make(&format!("{} pdf", r.name), "report", alias);
            let file = match slug(&r.name) {
                s if s.is_empty() => base.clone(),
                s => s,
            };
            let mut lines = Vec::new();
            if std::mem::take(&mut first_report) {
                lines.push(
                    "# DECIDE: an export writes a file; uncomment the reports you want (any format the report supports)"
                        .to_string(),
                );
            }
            lines.extend([
                "type: report".to_string(),
                format!("workspace: {alias}"),
                format!("report: {}", quote(&r.name)),
                format!(
                    "export: {{ format: PDF, path: {} }}",
                    quote(&format!("out/{file}.pdf"))
                ),
            ]);
            let (on, notes) = deps(&NodeKey::new(NodeKind::Report, &r.id));
            push_deps(&mut lines, &on, notes);
            steps.push(StepOut {
                id: base,
                lines,
                commented: true,
            });
        }
    }
    // Pipelines, notebooks, Spark job definitions and copy jobs: Fabric reports no lineage
    // for them, so where they sit in the DAG (and whether this job should run them at all)
    // is a human's choice.
    let mut first_job = true;
    for (wi, w) in estate.workspaces.iter().enumerate() {
        let alias = &ws_alias[wi];
        for i in &w.fabric_items {
            let Some(item_type) = FabricItemType::from_fabric_type(&i.item_type) else {
                continue;
            };
            let mut lines = Vec::new();
            if std::mem::take(&mut first_job) {
                lines.extend([
                    "# DECIDE: uncomment the pipelines, notebooks, Spark job definitions and copy jobs this job".to_string(),
                    "# runs. Fabric gives no lineage for them: add depends_on for what each one reads, and".to_string(),
                    "# make the steps that read its output depend on it.".to_string(),
                ]);
            }
            lines.extend([
                "type: fabric_job".to_string(),
                format!("workspace: {alias}"),
                format!("item: {}", quote(&i.name)),
                format!("item_type: {}", item_type.name()),
            ]);
            steps.push(StepOut {
                id: ids.make(&i.name, item_type.name(), alias),
                lines,
                commented: true,
            });
        }
    }

    let mut out = String::new();
    out.push_str(&format!(
        "# yaml-language-server: $schema={}\n",
        options.schema
    ));
    out.push_str("#\n");
    let names: Vec<&str> = estate.workspaces.iter().map(|w| w.name.as_str()).collect();
    out.push_str(&format!(
        "# Generated by `pbibatch discover --emit-job` from {} workspace{}: {}.\n",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    out.push_str(
        "# Items are named, not given by id: names are resolved at run time. depends_on come\n\
         # from the live lineage (dataflow -> dataflow -> dataset -> report).\n\
         # Review every line marked DECIDE, then run `pbibatch validate --lineage` on this file.\n",
    );
    out.push_str("version: 1\n");
    out.push_str(&format!(
        "name: {}  # DECIDE: the job's name ([a-z0-9_-]+); run history is kept under it\n",
        quote(&options.name)
    ));
    out.push_str(&format!(
        "description: {}\n",
        quote(&format!("Refresh of {}", names.join(", ")))
    ));
    out.push_str(
        "# No `connections:`: the implicit `default` connection reads AZURE_TENANT_ID,\n\
         # AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or PBIBATCH_ACCESS_TOKEN).\n",
    );
    if !estate.workspaces.is_empty() {
        out.push_str("workspaces:\n");
        for (wi, w) in estate.workspaces.iter().enumerate() {
            out.push_str(&format!("  {}: {}\n", ws_alias[wi], quote(&w.name)));
        }
    }
    out.push_str(
        "defaults:\n\
         \x20 timeout: 2h         # DECIDE: the longest one refresh may take\n\
         \x20 retries: 1\n\
         \x20 retry_backoff: 1m\n\
         \x20 poll_interval: 30s\n\
         concurrency: 4         # DECIDE: how many refreshes your capacity runs well at once\n",
    );
    let active = steps.iter().filter(|s| !s.commented).count();
    if active == 0 {
        // A job needs at least one step: give a placeholder a human must replace.
        out.push_str(
            "# DECIDE: nothing refreshable was discovered; replace this placeholder step.\n\
             steps:\n\
             \x20 placeholder:\n\
             \x20   type: webhook\n\
             \x20   url: ${env.PBIBATCH_PLACEHOLDER_URL}\n",
        );
    } else {
        out.push_str("steps:\n");
    }
    for s in &steps {
        // Leading comments go above the step, so a commented-out step stays readable.
        let lead = s.lines.iter().take_while(|l| l.starts_with('#')).count();
        for l in &s.lines[..lead] {
            out.push_str(&format!("  {l}\n"));
        }
        let prefix = if s.commented { "  # " } else { "  " };
        out.push_str(&format!("{prefix}{}:\n", s.id));
        for l in &s.lines[lead..] {
            if s.commented {
                out.push_str(&format!("  #   {l}\n"));
            } else {
                out.push_str(&format!("    {l}\n"));
            }
        }
    }
    Skeleton {
        text: out,
        steps: if active == 0 { 1 } else { active },
    }
}

fn push_deps(lines: &mut Vec<String>, on: &[String], notes: Vec<String>) {
    if !on.is_empty() {
        lines.push(format!("depends_on: [{}]", on.join(", ")));
    }
    lines.extend(notes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(
            ids.make("Master Order List", "dataflow", "ws"),
            "master_order_list"
        );
        assert_eq!(
            ids.make("Master-Order List!", "dataflow", "ws"),
            "ws_master_order_list"
        );
        assert_eq!(
            ids.make("Master Order List", "dataflow", "ws"),
            "master_order_list_2"
        );
        assert_eq!(ids.make("2024 Sales", "dataset", ""), "dataset_2024_sales");
        assert_eq!(ids.make("???", "dataset", ""), "dataset");
    }

    use crate::discover::lineage::{Edge, Node};
    use crate::discover::{Dataflow, Dataset, FabricItem, Workspace};
    use crate::job::model::StepKind;

    fn load(text: &str) -> crate::job::model::Job {
        match crate::job::load_bytes("job.yaml", text.as_bytes(), &[], &|_| None) {
            Ok(l) => crate::job::resolve_env(&l.job, &|_| Some("x".into())).unwrap(),
            Err(d) => panic!("{}\n{text}", d.render(crate::job::DiagFormat::Short, false)),
        }
    }

    #[test]
    fn odd_names_and_outside_lineage_still_give_a_valid_job() {
        let name = r#"Sales "EU" ${x} #1"#;
        let estate = Estate {
            workspaces: vec![Workspace {
                id: "w1".into(),
                name: "Data: Admin".into(),
                datasets: vec![
                    Dataset {
                        id: "d1".into(),
                        name: name.into(),
                        refreshable: Some(true),
                        storage_mode: None,
                    },
                    Dataset {
                        id: "d2".into(),
                        name: "Live".into(),
                        refreshable: Some(false),
                        storage_mode: None,
                    },
                ],
                dataflows: vec![Dataflow {
                    id: "f1".into(),
                    name: "1st flow".into(),
                }],
                fabric_items: vec![FabricItem {
                    id: "g1".into(),
                    name: "Gen2".into(),
                    item_type: "Dataflow".into(),
                }],
                ..Workspace::default()
            }],
            lineage: Some(vec![
                Edge {
                    from: Node {
                        kind: NodeKind::Dataflow,
                        workspace_id: "w1".into(),
                        workspace: Some("Data: Admin".into()),
                        id: "f1".into(),
                        name: Some("1st flow".into()),
                    },
                    to: Node {
                        kind: NodeKind::Dataset,
                        workspace_id: "w1".into(),
                        workspace: Some("Data: Admin".into()),
                        id: "d1".into(),
                        name: Some(name.into()),
                    },
                },
                Edge {
                    from: Node {
                        kind: NodeKind::Dataflow,
                        workspace_id: "w9".into(),
                        workspace: None,
                        id: "f9".into(),
                        name: None,
                    },
                    to: Node {
                        kind: NodeKind::Dataset,
                        workspace_id: "w1".into(),
                        workspace: Some("Data: Admin".into()),
                        id: "d1".into(),
                        name: Some(name.into()),
                    },
                },
            ]),
        };
        let sk = job_skeleton(&estate, &EmitOptions::default());
        assert_eq!(sk.steps, 2, "{}", sk.text);
        assert!(
            sk.text.contains("# DECIDE: reads dataflow w9 / f9"),
            "{}",
            sk.text
        );
        assert!(sk.text.contains("  # live:"), "{}", sk.text);
        let job = load(&sk.text);
        assert_eq!(
            job.steps.keys().collect::<Vec<_>>(),
            ["dataflow_1st_flow", "sales_eu_x_1"]
        );
        let StepKind::Dataset(d) = &job.steps["sales_eu_x_1"].kind else {
            panic!("a dataset step");
        };
        assert_eq!(
            d.dataset, name,
            "the name survives quoting and interpolation"
        );
        assert_eq!(d.workspace, "Data: Admin");
        assert_eq!(job.steps["sales_eu_x_1"].depends_on, ["dataflow_1st_flow"]);
    }

    #[test]
    fn an_empty_estate_gives_a_placeholder_that_loads() {
        let sk = job_skeleton(&Estate::default(), &EmitOptions::default());
        assert_eq!(sk.steps, 1);
        let job = load(&sk.text);
        assert!(job.steps.contains_key("placeholder"));
    }

    #[test]
    fn quoting_keeps_dollar_braces_literal() {
        assert_eq!(quote("a \"b\" ${c}"), r#""a \"b\" $${c}""#);
    }
}
