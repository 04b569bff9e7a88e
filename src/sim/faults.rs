//! Targeted faults and the exchange journal, for tests that judge a client by what the
//! service saw (tests/it/prop_protocol.rs).
//!
//! The profile's fault knobs (`throttle`, `transient_503`, `connection_drop`) hit calls at
//! random. A model-based test needs the opposite: "the 2nd poll of this refresh gets a 429 with
//! `Retry-After: 700`", "the trigger acts, then its answer is lost", "hold the trigger here
//! while the test kills the client". A [`FaultRule`] names the Nth request matching a method
//! and a path pattern and the [`Fault`] it gets. Rules are armed at run time
//! ([`super::SimServer::arm_fault`]), each fires once, and every request is journaled with
//! what happened to it: the fault, whether the service acted, the status answered, and the
//! runs it started ([`super::SimServer::exchanges`]); [`super::SimServer::runs`] tells how each
//! run ended. Nothing here changes how the APIs behave when no rule is armed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::http::{DropConnection, Sim, json_response};
use super::state::{Phase, RefreshOrigin, Run, RunKind};

/// The longest a [`Fault::HoldBefore`] / [`Fault::HoldAfter`] keeps an answer back when the
/// test never releases it (a safety bound: a broken test must not hang the simulator).
const HOLD_LIMIT: Duration = Duration::from_secs(120);

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 429 with this `Retry-After` (seconds); the service does not act.
    Throttle { retry_after: u64 },
    /// This 5xx status; the service does not act.
    ErrorBefore { status: u16 },
    /// The service acts, then answers this 5xx status instead of its own answer.
    ErrorAfter { status: u16 },
    /// The connection is closed before the service acts.
    DropBefore,
    /// The service acts, then the connection is closed without an answer (the answer is lost).
    DropAfter,
    /// The request waits before the service acts, until [`Faults::release`] (a test kills the
    /// client meanwhile). Released as abandoned, the service never acts and the connection
    /// is closed.
    HoldBefore,
    /// The service acts, then the answer waits until [`Faults::release`]; released as
    /// abandoned, the connection is closed without an answer.
    HoldAfter,
}

impl Fault {
    fn acts_first(&self) -> bool {
        matches!(
            self,
            Fault::ErrorAfter { .. } | Fault::DropAfter | Fault::HoldAfter
        )
    }
}

/// "The `nth` request (counting from when the rule was armed) whose method is `method` and
/// whose path matches `path` gets `fault`." `path` is a pattern in which `*` stands for any
/// run of characters (the query string is not matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    pub method: String,
    pub path: String,
    /// 1 for the first matching request.
    pub nth: u32,
    pub fault: Fault,
}

/// One request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Milliseconds since the simulator started, when the request arrived.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    /// The injected fault, if a rule fired.
    pub fault: Option<Fault>,
    /// Whether the service's handler ran (false when a fault answered in its place).
    pub acted: bool,
    /// When the handler ran (milliseconds since the simulator started), if it did.
    pub acted_ms: Option<u64>,
    /// The status the client received; `None` when the connection was closed without one,
    /// or while the answer is still pending.
    pub status: Option<u16>,
    /// Whether the exchange is over (answered or dropped).
    pub done: bool,
    /// Ids of the runs created while the handler ran whose item this path names (or, for a
    /// flow trigger, the dataflow refresh the flow started).
    pub runs_started: Vec<String>,
}

/// How a run stands, as the service would report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// The resource key (as in [`super::resource_key`]).
    pub resource: String,
    /// The item's GUID.
    pub item_id: String,
    /// `refresh`, `transaction`, `export` or `job`.
    pub kind: String,
    /// Started by the service itself (a schedule), not by a call: a run already going when
    /// the simulator started.
    pub scheduled: bool,
    /// Milliseconds since the simulator started, when the run was created.
    pub created_ms: u64,
    /// When it ended (now or earlier), if it has.
    pub ended_ms: Option<u64>,
    /// `Queued`, `Running`, `Succeeded`, `Failed`, `TimedOut`, `Busy`, `Cancelled`, `Deduped`.
    pub state: String,
    /// Whether a cancel ended it.
    pub cancelled: bool,
}

struct Armed {
    rule: FaultRule,
    seen: u32,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Armed>,
    journal: Vec<Exchange>,
    /// Bumped by [`Faults::release`]; a hold waits for it to change.
    releases: u64,
    /// Whether the last release abandoned the held requests.
    abandoned: bool,
}

/// The armed rules and the journal (one per simulator).
#[derive(Default)]
pub(crate) struct Faults {
    inner: Mutex<Inner>,
    released: Notify,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn arm(&self, rule: FaultRule) {
        self.lock().rules.push(Armed { rule, seen: 0 });
    }

    /// Forgets every rule that has not fired.
    pub(super) fn disarm_all(&self) {
        self.lock().rules.clear();
    }

    /// Ends every hold: `abandoned` closes the held connections without the service acting
    /// (for a hold before acting) or without an answer (after).
    pub(super) fn release(&self, abandoned: bool) {
        {
            let mut inner = self.lock();
            inner.releases += 1;
            inner.abandoned = abandoned;
        }
        self.released.notify_waiters();
    }

    pub(super) fn journal(&self) -> Vec<Exchange> {
        self.lock().journal.clone()
    }

