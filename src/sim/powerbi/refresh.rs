//! Semantic model refresh: trigger (standard / enhanced, decided by the body), history,
//! execution details and cancel (powerbi-api.md section 1 and pitfalls 1-7).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{int_param, is_dataset, item_index};
use crate::sim::http::{
    Sim, empty, json_response, parse_json_body, pbi_error, pbi_not_found, set_header,
};
use crate::sim::state::{EnhancedRequest, Phase, Principal, RefreshOrigin, Run, RunKind, pbi_time};
use crate::sim::strict::{self, DATASET_REFRESH_REQUEST, Rule, Rules};

const REFRESH_TYPES: &[&str] = &[
    "Full",
    "ClearValues",
    "Calculate",
    "DataOnly",
    "Automatic",
    "Defragment",
];
const COMMIT_MODES: &[&str] = &["Transactional", "PartialBatch"];
const NOTIFY_OPTIONS: &[&str] = &["NoNotification", "MailOnFailure", "MailOnCompletion"];

fn bad(message: &str) -> Response {
    pbi_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// The canonical (PascalCase) spelling of an enum value; the service is case-insensitive.
fn enum_value(value: &Value, allowed: &[&str], field: &str) -> Result<String, Response> {
    value
        .as_str()
        .and_then(|s| allowed.iter().find(|a| a.eq_ignore_ascii_case(s)))
        .map(|s| s.to_string())
        .ok_or_else(|| bad(&format!("Invalid value for '{field}': {value}")))
}

/// `hh:mm:ss`, hours below 24 (the documented regex).
fn valid_timeout(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return false;
    };
    let num = |p: &str, max: u32, width: &[usize]| {
        width.contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|v| v <= max)
    };
    num(h, 23, &[1, 2]) && num(m, 59, &[2]) && num(s, 59, &[2])
}

/// Reads the body: `Ok(None)` for a standard refresh, `Ok(Some(..))` for an enhanced one.
/// A mail notify option from an app-only caller is refused as the service refuses it.
fn classify(
    body: Option<Map<String, Value>>,
    rules: &Rules,
    principal: Principal,
) -> Result<Option<EnhancedRequest>, Response> {
    let Some(body) = body else {
        return Ok(None);
    };
    if rules.holds(Rule::RequestSchema)
        && let Err(problem) =
            strict::check_shape(&Value::Object(body.clone()), &DATASET_REFRESH_REQUEST)
    {
        return Err(bad(&problem));
    }
    let mut notify = false;
    let mut enhanced = false;
    let mut request = EnhancedRequest {
        refresh_type: "Automatic".into(),
        commit_mode: "Transactional".into(),
        objects: Vec::new(),
    };
    let mut apply_policy = true;
    for (key, value) in &body {
        match key.as_str() {
            "notifyOption" => {
                let option = enum_value(value, NOTIFY_OPTIONS, key)?;
                if option != "NoNotification"
                    && rules.holds(Rule::AppOnlyNotify)
                    && strict::app_only(principal)
                {
                    return Err(strict::app_only_notify(&option));
                }
                notify = true;
            }
            "type" => {
                request.refresh_type = enum_value(value, REFRESH_TYPES, key)?;
                enhanced = true;
            }
            "commitMode" => {
                request.commit_mode = enum_value(value, COMMIT_MODES, key)?;
                enhanced = true;
            }
            "maxParallelism" | "retryCount" => {
                if value.as_u64().is_none() {
                    return Err(bad(&format!("Invalid value for '{key}': {value}")));
                }
                enhanced = true;
            }
            "applyRefreshPolicy" => {
                apply_policy = value
                    .as_bool()
                    .ok_or_else(|| bad(&format!("Invalid value for '{key}': {value}")))?;
                enhanced = true;
            }
            "effectiveDate" => {
                if !value.is_string() {
                    return Err(bad(&format!("Invalid value for '{key}': {value}")));
                }
                enhanced = true;
            }
            "timeout" => {
                if !value.as_str().is_some_and(valid_timeout) {
                    return Err(bad(&format!(
                        "Invalid value for 'timeout': {value} (expected hh:mm:ss)"
                    )));
                }
                enhanced = true;
            }
            "objects" => {
                let Some(list) = value.as_array() else {
                    return Err(bad("Invalid value for 'objects': expected an array"));
                };
                for o in list {
                    let table = o.get("table").and_then(Value::as_str);
                    let partition = o.get("partition");
                    let extra = o
                        .as_object()
                        .is_some_and(|m| m.keys().any(|k| k != "table" && k != "partition"));
                    match (table, partition) {
                        (Some(t), None) if !extra => request.objects.push((t.to_string(), None)),
                        (Some(t), Some(Value::String(p))) if !extra => {
                            request.objects.push((t.to_string(), Some(p.clone())))
                        }
                        _ => {
                            return Err(bad(
                                "Invalid value for 'objects': each object needs 'table' and may have 'partition'",
                            ));
                        }
                    }
                }
                enhanced = true;
            }
            other if rules.holds(Rule::RequestSchema) => {
                return Err(bad(&format!(
                    "The request has an unknown property '{other}'"
                )));
            }
            _ => {}
        }
    }
    if notify && enhanced {
        return Err(bad(
            "'notifyOption' is not applicable to an enhanced refresh: omit it when any other refresh parameter is set",
        ));
    }
    if request.commit_mode == "PartialBatch"
        && apply_policy
        && body.contains_key("applyRefreshPolicy")
    {
        return Err(bad(
            "'applyRefreshPolicy' must be false when 'commitMode' is 'PartialBatch'",
        ));
    }
    Ok(enhanced.then_some(request))
}

