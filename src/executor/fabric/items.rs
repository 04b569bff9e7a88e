//! `fabric_job`: a pipeline, notebook, Spark job definition or copy job, resolved by name
//! among the workspace's Fabric items of its type and run as one job instance through the
//! Job Scheduler (`POST .../items/{id}/jobs/instances?jobType=...`), followed by
//! [`FabricJob`] through the one remote-run protocol.

use serde_json::{Map, Value, json};

use super::FabricJob;
use crate::executor::common::{conclude, resolve};
use crate::executor::protocol::drive;
use crate::executor::{AttemptContext, AttemptOutcome};
use crate::job::model::{FabricItemType, FabricJobStep};
use crate::powerbi::PowerBiClient;
use crate::powerbi::resolve::ItemKind;

/// The job type a trigger sends for an item type, and the other spellings the service may
/// list that item's instances under (docs/job-reference.md, "fabric_job", says where each
/// comes from).
pub(crate) fn job_type(item_type: FabricItemType) -> (&'static str, &'static [&'static str]) {
    match item_type {
        FabricItemType::Pipeline => ("Pipeline", &["Execute"]),
        FabricItemType::Notebook => ("RunNotebook", &["Execute"]),
        FabricItemType::SparkJobDefinition => ("sparkjob", &[]),
        FabricItemType::CopyJob => ("CopyJob", &[]),
    }
}

/// The `RunOnDemandItemJob` body of a step, when it needs one: pipeline parameters as
/// `executionData.parameters` (name -> value); notebook parameters as
/// `executionData.parameters` (name -> `{value, type}`) and the session configuration as
/// `executionData.configuration`.
pub(crate) fn body(step: &FabricJobStep) -> Option<Value> {
    let mut data = Map::new();
    match step.item_type {
        FabricItemType::Pipeline if !step.parameters.is_empty() => {
            let params: Map<String, Value> = step
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            data.insert("parameters".into(), Value::Object(params));
        }
        FabricItemType::Notebook => {
            if !step.parameters.is_empty() {
                let params: Map<String, Value> = step
                    .parameters
                    .iter()
                    .map(|(k, v)| {
                        let ty = crate::job::model::notebook_parameter_type(v).unwrap_or("string");
                        (k.clone(), json!({"value": v, "type": ty}))
                    })
                    .collect();
                data.insert("parameters".into(), Value::Object(params));
            }
            if let Some(c) = &step.configuration {
                data.insert("configuration".into(), c.clone());
            }
        }
        _ => {}
    }
    (!data.is_empty()).then(|| json!({ "executionData": data }))
}

/// Runs one attempt of a `fabric_job` step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    step: FabricJobStep,
) -> AttemptOutcome {
    let conn = ctx.step.connection.as_str();
    let kind = ItemKind::Fabric {
        item_type: step.item_type.fabric_type(),
        noun: step.item_type.noun(),
    };
    match resolve(&client, &ctx, &step.workspace, kind, &step.item).await {
        Ok((ws, item)) => {
            let (job_type, also_listed_as) = job_type(step.item_type);
            let kind = FabricJob {
                client: client.clone(),
                conn: conn.to_string(),
                ws,
                item: item.id,
                name: item.name,
                step: ctx.step.id.to_string(),
                job_type,
                also_listed_as,
                body: body(&step),
                poll_interval: ctx.step.poll_interval,
            };
            drive(&client, &ctx, &kind).await
        }
        Err(stop) => conclude(&client, &ctx, Err(stop), None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn step(item_type: FabricItemType) -> FabricJobStep {
        FabricJobStep {
            workspace: "w".into(),
            item: "i".into(),
            item_type,
            parameters: IndexMap::new(),
            configuration: None,
        }
    }

    #[test]
    fn bodies_per_item_type() {
        assert_eq!(body(&step(FabricItemType::Pipeline)), None);
        assert_eq!(body(&step(FabricItemType::CopyJob)), None);
        let mut p = step(FabricItemType::Pipeline);
        p.parameters.insert("region".into(), json!("EU"));
        p.parameters.insert("days".into(), json!(3));
        assert_eq!(
            body(&p),
            Some(json!({"executionData": {"parameters": {"region": "EU", "days": 3}}}))
        );
        let mut n = step(FabricItemType::Notebook);
        n.parameters.insert("region".into(), json!("EU"));
        n.parameters.insert("days".into(), json!(3));
        n.parameters.insert("ratio".into(), json!(0.5));
        n.parameters.insert("full".into(), json!(true));
        n.configuration = Some(json!({"useStarterPool": true}));
        assert_eq!(
            body(&n),
            Some(json!({"executionData": {
                "parameters": {
                    "region": {"value": "EU", "type": "string"},
                    "days": {"value": 3, "type": "int"},
                    "ratio": {"value": 0.5, "type": "float"},
                    "full": {"value": true, "type": "bool"}
                },
                "configuration": {"useStarterPool": true}
            }}))
        );
    }
}
