//! The `fabric_job` step: a Fabric item (pipeline, notebook, Spark job definition, copy job)
//! run through the Job Scheduler.

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::Checker;
use super::kinds::{required, workspace};
use crate::job::Code;
use crate::job::model::{FabricItemType, FabricJobStep, StepKind, notebook_parameter_type};
use crate::job::raw::{RawItemType, RawNotebookConfiguration, RawStep, Sp};

pub(super) fn fabric_job(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let workspace = workspace(c, step);
    let item = required(c, step, &raw.item, "item", "name or GUID").map(|v| c.non_empty(v, "item"));
    let item_type = match &raw.item_type {
        None => {
            c.error_help(
                Code::MissingKey,
                raw.step_type.loc(),
                "a `fabric_job` step needs `item_type`",
                "`item_type:` missing",
                Some("pipeline, notebook, spark_job_definition or copy_job".into()),
            );
            c.errors.mark_last_missing("item_type");
            None
        }
        Some(t) => Some(match t.get() {
            RawItemType::Pipeline => FabricItemType::Pipeline,
            RawItemType::Notebook => FabricItemType::Notebook,
            RawItemType::SparkJobDefinition => FabricItemType::SparkJobDefinition,
            RawItemType::CopyJob => FabricItemType::CopyJob,
        }),
    };
    let mut parameters = IndexMap::new();
    if let Some(p) = &raw.parameters {
        if let Some(t) = item_type.filter(|t| !t.takes_parameters()) {
            c.error_help(
                Code::NotApplicable,
                p.loc(),
                format!("a {} takes no `parameters`", t.noun()),
                "not for this item type",
                Some(
                    "`parameters` applies to pipelines and notebooks; a Spark job definition or \
                     a copy job runs with its saved definition"
                        .into(),
                ),
            );
        }
        for (k, v) in p.get() {
            let value = c.json(v, p.loc(), false);
            if item_type == Some(FabricItemType::Notebook)
                && notebook_parameter_type(&value).is_none()
            {
                c.error(Code::InvalidValue,
                    p.loc(),
                    format!(
                        "notebook parameter `{k}` must be a string, a number or true/false, not {value}"
                    ),
                    "not a notebook parameter value",
                );
            }
            parameters.insert(k.clone(), value);
        }
    }
    let configuration = raw.configuration.as_ref().and_then(|cfg| {
        if let Some(t) = item_type.filter(|t| *t != FabricItemType::Notebook) {
            c.error(
                Code::NotApplicable,
                cfg.loc(),
                format!(
                    "`configuration` applies to notebooks only, not to a {}",
                    t.noun()
                ),
                "not for this item type",
            );
            return None;
        }
        Some(configuration(c, cfg))
    });
    Some(StepKind::FabricJob(FabricJobStep {
        workspace: workspace?,
        item: item?,
        item_type: item_type?,
        parameters,
        configuration,
    }))
}