/// `POST .../datasets/{d}/refreshes`.
pub(super) async fn trigger(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    let parsed = match parse_json_body(&body) {
        Ok(b) => b,
        Err(message) => return bad(&message),
    };
    let enhanced = match classify(parsed, &sim.cfg.rules, principal) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let mut world = sim.lock();
    let (ws, item) = match item_index(&world, &group, &dataset, is_dataset) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if matches!(
        world.items[item].kind,
        crate::sim::state::ItemKind::Dataset {
            refreshable: false,
            ..
        }
    ) {
        return bad(
            "Refresh is not supported for this dataset: it uses DirectQuery or a live connection (isRefreshable is false)",
        );
    }
    if enhanced.is_some() && world.workspaces[ws].shared_capacity {
        return bad(
            "Enhanced refresh is only supported on Premium, Premium Per User, Embedded or Fabric capacity",
        );
    }
    let now = sim.clock.now();
    if world.active_run(item, now).is_some() {
        return bad(
            "Invalid dataset refresh request. Another refresh request is already executing",
        );
    }
    let is_enhanced = enhanced.is_some();
    let kind = RunKind::Refresh {
        origin: if is_enhanced {
            RefreshOrigin::ViaEnhancedApi
        } else {
            RefreshOrigin::ViaApi
        },
        enhanced,
    };
    let run = world.trigger(item, kind, &sim.clock);
    let mut response = empty(StatusCode::ACCEPTED);
    if is_enhanced {
        // A dropped request still answers like an accepted one; its id leads nowhere.
        let id = run
            .map(|r| world.runs[r].id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        set_header(&mut response, "x-ms-request-id", &id);
        set_header(
            &mut response,
            "location",
            &format!(
                "{}/v1.0/myorg/groups/{}/datasets/{}/refreshes/{id}",
                sim.cfg.base_url, world.workspaces[ws].id, world.items[item].id
            ),
        );
    }
    response
}

/// `status` of a refresh in history (`Unknown` while running) and in details.
fn status_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Queued | Phase::Running => "Unknown",
        Phase::Succeeded | Phase::Deduped => "Completed",
        Phase::Failed { .. } | Phase::TimedOut | Phase::Busy => "Failed",
        Phase::Cancelled => "Cancelled",
    }
}

fn extended_status(phase: &Phase) -> &'static str {
    match phase {
        Phase::Queued => "NotStarted",
        Phase::Running => "InProgress",
        Phase::Succeeded | Phase::Deduped => "Completed",
        Phase::Failed { .. } | Phase::Busy => "Failed",
        Phase::TimedOut => "TimedOut",
        Phase::Cancelled => "Cancelled",
    }
}

