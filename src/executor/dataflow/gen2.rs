//! Dataflow Gen2: a Fabric `Execute` job instance.

use serde_json::{Value, json};

use crate::executor::common::{conclude, resolve};
use crate::executor::fabric::FabricJob;
use crate::executor::protocol::drive;
use crate::executor::{AttemptContext, AttemptOutcome};
use crate::job::model::DataflowStep;
use crate::powerbi::PowerBiClient;
use crate::powerbi::resolve::ItemKind;

/// The `RunOnDemandItemJob` body for a Gen2 dataflow, when it needs one.
pub(super) fn gen2_body(df: &DataflowStep) -> Option<Value> {
    if df.execute_option.is_none() && df.parameters.is_empty() {
        return None;
    }
    let mut data = serde_json::Map::new();
    if let Some(o) = df.execute_option {
        data.insert("executeOption".into(), json!(o));
    }
    if !df.parameters.is_empty() {
        let params: Vec<Value> = df
            .parameters
            .iter()
            .map(|(k, v)| json!({"parameterName": k, "type": "Automatic", "value": v}))
            .collect();
        data.insert("parameters".into(), Value::Array(params));
    }
    Some(json!({ "executionData": data }))
}

/// Runs one attempt of a Gen2 dataflow step.
pub(super) async fn run(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    df: &DataflowStep,
) -> AttemptOutcome {
    let conn = ctx.step.connection.as_str();
    match resolve(
        client,
        ctx,
        &df.workspace,
        ItemKind::DataflowGen2,
        &df.dataflow,
    )
    .await
    {
        Ok((ws, item)) => {
            let kind = FabricJob {
                client: client.clone(),
                conn: conn.to_string(),
                ws,
                item: item.id,
                name: item.name,
                step: ctx.step.id.to_string(),
                job_type: "Execute",
                also_listed_as: &[],
                body: gen2_body(df),
                poll_interval: ctx.step.poll_interval,
            };
            drive(client, ctx, &kind).await
        }
        Err(stop) => conclude(client, ctx, Err(stop), None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{ExecuteOption, Generation, NotifyOption};
    use indexmap::IndexMap;

    fn step() -> DataflowStep {
        DataflowStep {
            workspace: "w".into(),
            dataflow: "d".into(),
            generation: Generation::Gen2,
            notify: NotifyOption::NoNotification,
            process_type: None,
            execute_option: None,
            parameters: IndexMap::new(),
        }
    }

    #[test]
    fn gen2_body_only_when_needed() {
        assert_eq!(gen2_body(&step()), None);
        let mut s = step();
        s.execute_option = Some(ExecuteOption::ApplyChangesIfNeeded);
        s.parameters.insert("Region".into(), json!("EU"));
        assert_eq!(
            gen2_body(&s),
            Some(
                json!({"executionData": {"executeOption": "ApplyChangesIfNeeded",
                "parameters": [{"parameterName": "Region", "type": "Automatic", "value": "EU"}]}})
            )
        );
    }
}