/// The session configuration in the service's JSON.
fn configuration(c: &mut Checker<'_>, cfg: &Sp<RawNotebookConfiguration>) -> Value {
    let raw = cfg.get();
    let mut out = Map::new();
    if let Some(conf) = &raw.conf {
        let map: Map<String, Value> = conf
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(c.text(v))))
            .collect();
        out.insert("conf".into(), Value::Object(map));
    }
    if let Some(env) = &raw.environment {
        let e = env.get();
        if e.id.is_none() && e.name.is_none() {
            c.error(
                Code::MissingKey,
                env.loc(),
                "`environment` needs `id` or `name`",
                "empty",
            );
        }
        let mut m = Map::new();
        if let Some(id) = &e.id {
            m.insert("id".into(), json!(c.non_empty(id, "environment.id")));
        }
        if let Some(name) = &e.name {
            m.insert("name".into(), json!(c.non_empty(name, "environment.name")));
        }
        out.insert("environment".into(), Value::Object(m));
    }
    if let Some(lh) = &raw.default_lakehouse {
        let l = lh.get();
        if l.id.is_none() && l.name.is_none() {
            c.error(
                Code::MissingKey,
                lh.loc(),
                "`default_lakehouse` needs `id` or `name`",
                "empty",
            );
        }
        let mut m = Map::new();
        if let Some(name) = &l.name {
            m.insert(
                "name".into(),
                json!(c.non_empty(name, "default_lakehouse.name")),
            );
        }
        if let Some(id) = &l.id {
            m.insert("id".into(), json!(c.non_empty(id, "default_lakehouse.id")));
        }
        if let Some(ws) = &l.workspace_id {
            m.insert(
                "workspaceId".into(),
                json!(c.non_empty(ws, "default_lakehouse.workspace_id")),
            );
        }
        out.insert("defaultLakehouse".into(), Value::Object(m));
    }
    if let (Some(starter), Some(pool)) = (&raw.use_starter_pool, &raw.use_workspace_pool)
        && *starter.get()
    {
        c.error(
            Code::ConflictingKeys,
            pool.loc(),
            "`use_workspace_pool` and `use_starter_pool: true` contradict each other",
            "pick one pool",
        );
    }
    if let Some(starter) = &raw.use_starter_pool {
        out.insert("useStarterPool".into(), json!(*starter.get()));
    }
    if let Some(pool) = &raw.use_workspace_pool {
        out.insert(
            "useWorkspacePool".into(),
            json!(c.non_empty(pool, "use_workspace_pool")),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use crate::job::load_bytes;
    use crate::job::model::{FabricItemType, StepKind};
    use serde_json::json;

    fn short(text: &str) -> String {
        match load_bytes("f.yaml", text.as_bytes(), &[], &|_| None) {
            Ok(_) => String::new(),
            Err(d) => d.render(crate::job::DiagFormat::Short, false),
        }
    }

    #[test]
    fn a_notebook_job_becomes_its_model() {
        let text = r#"
version: 1
name: f
connections: { default: { access_token: t } }
steps:
  nb:
    type: fabric_job
    workspace: WS
    item: Transform
    item_type: notebook
    parameters: { region: EU, days: 3 }
    configuration:
      conf: { spark.sql.shuffle.partitions: "64" }
      environment: { name: Nightly }
      default_lakehouse: { name: Sales, workspace_id: 0c8d2b1e-0000-4000-8000-000000000001 }
      use_starter_pool: false
      use_workspace_pool: Large
    if_running: adopt
    poll_interval: 30s
  load: { type: fabric_job, workspace: WS, item: Nightly Load, item_type: pipeline, parameters: { day: "2025-01-31" } }
"#;
        let job = load_bytes("f.yaml", text.as_bytes(), &[], &|_| None)
            .unwrap_or_else(|d| panic!("{}", d.render(crate::job::DiagFormat::Short, false)))
            .job;
        let StepKind::FabricJob(nb) = &job.steps["nb"].kind else {
            panic!("not a fabric_job");
        };
        assert_eq!(nb.item_type, FabricItemType::Notebook);
        assert_eq!(nb.item, "Transform");
        assert_eq!(nb.parameters["days"], json!(3));
        assert_eq!(
            nb.configuration,
            Some(json!({
                "conf": {"spark.sql.shuffle.partitions": "64"},
                "environment": {"name": "Nightly"},
                "defaultLakehouse": {"name": "Sales", "workspaceId": "0c8d2b1e-0000-4000-8000-000000000001"},
                "useStarterPool": false,
                "useWorkspacePool": "Large"
            }))
        );
        assert_eq!(
            job.steps["nb"].if_running,
            crate::job::model::IfRunning::Adopt
        );
        assert!(
            matches!(&job.steps["load"].kind, StepKind::FabricJob(p) if p.item_type == FabricItemType::Pipeline)
        );
    }

    #[test]
    fn wrong_keys_per_item_type_are_located_errors() {
        let text = r#"version: 1
name: f
steps:
  a: { type: fabric_job, workspace: WS, item: X }
  b: { type: fabric_job, workspace: WS, item: X, item_type: copy_job, parameters: { p: 1 } }
  c: { type: fabric_job, workspace: WS, item: X, item_type: pipeline, configuration: { use_starter_pool: true } }
  d: { type: fabric_job, workspace: WS, item: X, item_type: notebook, parameters: { p: [1, 2] } }
  e: { type: fabric_job, workspace: WS, item: X, item_type: notebook, configuration: { use_starter_pool: true, use_workspace_pool: Big } }
  f: { type: fabric_job, workspace: WS, item: X, item_type: notebook, configuration: { environment: {} } }
  g: { type: dataset, workspace: WS, dataset: D, item_type: notebook }
  h: { type: fabric_job, workspace: WS, item: X, item_type: lakehouse }
"#;
        let out = short(text);
        for expected in [
            "f.yaml:4:14: error: a `fabric_job` step needs `item_type` (pipeline, notebook, spark_job_definition or copy_job)",
            "f.yaml:5:83: error: a copy job takes no `parameters`",
            "f.yaml:6:86: error: `configuration` applies to notebooks only, not to a pipeline",
            "f.yaml:7:83: error: notebook parameter `p` must be a string, a number or true/false, not [1,2]",
            "f.yaml:8:132: error: `use_workspace_pool` and `use_starter_pool: true` contradict each other",
            "f.yaml:9:101: error: `environment` needs `id` or `name`",
            "f.yaml:10:61: error: `item_type` is not a key of a `dataset` step (`item_type` belongs to: fabric_job, freshness)",
            "f.yaml:11:61: error: unknown value `lakehouse` (expected one of: pipeline, notebook, spark_job_definition, copy_job)",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
    }

    #[test]
    fn every_item_type_may_be_run_by_a_service_principal_as_its_spec_says() {
        // The identity table each item's own run operation documents (copied in
        // src/sim/item_jobs.rs and checked against the specs by tests/it/sim_requests.rs)
        // lists service principals for all four item types, so a client-secret connection
        // validates without a finding.
        for t in ["pipeline", "notebook", "spark_job_definition", "copy_job"] {
            let text = format!(
                "version: 1\nname: f\nconnections: {{ default: {{ tenant_id: t, client_id: c, client_secret: s }} }}\nsteps:\n  a: {{ type: fabric_job, workspace: WS, item: X, item_type: {t} }}\n"
            );
            let loaded = load_bytes("f.yaml", text.as_bytes(), &[], &|_| None)
                .unwrap_or_else(|d| panic!("{}", d.render(crate::job::DiagFormat::Short, false)));
            assert!(loaded.warnings.items().is_empty(), "{t}");
            let row = crate::sim::item_job_identity(
                FabricItemType::from_fabric_type(match t {
                    "pipeline" => "DataPipeline",
                    "notebook" => "Notebook",
                    "spark_job_definition" => "SparkJobDefinition",
                    _ => "CopyJob",
                })
                .unwrap()
                .fabric_type(),
            )
            .unwrap();
            assert!(row.app && row.user, "{t}");
        }
    }
}
