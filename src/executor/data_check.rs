//! `data_check`: one DAX query against a semantic model through the Execute Queries API
//! (`POST .../groups/{g}/datasets/{d}/executeQueries`) and an assertion on its answer.
//!
//! Nothing is started remotely, so there is nothing to find again, wait for or cancel: an
//! attempt resolves the model, sends the query once (the client re-sends it on a transient
//! fault or a 429, after its `Retry-After`: a query is a read), and judges the one result
//! table. The check's result goes out as a progress update; each attempt's replaces the
//! previous one's, so a retried check is counted once.

use serde_json::{Map, Value, json};

use super::checks::{conclude_check, evaluate};
use super::common::{Stop, conclude, guard_raw, resolve};
use super::{AttemptContext, AttemptOutcome};
use crate::job::model::DataCheckStep;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

/// What the service needs before it answers a query, said where a refusal shows it.
pub(crate) const PERMISSIONS_HELP: &str = "the tenant setting \"Dataset Execute Queries REST API\" (Admin portal > Tenant settings > Integration settings) must be enabled, the caller needs Read and Build permission on the semantic model, and a service principal also needs \"Allow service principals to use Power BI APIs\" (Developer settings) and cannot query a model with row-level security or SSO";

/// The request body: one query, nulls kept (so a blank shows in the sample as `null`
/// instead of a missing column), and the impersonated user when set.
pub(crate) fn request_body(step: &DataCheckStep) -> Value {
    let mut body = json!({
        "queries": [{ "query": step.query }],
        "serializerSettings": { "includeNulls": true },
    });
    if let Some(user) = &step.impersonated_user {
        body["impersonatedUserName"] = json!(user);
    }
    body
}

/// The one result table's rows, or the error the answer carries (a 200 may carry one at
/// the response, query or table level: a DAX error, more than one table, or the row /
/// value limit hit, after which the rows are cut and cannot be judged).
pub(crate) fn answer_rows(answer: &Value) -> Result<Vec<Map<String, Value>>, String> {
    let error_of = |v: &Value| {
        v.get("error").filter(|e| !e.is_null()).map(|e| {
            let code = e.get("code").and_then(Value::as_str).unwrap_or_default();
            let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
            match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (true, false) => message.to_string(),
                (false, true) => code.to_string(),
                (true, true) => e.to_string(),
            }
        })
    };
    if let Some(e) = error_of(answer) {
        return Err(e);
    }
    let result = answer
        .get("results")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .ok_or("the answer holds no result")?;
    if let Some(e) = error_of(result) {
        return Err(e);
    }
    let tables = result
        .get("tables")
        .and_then(Value::as_array)
        .ok_or("the answer holds no table")?;
    let table = match tables.as_slice() {
        [one] => one,
        [] => return Err("the answer holds no table".into()),
        _ => return Err("the query returned more than one table".into()),
    };
    if let Some(e) = error_of(table) {
        return Err(e);
    }
    Ok(table
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default())
}

/// A refused query, with what the service needs when the refusal is about permission (401,
/// or 403 other than an expired token).
fn refusal(e: ClientError) -> Stop {
    let permission = match e.status() {
        Some(401) => true,
        Some(403) => !e.is_token_expired(),
        _ => false,
    };
    if permission {
        Stop::Refused(format!("{e}; {PERMISSIONS_HELP}"))
    } else {
        Stop::from(e)
    }
}

/// Runs one attempt of a data check.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    step: DataCheckStep,
) -> AttemptOutcome {
    let result = attempt(&client, &ctx, &step).await;
    conclude(&client, &ctx, result, None).await
}

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    step: &DataCheckStep,
) -> Result<AttemptOutcome, Stop> {
    let conn = ctx.step.connection.as_str();
    let (ws, item) = resolve(
        client,
        ctx,
        &step.workspace,
        ItemKind::Dataset,
        &step.dataset,
    )
    .await?;
    let answer = guard_raw(
        &ctx.cancel,
        client.execute_queries(conn, &ws, &item.id, request_body(step)),
    )
    .await?
    .map_err(refusal)?;
    let rows = answer_rows(&answer)
        .map_err(|e| Stop::Refused(format!("the query's answer cannot be judged: {e}")))?;
    // A failed assertion is retried: late data may still arrive.
    conclude_check(
        ctx,
        evaluate(&step.expect, step.severity, &rows),
        Stop::Failed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::{Expectation, Severity};

    #[test]
    fn the_body_holds_one_query_and_the_impersonated_user() {
        let mut step = DataCheckStep {
            workspace: "W".into(),
            dataset: "D".into(),
            query: "EVALUATE Orders".into(),
            expect: Expectation::NoRows,
            severity: Severity::Error,
            impersonated_user: None,
        };
        assert_eq!(
            request_body(&step),
            json!({"queries": [{"query": "EVALUATE Orders"}], "serializerSettings": {"includeNulls": true}})
        );
        step.impersonated_user = Some("ann@contoso.com".into());
        assert_eq!(
            request_body(&step)["impersonatedUserName"],
            "ann@contoso.com"
        );
    }

    #[test]
    fn errors_at_any_level_of_a_200_are_reported() {
        let ok = json!({"results": [{"tables": [{"rows": [{"[n]": 1}]}]}]});
        assert_eq!(answer_rows(&ok).unwrap().len(), 1);
        let cut = json!({"results": [{"tables": [{"rows": [], "error": {"code": "DatasetExecuteQueriesError", "message": "More than 100000 rows in a query result"}}]}]});
        assert_eq!(
            answer_rows(&cut).unwrap_err(),
            "DatasetExecuteQueriesError: More than 100000 rows in a query result"
        );
        let two = json!({"results": [{"tables": [{"rows": []}, {"rows": []}]}]});
        assert_eq!(
            answer_rows(&two).unwrap_err(),
            "the query returned more than one table"
        );
        let top = json!({"error": {"message": "boom"}});
        assert_eq!(answer_rows(&top).unwrap_err(), "boom");
    }
}
