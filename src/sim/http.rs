//! The HTTP side shared by every API: the server loop, request recording, injected faults
//! (latency, dropped connections, 503, 429), bearer checks and error bodies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::introspect::{Counters, RecordedRequest};
use super::state::{Audience, Clock, Config, Principal, World};

/// The simulator shared by every handler.
pub(crate) struct Sim {
    pub cfg: Config,
    pub clock: Clock,
    /// All mutable state; held only for short, non-async sections.
    world: Mutex<World>,
    /// Targeted faults armed by tests, and the journal of every exchange (faults.rs).
    pub faults: super::faults::Faults,
}

impl Sim {
    pub(super) fn new(cfg: Config, clock: Clock, world: World) -> Sim {
        Sim {
            cfg,
            clock,
            world: Mutex::new(world),
            faults: super::faults::Faults::default(),
        }
    }

    /// Milliseconds of simulated time since the simulator started.
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.clock.start())
            .as_millis() as u64
    }

    /// The state; a panic in another handler cannot poison it for good.
    pub(super) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    pub(super) fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }
}

/// Which API family a route belongs to: decides error shapes and token audiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    PowerBi,
    Fabric,
    /// Azure Resource Manager (capacities).
    Arm,
}

/// Marks a response whose connection must be closed without answering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// Serves `router` on `listener` until `stop` is cancelled. Uses hyper directly (rather than
/// `axum::serve`) so a simulated connection drop can close the socket without a response.
pub(crate) async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let router = router.clone();
                        async move {
                            let Ok(response) = router.oneshot(req.map(Body::new)).await;
                            if response.extensions().get::<DropConnection>().is_some() {
                                Err(std::io::Error::other("simulated connection drop"))
                            } else {
                                Ok(response)
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Binds the listener (separate so `start` can report a bind error before serving).
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Records every request except introspection, with its body.
pub(crate) async fn record(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_sim/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let recorded = RecordedRequest {
        time: sim.clock.wall(sim.clock.now()).to_rfc3339(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    {
        let mut world = sim.lock();
        world.counters.requests += 1;
        world.record(recorded, sim.cfg.max_recorded_requests);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// What the fault rules decided for one call.
enum Fault {
    None,
    Drop,
    Unavailable,
    Throttled(u64),
}

/// Latency, faults and the bearer check, in front of every Power BI / Fabric route.
pub(crate) async fn guard(
    State((sim, api)): State<(Arc<Sim>, Api)>,
    mut req: Request,
    next: Next,
) -> Response {
    let (latency, fault) = {
        let mut world = sim.lock();
        let unit: f64 = world.rng.random();
        let latency = sim.cfg.latency.pick(unit);
        world.api_calls += 1;
        let calls = world.api_calls;
        let drop_draw: f64 = world.rng.random();
        let unavailable_draw: f64 = world.rng.random();
        let throttle_draw: f64 = world.rng.random();
        let fault = if drop_draw < sim.cfg.connection_drop {
            world.counters.dropped_connections += 1;
            Fault::Drop
        } else if unavailable_draw < sim.cfg.transient_503 {
            world.counters.unavailable += 1;
            Fault::Unavailable
        } else if let Some(t) = &sim.cfg.throttle
            && (t.every.is_some_and(|n| n > 0 && calls % n == 0)
                || t.fraction.is_some_and(|f| throttle_draw < f))
        {
            world.counters.throttled += 1;
            Fault::Throttled(t.retry_after)
        } else {
            Fault::None
        };
        (latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Fault::Drop => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            return response;
        }
        Fault::Unavailable => {
            let mut response = match api {
                Api::PowerBi => pbi_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please try again later. (simulated)",
                ),
                Api::Fabric => fabric_error_retriable(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please try again later. (simulated)",
                    true,
                ),
                Api::Arm => arm_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please try again later. (simulated)",
                ),
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Fault::Throttled(secs) => return throttled(api, secs),
        Fault::None => {}
    }
    let principal = match check_bearer(&sim, api, req.headers()) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    req.extensions_mut().insert(principal);
    // The body was buffered by `record`, so reading it again here costs a copy at most.
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    if let Err(response) =
        super::strict::check_content_type(&sim.cfg.rules, api, &parts.headers, &bytes)
    {
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The 429 each API sends: Power BI's bare `{"message": ...}`, Fabric's ErrorResponse.
fn throttled(api: Api, secs: u64) -> Response {
    let mut response = match api {
        Api::PowerBi => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "message": format!(
                    "You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in {secs} seconds."
                )
            }),
        ),
        Api::Fabric => fabric_error_retriable(
            StatusCode::TOO_MANY_REQUESTS,
            "RequestBlocked",
            &format!("Request is blocked by the upstream service until: {secs} seconds from now"),
            true,
        ),
        Api::Arm => arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("The request was throttled. Please retry after {secs} seconds. (simulated)"),
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Checks `Authorization: Bearer`; returns the caller's kind or the API's error answer.
fn check_bearer(sim: &Sim, api: Api, headers: &HeaderMap) -> Result<Principal, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let unauthorized = || match api {
        Api::PowerBi => {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": {
                    "code": "PowerBINotAuthorizedException",
                    "pbi.error": {"code": "PowerBINotAuthorizedException", "parameters": {}, "details": [], "exceptionCulprit": 1}
                }}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, error=\"invalid_token\"",
                ),
            );
            r
        }
        Api::Fabric => fabric_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The caller is not authenticated to access this resource",
        ),
        Api::Arm => {
            let mut r = arm_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\"",
                ),
            );
            r
        }
    };
    let Some(token) = token else {
        return Err(unauthorized());
    };
    let (info, any_audience) = {
        let world = sim.lock();
        let Some(info) = world.tokens.get(token).cloned() else {
            return Err(unauthorized());
        };
        (info, world.any_audience.contains(token))
    };
    if sim.clock.now() >= info.expires {
        return Err(match api {
            Api::PowerBi => pbi_error(
                StatusCode::FORBIDDEN,
                "TokenExpired",
                "Access token has expired, resubmit with a new access token",
            ),
            Api::Fabric => fabric_error(
                StatusCode::UNAUTHORIZED,
                "TokenExpired",
                "Access token has expired, resubmit with a new access token",
            ),
            Api::Arm => arm_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ),
        });
    }
    let wanted = match api {
        Api::PowerBi => Audience::PowerBi,
        Api::Fabric => Audience::Fabric,
        Api::Arm => Audience::Management,
    };
    if sim.cfg.strict_audience && info.audience != wanted && !any_audience {
        return Err(unauthorized());
    }
    Ok(info.principal)
}