/// `serviceExceptionJson`: a JSON document inside a string (pitfall 6).
fn service_exception(phase: &Phase) -> Option<String> {
    let (code, message) = match phase {
        Phase::Failed { code, message } => (code.as_str(), message.as_str()),
        Phase::TimedOut => (
            "RefreshTimedOut",
            "The refresh exceeded its time limit. (simulated)",
        ),
        Phase::Busy => ("CapacityNotAvailable", "The capacity is busy. (simulated)"),
        _ => return None,
    };
    Some(json!({"errorCode": code, "errorDescription": message}).to_string())
}

fn history_entry(sim: &Sim, run: &Run, now: tokio::time::Instant) -> Value {
    let phase = run.phase(now);
    let RunKind::Refresh { origin, enhanced } = &run.kind else {
        return Value::Null;
    };
    let start = pbi_time(sim.clock.wall(run.created));
    let end = run.ended_at(now).map(|t| pbi_time(sim.clock.wall(t)));
    let exception = service_exception(&phase);
    let mut attempt = json!({"attemptId": 1, "startTime": start, "type": "Data"});
    let mut entry = json!({
        "requestId": run.id,
        "id": run.history_id,
        "refreshType": origin.wire(),
        "startTime": start,
        "status": status_word(&phase),
    });
    if let Some(end) = end {
        entry["endTime"] = json!(end);
        attempt["endTime"] = json!(end);
    }
    if enhanced.is_some() {
        entry["extendedStatus"] = json!(extended_status(&phase));
    }
    if let Some(e) = exception {
        entry["serviceExceptionJson"] = json!(e);
        attempt["serviceExceptionJson"] = json!(e);
    }
    entry["refreshAttempts"] = json!([attempt]);
    entry
}

/// `GET .../datasets/{d}/refreshes?$top=N`: newest first; entries appear after the lag.
pub(super) async fn history(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let top = match int_param(&q, "$top") {
        Ok(t) => t.unwrap_or(60),
        Err(r) => return r,
    };
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &dataset, is_dataset) {
        Ok(x) => x,
        Err(r) => return r,
    };
    world.count(item, |c| c.polls += 1);
    let now = sim.clock.now();
    let value: Vec<Value> = world
        .runs_of(item)
        .filter(|(_, r)| r.visible(now))
        .take(top)
        .map(|(_, r)| history_entry(&sim, r, now))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/myorg/groups/{group}/$metadata#refreshes", sim.cfg.base_url),
            "value": value,
        }),
    )
}

/// The enhanced run named by the path, or a 404.
fn enhanced_run(
    world: &crate::sim::state::World,
    item: usize,
    refresh: &str,
) -> Result<usize, Response> {
    world
        .run_by_id(refresh)
        .filter(|&r| {
            world.runs[r].item == item
                && matches!(
                    world.runs[r].kind,
                    RunKind::Refresh {
                        enhanced: Some(_),
                        ..
                    }
                )
        })
        .ok_or_else(pbi_not_found)
}