    /// Journals a request and picks the fault of the first rule it completes (that rule
    /// fires and is removed).
    fn admit(&self, at_ms: u64, method: &str, path: &str) -> (u64, Option<Fault>, u64) {
        let mut inner = self.lock();
        let mut fired = None;
        for (index, armed) in inner.rules.iter_mut().enumerate() {
            if armed.rule.method.eq_ignore_ascii_case(method) && glob_match(&armed.rule.path, path)
            {
                armed.seen += 1;
                if armed.seen >= armed.rule.nth.max(1) {
                    fired = Some(index);
                    break;
                }
            }
        }
        let fault = fired.map(|index| inner.rules.remove(index).rule.fault);
        let seq = inner.journal.len() as u64;
        inner.journal.push(Exchange {
            seq,
            at_ms,
            method: method.to_string(),
            path: path.to_string(),
            fault: fault.clone(),
            acted: false,
            acted_ms: None,
            status: None,
            done: false,
            runs_started: Vec::new(),
        });
        (seq, fault, inner.releases)
    }

    fn update(&self, seq: u64, f: impl FnOnce(&mut Exchange)) {
        if let Some(e) = self.lock().journal.get_mut(seq as usize) {
            f(e);
        }
    }

    /// Waits for the next [`Faults::release`] after `seen`; true when it abandoned the hold.
    async fn hold(&self, seen: u64) -> bool {
        let wait = async {
            loop {
                let notified = self.released.notified();
                {
                    let inner = self.lock();
                    if inner.releases != seen {
                        return inner.abandoned;
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(HOLD_LIMIT, wait)
            .await
            .unwrap_or(false)
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn dropped() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(DropConnection);
    response
}

fn error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        serde_json::json!({"error": {"code": "InternalServerError", "message": "An internal error occurred. (simulated fault)"}}),
    )
}

/// The middleware in front of every route (inside the request recorder).
pub(crate) async fn inject(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sim/") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let (seq, fault, releases) = sim.faults.admit(sim.elapsed_ms(), &method, &path);
    let answer = |response: Response, acted: bool| {
        let status = (response.extensions().get::<DropConnection>().is_none())
            .then(|| response.status().as_u16());
        sim.faults.update(seq, |e| {
            e.acted |= acted;
            e.status = status;
            e.done = true;
        });
        response
    };
    match &fault {
        Some(Fault::Throttle { retry_after }) => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"message": format!("You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in {retry_after} seconds. (simulated fault)")}),
            );
            super::http::set_header(&mut response, "retry-after", &retry_after.to_string());
            return answer(response, false);
        }
        Some(Fault::ErrorBefore { status }) => return answer(error(*status), false),
        Some(Fault::DropBefore) => return answer(dropped(), false),
        _ => {}
    }
    if matches!(fault, Some(Fault::HoldBefore)) && sim.faults.hold(releases).await {
        return answer(dropped(), false);
    }
    let before = sim.lock().runs.len();
    let acted_ms = sim.elapsed_ms();
    let response = next.run(req).await;
    let started = {
        let world = sim.lock();
        let is_flow = path.starts_with("/workflows/");
        world.runs[before.min(world.runs.len())..]
            .iter()
            .filter(|r| is_flow || path.contains(&world.items[r.item].id.to_string()))
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    sim.faults.update(seq, |e| {
        e.acted = true;
        e.acted_ms = Some(acted_ms);
        e.runs_started = started;
    });
    match &fault {
        Some(f) if f.acts_first() => match f {
            Fault::ErrorAfter { status } => answer(error(*status), true),
            Fault::DropAfter => answer(dropped(), true),
            _ => {
                if sim.faults.hold(releases).await {
                    answer(dropped(), true)
                } else {
                    answer(response, true)
                }
            }
        },
        _ => answer(response, true),
    }
}

/// Every run with how it stands now.
pub(crate) fn runs(sim: &Sim) -> Vec<RunRecord> {
    let world = sim.lock();
    let now = sim.clock.now();
    let start = sim.clock.start();
    let ms = |t: tokio::time::Instant| t.saturating_duration_since(start).as_millis() as u64;
    world
        .runs
        .iter()
        .map(|r: &Run| {
            let item = &world.items[r.item];
            let (kind, scheduled) = match &r.kind {
                RunKind::Refresh { origin, .. } => ("refresh", *origin == RefreshOrigin::Scheduled),
                RunKind::Transaction { scheduled } => ("transaction", *scheduled),
                RunKind::Export { .. } => ("export", false),
                RunKind::Job { scheduled, .. } => ("job", *scheduled),
            };
            let phase = r.phase(now);
            let state = match &phase {
                Phase::Queued => "Queued",
                Phase::Running => "Running",
                Phase::Succeeded => "Succeeded",
                Phase::Failed { .. } => "Failed",
                Phase::TimedOut => "TimedOut",
                Phase::Busy => "Busy",
                Phase::Cancelled => "Cancelled",
                Phase::Deduped => "Deduped",
            };
            RunRecord {
                id: r.id.clone(),
                resource: item.counter_key.clone(),
                item_id: item.id.to_string(),
                kind: kind.to_string(),
                scheduled,
                created_ms: ms(r.created),
                ended_ms: r.ended_at(now).map(ms),
                state: state.to_string(),
                cancelled: phase == Phase::Cancelled,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_runs_of_characters() {
        assert!(glob_match(
            "*/datasets/abc/refreshes",
            "/v1.0/myorg/groups/g/datasets/abc/refreshes"
        ));
        assert!(glob_match(
            "*/datasets/abc/refreshes*",
            "/x/datasets/abc/refreshes/r1"
        ));
        assert!(!glob_match(
            "*/datasets/abc/refreshes",
            "/x/datasets/abc/refreshes/r1"
        ));
        assert!(glob_match(
            "/workflows/f1/*",
            "/workflows/f1/triggers/manual/paths/invoke"
        ));
        assert!(glob_match(
            "*/items/i/jobs/instances*",
            "/v1/workspaces/w/items/i/jobs/instances"
        ));
        assert!(!glob_match("*/items/i/*/x", "/v1/items/j/a/x"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }
}