/// Adds the headers every Power BI answer carries.
pub(crate) async fn pbi_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    add_pbi_headers(&mut response);
    response
}

/// `RequestId` (unless the handler set one), `request-redirected`, `home-cluster-uri`.
pub(crate) fn add_pbi_headers(response: &mut Response) {
    let headers = response.headers_mut();
    if !headers.contains_key("requestid")
        && let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        headers.insert("requestid", v);
    }
    headers.insert("request-redirected", HeaderValue::from_static("true"));
    headers.insert(
        "home-cluster-uri",
        HeaderValue::from_static("https://wabi-west-europe-redirect.analysis.windows.net/"),
    );
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An empty answer.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Power BI's simple error envelope `{"error":{"code","message"}}`.
pub(crate) fn pbi_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

/// Power BI's "not found" envelope with `pbi.error`.
pub(crate) fn pbi_not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {
            "code": "PowerBIEntityNotFound",
            "pbi.error": {"code": "PowerBIEntityNotFound", "parameters": {}, "details": [], "exceptionCulprit": 1}
        }}),
    )
}

/// Fabric's `ErrorResponse`.
pub(crate) fn fabric_error(status: StatusCode, code: &str, message: &str) -> Response {
    fabric_error_retriable(status, code, message, false)
}

fn fabric_error_retriable(
    status: StatusCode,
    code: &str,
    message: &str,
    retriable: bool,
) -> Response {
    let mut body = json!({
        "errorCode": code,
        "message": message,
        "requestId": uuid::Uuid::new_v4().to_string(),
    });
    if retriable {
        body["isRetriable"] = json!(true);
    }
    json_response(status, body)
}

/// Azure Resource Manager's `ErrorResponse` (`{"error": {"code", "message"}}`).
pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = json_response(status, json!({"error": {"code": code, "message": message}}));
    set_header(&mut r, "x-ms-request-id", &uuid::Uuid::new_v4().to_string());
    r
}

/// Sets a header from a string, ignoring values a header cannot hold.
pub(crate) fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// Parses a request body as a JSON object; `Ok(None)` for an empty body.
pub(crate) fn parse_json_body(
    body: &Bytes,
) -> Result<Option<serde_json::Map<String, Value>>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err("the request body must be a JSON object".to_string()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}
