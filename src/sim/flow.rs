//! Power Automate / Logic Apps "When an HTTP request is received" triggers (SAS URLs),
//! powerbi-api.md section 7 and pitfall 18.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::json;

use super::http::{Sim, empty, json_response, set_header};
use super::introspect::resource_key;
use super::powerbi::start_gen1_refresh;
use super::state::{Audience, derived_uuid};

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new().route(
        "/workflows/{workflow}/triggers/manual/paths/invoke",
        post(invoke),
    )
}

pub(crate) fn flow_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

/// The status for the `n`-th call (0-based) from a list whose last entry repeats.
pub(crate) fn nth_status(statuses: &[u16], n: u64, default: u16) -> StatusCode {
    let code = statuses
        .get(n as usize)
        .or(statuses.last())
        .copied()
        .unwrap_or(default);
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `POST /workflows/{id}/triggers/manual/paths/invoke?api-version=..&sp=..&sv=1.0&sig=..`.
async fn invoke(
    State(sim): State<Arc<Sim>>,
    Path(workflow): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut world = sim.lock();
    let Some(index) = world.flows.iter().position(|f| f.id == workflow) else {
        return flow_error(
            StatusCode::NOT_FOUND,
            "WorkflowNotFound",
            &format!("The workflow '{workflow}' could not be found."),
        );
    };
    let flow = &world.flows[index];
    if flow.oauth {
        // Restricted to the tenant's users: a live token for the flow audience
        // (`https://service.flow.microsoft.com/`, trailing slash included) and no SAS.
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let now = sim.clock.now();
        let valid = bearer
            .and_then(|t| world.tokens.get(t))
            .is_some_and(|info| info.audience == Audience::Flow && info.expires > now);
        let sas = ["sig", "sp", "sv"].iter().any(|k| q.contains_key(*k));
        if !valid || sas {
            return flow_error(
                StatusCode::UNAUTHORIZED,
                "MisMatchingOAuthClaims",
                "One or more claims either missing or does not match with the open authentication access control policy.",
            );
        }
    } else if !(q.get("sig") == Some(&flow.sig)
        && q.get("sp").map(String::as_str) == Some("/triggers/manual/run")
        && q.get("sv").map(String::as_str) == Some("1.0")
        && q.contains_key("api-version"))
        // A SAS-only trigger also refuses any Authorization header.
        || headers.contains_key(header::AUTHORIZATION)
    {
        return flow_error(
            StatusCode::UNAUTHORIZED,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated only by Shared Access scheme.",
        );
    }
    let n = flow.calls;
    let status = nth_status(&flow.statuses, n, 202);
    let key = resource_key("flow", "", &flow.name);
    let starts = flow.starts_dataflow.clone();
    let delay = flow.delay;
    let name = flow.name.clone();
    world.flows[index].calls += 1;
    world.count_key(&key, |c| c.triggers += 1);
    if !status.is_success() {
        return flow_error(
            status,
            "FlowRunFailed",
            &format!(
                "The flow '{name}' answered {} (simulated).",
                status.as_u16()
            ),
        );
    }
    if let Some((ws, df)) = starts
        && let Some(item) = world.find_named(&ws, &df)
    {
        // Like the real thing, the 202 says nothing about whether the refresh could start.
        let _ = start_gen1_refresh(&mut world, &sim.clock, item, delay);
    }
    let run_id = format!(
        "0858{:025}CU{:02}",
        derived_uuid(&["flowrun", &workflow, &n.to_string()]).as_u128() % 10u128.pow(25),
        n % 100
    );
    let mut response = empty(status);
    set_header(&mut response, "x-ms-workflow-run-id", &run_id);
    set_header(&mut response, "x-ms-workflow-id", &workflow);
    set_header(&mut response, "x-ms-workflow-name", &workflow);
    set_header(
        &mut response,
        "x-ms-workflow-version",
        "08584999999999999999",
    );
    set_header(
        &mut response,
        "x-ms-tracking-id",
        &uuid::Uuid::new_v4().to_string(),
    );
    set_header(
        &mut response,
        "x-ms-correlation-id",
        &uuid::Uuid::new_v4().to_string(),
    );
    set_header(&mut response, "x-ms-client-tracking-id", &run_id);
    set_header(&mut response, "x-ms-trigger-history-name", &run_id);
    set_header(&mut response, "x-ms-execution-location", "westeurope");
    set_header(
        &mut response,
        "x-ms-request-id",
        &uuid::Uuid::new_v4().to_string(),
    );
    response
}