/// `GET .../refreshes/{requestId}`: 202 while running, 200 when done, both with a body.
pub(super) async fn details(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset, refresh)): Path<(String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &dataset, is_dataset) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run_index = match enhanced_run(&world, item, &refresh) {
        Ok(r) => r,
        Err(r) => return r,
    };
    world.count(item, |c| c.polls += 1);
    let now = sim.clock.now();
    let run = &world.runs[run_index];
    let phase = run.phase(now);
    let RunKind::Refresh {
        enhanced: Some(request),
        ..
    } = &run.kind
    else {
        return pbi_not_found();
    };
    let tables: Vec<(String, Option<String>)> = if !request.objects.is_empty() {
        request.objects.clone()
    } else {
        match &world.items[item].kind {
            crate::sim::state::ItemKind::Dataset { tables, .. } if !tables.is_empty() => {
                tables.iter().map(|t| (t.clone(), None)).collect()
            }
            _ => vec![("Table".to_string(), None)],
        }
    };
    let object_status = match &phase {
        Phase::Queued => "NotStarted",
        Phase::Running => "InProgress",
        other => extended_status(other),
    };
    let objects: Vec<Value> = tables
        .iter()
        .map(|(t, p)| {
            let mut o = json!({"table": t, "status": object_status});
            o["partition"] = json!(p.clone().unwrap_or_else(|| t.clone()));
            o
        })
        .collect();
    let messages: Vec<Value> = match &phase {
        Phase::Failed { code, message } => {
            vec![json!({"code": code, "message": message, "type": "Error"})]
        }
        Phase::TimedOut => vec![json!({
            "code": "0xC11C0020",
            "message": "The refresh exceeded its time limit. (simulated)",
            "type": "Error"
        })],
        _ => Vec::new(),
    };
    let start = pbi_time(sim.clock.wall(run.created));
    let mut attempt = json!({"attemptId": 1, "startTime": start, "type": "Data"});
    let mut body = json!({
        "startTime": start,
        "type": request.refresh_type,
        "commitMode": request.commit_mode,
        "status": status_word(&phase),
        "extendedStatus": extended_status(&phase),
        "currentRefreshType": request.refresh_type,
        "numberOfAttempts": 1,
        "objects": objects,
        "messages": messages,
    });
    if let Some(end) = run.ended_at(now) {
        let end = pbi_time(sim.clock.wall(end));
        body["endTime"] = json!(end);
        attempt["endTime"] = json!(end);
    }
    body["refreshAttempts"] = json!([attempt]);
    let status = if phase.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    json_response(status, body)
}

/// `DELETE .../refreshes/{requestId}`: 200 for a running enhanced refresh.
pub(super) async fn cancel(
    State(sim): State<Arc<Sim>>,
    Path((group, dataset, refresh)): Path<(String, String, String)>,
) -> Response {
    let mut world = sim.lock();
    let (_, item) = match item_index(&world, &group, &dataset, is_dataset) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(run_index) = world
        .run_by_id(&refresh)
        .filter(|&r| world.runs[r].item == item)
    else {
        return pbi_not_found();
    };
    world.count(item, |c| c.cancels += 1);
    if !matches!(
        world.runs[run_index].kind,
        RunKind::Refresh {
            enhanced: Some(_),
            ..
        }
    ) {
        return bad("Only refreshes triggered through the enhanced refresh API can be cancelled");
    }
    let now = sim.clock.now();
    if world.runs[run_index].phase(now).is_terminal() {
        return bad("The refresh has already finished and cannot be cancelled");
    }
    world.runs[run_index].cancelled = Some(now);
    empty(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_the_documented_regex() {
        assert!(valid_timeout("05:00:00"));
        assert!(valid_timeout("1:30:00"));
        assert!(valid_timeout("23:59:59"));
        assert!(!valid_timeout("24:00:00"));
        assert!(!valid_timeout("1:3:00"));
        assert!(!valid_timeout("01:00"));
    }

    #[test]
    fn the_body_decides_standard_or_enhanced() {
        let obj = |v: Value| v.as_object().cloned();
        let strict = Rules::default();
        let classify = |b| classify(b, &strict, Principal::User);
        assert!(classify(None).unwrap().is_none());
        assert!(classify(obj(json!({}))).unwrap().is_none());
        assert!(
            classify(obj(json!({"notifyOption": "NoNotification"})))
                .unwrap()
                .is_none()
        );
        let e = classify(obj(json!({"type": "full", "commitMode": "transactional"})))
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.refresh_type.as_str(), e.commit_mode.as_str()),
            ("Full", "Transactional")
        );
        assert!(
            classify(obj(
                json!({"notifyOption": "NoNotification", "type": "Full"})
            ))
            .is_err()
        );
        assert!(classify(obj(json!({"commit_mode": "Transactional"}))).is_err());
        assert!(classify(obj(json!({"type": "Add"}))).is_err());
        assert!(classify(obj(json!({"timeout": "25:00:00"}))).is_err());
    }
}
