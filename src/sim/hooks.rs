//! The webhook sink: `POST /hooks/{name}` records the call (see `/_sim/requests`) and
//! answers like the endpoint it stands for (`hooks.<name>.kind`: any, Teams Workflows, Slack),
//! refusing a malformed Teams card or Slack blocks (see [`super::cards`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::cards::{Expects, Refusal, check};
use super::flow::{flow_error, nth_status};
use super::http::Sim;
use super::introspect::resource_key;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/hooks/{name}", post(hook))
}

/// `POST /hooks/{name}`: records the call (see `/_sim/requests`), checks a Teams or Slack
/// message's shape (see [`super::cards`]) and answers like the endpoint the sink stands for.
async fn hook(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut world = sim.lock();
    let Some(index) = world.hooks.iter().position(|h| h.name == name) else {
        return flow_error(
            StatusCode::NOT_FOUND,
            "HookNotFound",
            &format!("No webhook named '{name}' (declare it in the profile)."),
        );
    };
    let n = world.hooks[index].calls;
    world.hooks[index].calls += 1;
    world.count_key(&resource_key("hook", "", &name), |c| c.triggers += 1);
    let expects = world.hooks[index].expects;
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    match check(expects, parsed.as_ref()) {
        Ok(()) => {}
        Err(Refusal::Teams(why)) => {
            return flow_error(
                StatusCode::BAD_REQUEST,
                "TriggerInputSchemaMismatch",
                &format!(
                    "The input body for trigger 'manual' of type 'Request' did not match its schema definition. Error details: '{why}'."
                ),
            );
        }
        Err(Refusal::Slack(code)) => return text(StatusCode::BAD_REQUEST, code),
    }
    let status = nth_status(&world.hooks[index].statuses, n, 200);
    if !status.is_success() {
        return text(status, "simulated failure");
    }
    // A Workflows trigger accepts with 202 and no body, Slack with `ok`, a generic (and the
    // retired Office 365 connector) endpoint with `1`.
    match expects {
        Expects::Teams if status == StatusCode::OK => text(StatusCode::ACCEPTED, ""),
        Expects::Slack => text(status, "ok"),
        _ => text(status, "1"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response
}
