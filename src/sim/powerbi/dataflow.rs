//! Dataflow Gen1: refresh (200, `notifyOption` required), transactions and transaction
//! cancel (powerbi-api.md section 2, pitfall 9).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{group_index, int_param, is_dataflow, item_index};
use crate::sim::http::{Sim, empty, json_response, parse_json_body, pbi_error};
use crate::sim::state::{Clock, Phase, Principal, Run, RunKind, World, fabric_time};
use crate::sim::strict::{self, DATAFLOW_REFRESH_REQUEST, Rule};

fn bad(message: &str) -> Response {
    pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// Starts a Gen1 refresh of `item` after `delay` (flows start one this way too).
/// `Err` when one is already running.
pub(crate) fn start_refresh(
    world: &mut World,
    clock: &Clock,
    item: usize,
    delay: Duration,
) -> Result<Option<usize>, ()> {
    if world.active_run(item, clock.now()).is_some() {
        return Err(());
    }
    Ok(world.trigger_after(
        item,
        RunKind::Transaction { scheduled: false },
        clock,
        delay,
    ))
}

/// `POST .../dataflows/{d}/refreshes[?processType=default|processFull]`.
pub(super) async fn trigger(
    State(sim): State<Arc<Sim>>,
    Path((group, dataflow)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    let rules = &sim.cfg.rules;
    if rules.holds(Rule::QueryParameters)
        && let Some(p) = q.get("processType")
        && !["default", "processFull"]
            .iter()
            .any(|v| v.eq_ignore_ascii_case(p))
    {
        return bad(&format!("Invalid processType '{p}'"));
    }
    let notify = match parse_json_body(&body) {
        Err(message) => return bad(&message),
        Ok(None) => None,
        Ok(Some(map)) => {
            if rules.holds(Rule::RequestSchema) {
                if let Some(other) = map.keys().find(|k| k.as_str() != "notifyOption") {
                    return bad(&format!("The request has an unknown property '{other}'"));
                }
                if let Err(problem) =
                    strict::check_shape(&Value::Object(map.clone()), &DATAFLOW_REFRESH_REQUEST)
                {
                    return bad(&problem);
                }
            }
            map.get("notifyOption").cloned()
        }
    };
    match notify.as_ref().and_then(Value::as_str) {
        None => {
            return bad("The 'notifyOption' field is required for a dataflow refresh");
        }
        Some(v)
            if !["MailOnFailure", "NoNotification"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(v)) =>
        {
            return bad(&format!(
                "Invalid notifyOption '{v}' for a dataflow: use MailOnFailure or NoNotification"
            ));
        }
        Some(v)
            if !v.eq_ignore_ascii_case("NoNotification")
                && rules.holds(Rule::AppOnlyNotify)
                && strict::app_only(principal) =>
        {
            return strict::app_only_notify(v);
        }
        Some(_) => {}
    }
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &dataflow, is_dataflow) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match start_refresh(&mut world, &sim.clock, item, Duration::ZERO) {
        Ok(_) => empty(StatusCode::OK),
        Err(()) => bad("A refresh of this dataflow is already in progress"),
    }
}

/// The free-form transaction `status` (observed `InProgress`; terminal values as commonly
/// reported).
fn status_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Queued => "NotStarted",
        Phase::Running => "InProgress",
        Phase::Succeeded | Phase::Deduped => "Success",
        Phase::Failed { .. } | Phase::TimedOut | Phase::Busy => "Failed",
        Phase::Cancelled => "Cancelled",
    }
}

fn transaction_json(sim: &Sim, run: &Run, now: tokio::time::Instant) -> Value {
    let phase = run.phase(now);
    let scheduled = matches!(run.kind, RunKind::Transaction { scheduled: true });
    let mut v = json!({
        "id": run.id,
        "refreshType": if scheduled { "Scheduled" } else { "OnDemand" },
        "startTime": format!("{}Z", fabric_time(sim.clock.wall(run.created))),
        "status": status_word(&phase),
    });
    if let Some(end) = run.ended_at(now) {
        v["endTime"] = json!(format!("{}Z", fabric_time(sim.clock.wall(end))));
    }
    v
}

/// `GET .../dataflows/{d}/transactions`: newest first, after the lag; `$top`/`top` honoured.
pub(super) async fn transactions(
    State(sim): State<Arc<Sim>>,
    Path((group, dataflow)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let top = match (int_param(&q, "$top"), int_param(&q, "top")) {
        (Ok(a), Ok(b)) => a.or(b).unwrap_or(usize::MAX),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &dataflow, is_dataflow) {
        Ok(x) => x,
        Err(r) => return r,
    };
    world.count(item, |c| c.polls += 1);
    let now = sim.clock.now();
    let value: Vec<Value> = world
        .runs_of(item)
        .filter(|(_, r)| r.visible(now))
        .take(top)
        .map(|(_, r)| transaction_json(&sim, r, now))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/myorg/groups/{group}/$metadata#transactions", sim.cfg.base_url),
            "value": value,
        }),
    )
}

/// `POST .../groups/{g}/dataflows/transactions/{id}/cancel` (no dataflow segment).
pub(super) async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path((group, transaction)): Path<(String, String)>,
) -> Response {
    let mut world = sim.lock();
    let ws = match group_index(&world, &group) {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let found = world.run_by_id(&transaction).filter(|&r| {
        matches!(world.runs[r].kind, RunKind::Transaction { .. })
            && world.items[world.runs[r].item].workspace == ws
    });
    let status = match found {
        None => "NotFound",
        Some(r) => {
            let item = world.runs[r].item;
            world.count(item, |c| c.cancels += 1);
            let now = sim.clock.now();
            if world.runs[r].phase(now).is_terminal() {
                "AlreadyConcluded"
            } else {
                world.runs[r].cancelled = Some(now);
                "SuccessfullyMarked"
            }
        }
    };
    json_response(
        StatusCode::OK,
        json!({"transactionId": transaction, "status": status}),
    )
}
