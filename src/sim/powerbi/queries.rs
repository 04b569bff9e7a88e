//! `POST /v1.0/myorg/groups/{g}/datasets/{d}/executeQueries` (`Datasets_ExecuteQueriesInGroup`):
//! answers from the profile's `queries:` table of the dataset, never by evaluating DAX.
//!
//! Served strictly, as the service documents it: one query per call (`queries` of one
//! entry), `serializerSettings.includeNulls` (default `false`: null values are left out of a
//! row), the tenant setting "Dataset Execute Queries REST API" and the service-principal
//! setting (401 when off; a service principal also gets 401 on a model with row-level
//! security), the request schema (`DatasetExecuteQueriesRequest`, unknown fields refused:
//! 400), at most `per_minute` queries per minute per caller (429 with `Retry-After`), and
//! at most 100,000 rows or 1,000,000 values per answer (the rows are cut and the table
//! carries an error, with a 200). A constant `EVALUATE ROW("name", value)` is
//! answered on every model, as the service does; any other query the profile does not list
//! is a DAX error: 400 `DatasetExecuteQueriesError`, its text under `pbi.error.details`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{is_dataset, item_index};
use crate::sim::http::{Sim, json_response, pbi_error};
use crate::sim::state::{ItemKind, Principal, collapse_whitespace};
use crate::sim::strict::{self, DATASET_EXECUTE_QUERIES_REQUEST, Rule};

/// The service's limits per query.
const MAX_ROWS: usize = 100_000;
const MAX_VALUES: usize = 1_000_000;

/// The window of the per-caller limit.
const WINDOW: Duration = Duration::from_secs(60);

/// Power BI's error envelope with `pbi.error.details` (how the service words DAX errors and
/// permission refusals).
fn pbi_detailed(status: StatusCode, code: &str, detail: &str) -> Response {
    json_response(
        status,
        json!({"error": {
            "code": code,
            "pbi.error": {
                "code": code,
                "parameters": {},
                "details": [{"code": "DetailsMessage", "detail": {"type": 1, "value": detail}}],
                "exceptionCulprit": 1
            }
        }}),
    )
}

fn principal_slot(p: Principal) -> u8 {
    match p {
        Principal::App => 0,
        Principal::ManagedIdentity => 1,
        Principal::User => 2,
    }
}

pub(super) async fn execute(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    let mut world = sim.lock();
    let (_, index) = match item_index(&world, &group, &dataset, is_dataset) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let settings = world.execute_queries.clone();
    let app = strict::app_only(principal);
    if !settings.enabled || (app && !settings.service_principals) {
        return pbi_detailed(
            StatusCode::UNAUTHORIZED,
            "PowerBINotAuthorizedException",
            "The caller is not allowed to execute queries against this dataset (tenant setting 'Dataset Execute Queries REST API' or 'Allow service principals to use Power BI APIs'). (simulated)",
        );
    }
    // "Regardless of the admin tenant setting, Service Principals aren't supported for
    // datasets with RLS": 401, whatever the workspace role or impersonated user.
    let rls = matches!(&world.items[index].kind, ItemKind::Dataset { rls_roles, .. } if !rls_roles.is_empty());
    if app && rls {
        return pbi_detailed(
            StatusCode::UNAUTHORIZED,
            "PowerBINotAuthorizedException",
            "A service principal cannot execute queries against a dataset with row-level security. (simulated)",
        );
    }
    // 120 queries per minute per user, whatever the dataset.
    let now = tokio::time::Instant::now();
    let times = world
        .query_times
        .entry(principal_slot(principal))
        .or_default();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
    if times.len() >= settings.per_minute as usize {
        let wait = times
            .front()
            .map(|t| WINDOW.saturating_sub(now.duration_since(*t)))
            .unwrap_or(WINDOW);
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        world.counters.throttled += 1;
        let mut response = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": format!(
                "You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in {secs} seconds."
            )}),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    times.push_back(now);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return pbi_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The request body is not JSON. (simulated)",
        );
    };
    if sim.cfg.rules.holds(Rule::RequestSchema)
        && let Err(problem) = strict::check_shape(&request, &DATASET_EXECUTE_QUERIES_REQUEST)
    {
        return pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", &problem);
    }
    let Some(queries) = request.get("queries").and_then(Value::as_array) else {
        return pbi_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The request needs `queries`. (simulated)",
        );
    };
    if queries.len() != 1 {
        return pbi_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!(
                "Only one query per request is supported; got {}. (simulated)",
                queries.len()
            ),
        );
    }
    let Some(query) = queries[0].get("query").and_then(Value::as_str) else {
        return pbi_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "A query needs `query`. (simulated)",
        );
    };
    let include_nulls = request
        .pointer("/serializerSettings/includeNulls")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let wanted = collapse_whitespace(query);
    let Some(rows) = world
        .dataset_queries
        .get(&index)
        .and_then(|answers| answers.iter().find(|(q, _)| *q == wanted))
        .map(|(_, rows)| rows.clone())
        .or_else(|| super::constant_row::evaluate(query).map(|row| vec![row]))
    else {
        return pbi_detailed(
            StatusCode::BAD_REQUEST,
            "DatasetExecuteQueriesError",
            "Query (1, 1) The simulator has no answer for this query: declare it under the dataset's `queries:` in the profile. (simulated)",
        );
    };
    let columns = rows
        .first()
        .and_then(Value::as_object)
        .map_or(1, |r| r.len().max(1));
    let limit = MAX_ROWS.min(MAX_VALUES / columns);
    let cut = rows.len() > limit;
    let rows: Vec<Value> = rows
        .into_iter()
        .take(limit)
        .map(|r| match r {
            Value::Object(m) if !include_nulls => {
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
            }
            other => other,
        })
        .collect();
    let mut table = json!({ "rows": rows });
    if cut {
        table["error"] = json!({
            "code": "DatasetExecuteQueriesError",
            "message": format!("More than {limit} rows in a query result (at most {MAX_ROWS} rows or {MAX_VALUES} values per query)."),
        });
    }
    json_response(StatusCode::OK, json!({"results": [{"tables": [table]}]}))
}
