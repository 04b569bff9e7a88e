//! The webhook sink: `POST /hooks/{name}` records the call (see `/_sim/requests`) and
//! answers like a Teams incoming webhook.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::flow::{flow_error, nth_status};
use super::http::Sim;
use super::introspect::resource_key;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/hooks/{name}", post(hook))
}

/// `POST /hooks/{name}`: records the call (see `/_sim/requests`) and answers like Teams.
async fn hook(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> Response {
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
    let status = nth_status(&world.hooks[index].statuses, n, 200);
    let mut response = Response::new(axum::body::Body::from(if status.is_success() {
        "1"
    } else {
        "simulated failure"
    }));
    *response.status_mut() = status;
    response
}
