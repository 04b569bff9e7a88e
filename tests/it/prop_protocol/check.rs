//! The judge: I1 to I4 (DESIGN.md "Exactly once, and true") checked from what the simulator
//! saw (every exchange, with its fault, status and the runs it started; every run and how it
//! ended) and what the run history says each step became. Nothing here looks inside the
//! program under test.

use std::fmt::Write as _;

use pbibatch::sim::{Exchange, Fault, RunRecord};
use serde_json::Value;

use super::scenario::{IfRunning, Kind};

/// How a process invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    Exited(Option<i32>),
    Killed,
    Terminated(Option<i32>),
}

/// One process invocation as the judge sees it.
#[derive(Debug, Clone)]
pub(super) struct Proc {
    pub resumed: bool,
    pub start_ms: u64,
    pub end_ms: u64,
    pub ended: Ended,
}

/// A step as the judge knows it: which requests start its work, and which item it watches.
#[derive(Debug, Clone)]
pub(super) struct StepView {
    pub id: String,
    pub kind: Kind,
    pub if_running: IfRunning,
    /// Method and path pattern of its trigger.
    pub trigger: (String, String),
    /// The GUID of the item whose runs are its runs.
    pub item_id: String,
    /// A path fragment every request of the step carries (item or flow id).
    pub marks: Vec<String>,
    /// A `capacity` step's capacity (its `item_id` and mark are the ARM path).
    pub capacity: Option<CapacityView>,
}

/// A capacity as the profile starts it, and what its step wants.
#[derive(Debug, Clone)]
pub(super) struct CapacityView {
    /// The ARM resource id (the path of its requests).
    pub path: String,
    pub start_active: bool,
    pub start_sku: String,
    /// The SKU a `scale` step sets.
    pub wanted_sku: String,
    /// How long every operation takes.
    pub transition_ms: u64,
    /// Every operation ends `Failed` (the capacity keeps its state).
    pub fails: bool,
}

/// Milliseconds either side of an operation's end within which the judge does not say
/// whether it had ended (the simulator's clock is finer than the log's milliseconds).
const CAPACITY_SLACK_MS: u64 = 3;

/// What a state-changing request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CapacityOp {
    Resume,
    Suspend,
    Scale,
}

/// The capacity replayed from the requests the service acted on, by the simulator's rules
/// (src/sim/arm.rs): one operation at a time, accepted only from a settled state that can
/// take it, its effect applied when it ends unless it fails.
struct CapacityReplay<'v> {
    view: &'v CapacityView,
    active: bool,
    sku: String,
    /// The running operation and when it ends.
    op: Option<(CapacityOp, u64)>,
}

impl<'v> CapacityReplay<'v> {
    fn new(view: &'v CapacityView) -> Self {
        CapacityReplay {
            view,
            active: view.start_active,
            sku: view.start_sku.clone(),
            op: None,
        }
    }

    fn settle(&mut self, t: u64) {
        if let Some((op, ends)) = self.op
            && t >= ends
        {
            self.op = None;
            if !self.view.fails {
                match op {
                    CapacityOp::Resume => self.active = true,
                    CapacityOp::Suspend => self.active = false,
                    CapacityOp::Scale => self.sku = self.view.wanted_sku.clone(),
                }
            }
        }
    }

    /// The request at `t`; whether the service started an operation for it.
    fn request(&mut self, op: CapacityOp, t: u64) -> bool {
        self.settle(t);
        let ready = self.op.is_none()
            && match op {
                CapacityOp::Resume => !self.active,
                CapacityOp::Suspend | CapacityOp::Scale => self.active,
            };
        if ready {
            self.op = Some((op, t + self.view.transition_ms));
        }
        ready
    }

    /// Whether the capacity is as wanted once the running operation ended at `ends`.
    fn wanted_after(&self, kind: Kind, ends: u64) -> bool {
        let mut later = CapacityReplay {
            view: self.view,
            active: self.active,
            sku: self.sku.clone(),
            op: self.op,
        };
        later.settle(ends);
        later.wanted(kind)
    }

    fn wanted(&self, kind: Kind) -> bool {
        self.op.is_none()
            && match kind {
                Kind::CapacityResume => self.active,
                Kind::CapacitySuspend => !self.active,
                _ => self.sku == self.view.wanted_sku,
            }
    }
}

/// A broken invariant, with what to show.
#[derive(Debug, Clone)]
pub(super) struct Violation {
    pub invariant: &'static str,
    pub step: String,
    pub what: String,
}

/// Everything the judge reads.
pub(super) struct Evidence<'a> {
    pub steps: &'a [StepView],
    pub exchanges: &'a [Exchange],
    pub runs: &'a [RunRecord],
    pub procs: &'a [Proc],
    /// Stored runs (`show RUN --format json` shape), each with the process that wrote it.
    pub stored: &'a [(usize, Value)],
    /// The simulator's start on the wall clock (Unix ms): maps the report's times onto it.
    pub wall_origin_ms: i64,
}

/// `*` matches any run of characters.
pub(super) fn glob(pattern: &str, text: &str) -> bool {
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

fn failed_state(state: &str) -> bool {
    matches!(state, "Failed" | "Cancelled" | "TimedOut" | "Busy")
}

fn alive_at(run: &RunRecord, t: u64) -> bool {
    run.state != "Deduped" && run.created_ms <= t && run.ended_ms.is_none_or(|end| end > t)
}

/// Whether the answer to an exchange was lost (the service acted, the client got no answer or
/// a 5xx in its place).
fn answer_lost(e: &Exchange) -> bool {
    e.acted
        && (matches!(
            e.fault,
            Some(Fault::DropAfter | Fault::ErrorAfter { .. } | Fault::HoldAfter)
        ) || e.status.is_none()
            || e.status.is_some_and(|s| s >= 500))
}

impl Evidence<'_> {
    /// A wall-clock time (RFC 3339) on the simulator's clock, in ms since it started.
    fn sim_ms(&self, wall: &str) -> Option<u64> {
        let t = chrono::DateTime::parse_from_rfc3339(wall).ok()?;
        let ms = (t.timestamp_millis() - self.wall_origin_ms).max(0);
        Some(ms as u64)
    }

    fn proc_of(&self, t: u64) -> Option<usize> {
        self.procs
            .iter()
            .position(|p| p.start_ms <= t && t <= p.end_ms)
    }

    fn label(&self, t: u64, base: &'static str) -> &'static str {
        match self.proc_of(t) {
            Some(p) if self.procs[p].resumed => "I4",
            _ => base,
        }
    }

    /// The triggers of a step the service acted on, in the order it acted.
    fn triggers(&self, step: &StepView) -> Vec<&Exchange> {
        let mut list: Vec<&Exchange> = self
            .exchanges
            .iter()
            .filter(|e| e.acted && e.method == step.trigger.0 && glob(&step.trigger.1, &e.path))
            .collect();
        list.sort_by_key(|e| e.acted_ms);
        list
    }

    fn runs_of(&self, step: &StepView) -> impl Iterator<Item = &RunRecord> {
        self.runs.iter().filter(move |r| r.item_id == step.item_id)
    }

    fn run(&self, id: &str) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// The runs of the step's item a trigger started.
    fn started_by<'e>(&'e self, step: &'e StepView, e: &'e Exchange) -> Vec<&'e RunRecord> {
        e.runs_started
            .iter()
            .filter_map(|id| self.run(id))
            .filter(|r| r.item_id == step.item_id)
            .collect()
    }

    /// The first status the step read about its item (a read that failed told it nothing).
    fn first_read(&self, step: &StepView) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| {
            e.method == "GET"
                && e.acted
                && e.status.is_some_and(|s| (200..300).contains(&s))
                && step.marks.iter().any(|m| e.path.contains(m.as_str()))
        })
    }

    /// The scheduled run the step took as its own under `if_running: adopt`: one alive when
    /// the step first asked the service about its item.
    fn adopted(&self, step: &StepView) -> Option<&RunRecord> {
        if step.if_running != IfRunning::Adopt {
            return None;
        }
        let first = self.first_read(step)?;
        self.runs_of(step)
            .find(|r| r.scheduled && alive_at(r, first.at_ms))
    }

    pub(super) fn check(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for step in self.steps {
            match &step.capacity {
                Some(view) => self.check_capacity(step, view, &mut out),
                None => self.check_step(step, &mut out),
            }
        }
        out
    }

    /// The state-changing requests (`POST .../resume`, `.../suspend`, `PATCH` of the
    /// capacity) the service acted on, in the order it acted.
    fn capacity_requests(&self, view: &CapacityView) -> Vec<(&Exchange, CapacityOp, u64)> {
        let mut list: Vec<(&Exchange, CapacityOp, u64)> = self
            .exchanges
            .iter()
            .filter(|e| e.acted)
            .filter_map(|e| {
                let op = match (e.method.as_str(), e.path.strip_prefix(view.path.as_str())?) {
                    ("POST", "/resume") => CapacityOp::Resume,
                    ("POST", "/suspend") => CapacityOp::Suspend,
                    ("PATCH", "") => CapacityOp::Scale,
                    _ => return None,
                };
                Some((e, op, e.acted_ms.unwrap_or(e.at_ms)))
            })
            .collect();
        list.sort_by_key(|(_, _, t)| *t);
        list
    }

    /// A `capacity` step. C1: no state-changing request while an earlier one's operation
    /// runs, nor once the capacity is as wanted (every attempt and resume reads it first,
    /// docs/capacity.md "Exactly once"). C2: `succeeded` only if the capacity was as wanted
    /// when the process that said so ended.
    fn check_capacity(&self, step: &StepView, view: &CapacityView, out: &mut Vec<Violation>) {
        let requests = self.capacity_requests(view);
        let mut push = |invariant, what: String| {
            out.push(Violation {
                invariant,
                step: step.id.clone(),
                what,
            })
        };
        let mut replay = CapacityReplay::new(view);
        // When the capacity was first as wanted (it never starts so here).
        let mut reached: Option<u64> = None;
        for (e, op, t) in &requests {
            if let Some((_, ends)) = replay.op
                && reached.is_none()
                && !view.fails
                && replay.wanted_after(step.kind, ends)
            {
                reached = Some(ends);
            }
            let running = replay.op.filter(|(_, ends)| t + CAPACITY_SLACK_MS < *ends);
            if let Some((_, ends)) = running {
                push(
                    "C1",
                    format!(
                        "{} #{} at {t} ms (process {}) while the operation started before it ran (until {ends} ms)",
                        e.method,
                        e.seq,
                        self.proc_of(*t).map_or("?".into(), |p| (p + 1).to_string())
                    ),
                );
            } else if let Some(at) = reached.filter(|at| at + CAPACITY_SLACK_MS < *t) {
                push(
                    "C1",
                    format!(
                        "{} #{} at {t} ms (process {}) although the capacity was as wanted since {at} ms",
                        e.method,
                        e.seq,
                        self.proc_of(*t).map_or("?".into(), |p| (p + 1).to_string())
                    ),
                );
            }
            replay.request(*op, *t);
        }
        for (proc, run) in self.stored {
            let Some(s) = stored_step(run, &step.id) else {
                continue;
            };
            if s["status"] != "succeeded" {
                continue;
            }
            let end = self.procs[*proc].end_ms;
            let mut at_end = CapacityReplay::new(view);
            for (_, op, t) in requests.iter().filter(|(_, _, t)| *t <= end) {
                at_end.request(*op, *t);
            }
            at_end.settle(end);
            if !at_end.wanted(step.kind) {
                push(
                    "C2",
                    format!(
                        "reported succeeded by run {} (process {}), but at its end ({end} ms) the capacity was {} {}{}",
                        run["run_id"].as_str().unwrap_or("?"),
                        proc + 1,
                        if at_end.active { "Active" } else { "Paused" },
                        at_end.sku,
                        at_end.op.map_or(String::new(), |(op, ends)| format!(
                            " with a {op:?} running until {ends} ms"
                        ))
                    ),
                );
            }
        }
    }

    fn check_step(&self, step: &StepView, out: &mut Vec<Violation>) {
        let triggers = self.triggers(step);
        let mut push = |invariant, what: String| {
            out.push(Violation {
                invariant,
                step: step.id.clone(),
                what,
            })
        };
        // I2: never a trigger while a run of the resource is alive. `if_running` decides what
        // to do about a run the step did not start, and none of its answers triggers while
        // that run goes on (wait waits, adopt adopts, fail fails, restart cancels first).
        // An export whose start lost its answer is the documented exception: the step cannot
        // know it, and another export beside it is harmless.
        let unknown_exports: Vec<&str> = if step.kind == Kind::Export {
            triggers
                .iter()
                .filter(|e| answer_lost(e))
                .flat_map(|e| e.runs_started.iter().map(String::as_str))
                .collect()
        } else {
            Vec::new()
        };
        for e in &triggers {
            let t = e.acted_ms.unwrap_or(e.at_ms);
            for r in self.runs_of(step) {
                if e.runs_started.contains(&r.id)
                    || !alive_at(r, t)
                    || unknown_exports.contains(&r.id.as_str())
                {
                    continue;
                }
                push(
                    self.label(t, "I2"),
                    format!(
                        "trigger #{} at {t} ms while run {} ({}) was alive",
                        e.seq,
                        short(&r.id),
                        if r.scheduled {
                            "scheduled"
                        } else {
                            "started by a call"
                        }
                    ),
                );
            }
        }
        // I1: a trigger after the first only once the previous run the step started (or
        // adopted) ended unsuccessfully. Documented exception: an export whose start lost
        // its answer may be started again (no API lists a report's exports).
        // A run adopted in memory by a process killed before it stored anything is not known
        // to the next one: adoption binds the triggers of the process that saw the run.
        let adopted = self.adopted(step);
        let adopted_by = adopted
            .and_then(|_| self.first_read(step))
            .and_then(|e| self.proc_of(e.at_ms));
        let mut previous: Option<(&RunRecord, Option<&Exchange>)> = adopted.map(|r| (r, None));
        for e in &triggers {
            let t = e.acted_ms.unwrap_or(e.at_ms);
            if let Some((prev, None)) = previous
                && prev.scheduled
                && self.proc_of(t) != adopted_by
            {
                previous = None;
            }
            if let Some((prev, by)) = previous {
                let export_retry = step.kind == Kind::Export && by.is_some_and(answer_lost);
                let ended_badly =
                    prev.ended_ms.is_some_and(|end| end <= t) && failed_state(&prev.state);
                if !ended_badly && !export_retry {
                    let how = match prev.ended_ms {
                        Some(end) if end <= t => format!("ended {} at {end} ms", prev.state),
                        _ => "was still alive".to_string(),
                    };
                    push(
                        self.label(t, "I1"),
                        format!(
                            "trigger #{} at {t} ms although its previous run {} {how}",
                            e.seq,
                            short(&prev.id)
                        ),
                    );
                }
            }
            if let Some(r) = self.started_by(step, e).last() {
                previous = Some((r, Some(e)));
            }
        }
        // I1, counted: no more triggers than attempts (plus the export exception).
        let attempts: usize = self
            .stored
            .iter()
            .filter_map(|(_, run)| stored_step(run, &step.id))
            .map(|s| s["attempts"].as_array().map_or(0, Vec::len))
            .sum();
        let exempt = if step.kind == Kind::Export {
            triggers.iter().filter(|e| answer_lost(e)).count()
        } else {
            0
        };
        if triggers.len() > attempts + exempt {
            push(
                "I1",
                format!(
                    "{} triggers reached the service for {attempts} recorded attempt(s)",
                    triggers.len()
                ),
            );
        }
        // I3: `succeeded` only with a run it started or adopted that ended successfully
        // before the process that said so ended.
        let own: Vec<&RunRecord> = triggers
            .iter()
            .flat_map(|e| self.started_by(step, e))
            .chain(self.adopted(step))
            .collect();
        for (proc, run) in self.stored {
            let Some(s) = stored_step(run, &step.id) else {
                continue;
            };
            if s["status"] != "succeeded" {
                continue;
            }
            let end = self.procs[*proc].end_ms;
            let proof = own
                .iter()
                .any(|r| r.state == "Succeeded" && r.ended_ms.is_some_and(|e| e <= end));
            if !proof {
                let states: Vec<String> = own
                    .iter()
                    .map(|r| format!("{} {}", short(&r.id), r.state))
                    .collect();
                push(
                    "I3",
                    format!(
                        "reported succeeded by run {} (process {}), but none of its runs [{}] had succeeded",
                        run["run_id"].as_str().unwrap_or("?"),
                        proc + 1,
                        states.join(", ")
                    ),
                );
            }
        }
        // I2, the other half: a step that failed while its run went on abandoned it (a poll
        // answered 429 keeps polling until the step's own timeout, which cancels).
        for (proc, run) in self.stored {
            let Some(s) = stored_step(run, &step.id) else {
                continue;
            };
            if s["status"] != "failed" {
                continue;
            }
            let Some(at) = s["finished_at"].as_str().and_then(|t| self.sim_ms(t)) else {
                continue;
            };
            for r in &own {
                if alive_at(r, at) {
                    push(
                        // A resumed run that fails over its own earlier run did not recover it.
                        if r.created_ms < self.procs[*proc].start_ms {
                            self.label(at, "I2")
                        } else {
                            "I2"
                        },
                        format!(
                            "reported failed by process {} at {at} ms while its run {} was alive (abandoned)",
                            proc + 1,
                            short(&r.id)
                        ),
                    );
                }
            }
        }
    }

    /// The requests and runs of the steps named in `violations`: the story to read.
    pub(super) fn story(&self, violations: &[Violation]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "processes:");
        for (i, p) in self.procs.iter().enumerate() {
            let _ = writeln!(
                out,
                "  P{} {} {}..{} ms: {:?}",
                i + 1,
                if p.resumed {
                    "run --resume last"
                } else {
                    "run"
                },
                p.start_ms,
                p.end_ms,
                p.ended
            );
        }
        let mut named: Vec<&str> = violations.iter().map(|v| v.step.as_str()).collect();
        named.dedup();
        for step in self.steps.iter().filter(|s| named.contains(&s.id.as_str())) {
            let _ = writeln!(
                out,
                "step {} ({:?}, if_running {:?}):",
                step.id, step.kind, step.if_running
            );
            for e in self
                .exchanges
                .iter()
                .filter(|e| step.marks.iter().any(|m| e.path.contains(m.as_str())))
            {
                let who = self
                    .proc_of(e.at_ms)
                    .map_or("?".to_string(), |p| format!("P{}", p + 1));
                let status = match (e.acted, e.status) {
                    (_, Some(s)) => s.to_string(),
                    (true, None) => "no answer".into(),
                    (false, None) => "dropped".into(),
                };
                let _ = writeln!(
                    out,
                    "  #{:<4} {:>6} ms {who:<3} {} {} -> {status}{}{}",
                    e.seq,
                    e.at_ms,
                    e.method,
                    shorten_path(&e.path),
                    e.fault
                        .as_ref()
                        .map_or(String::new(), |f| format!(" [fault {f:?}]")),
                    if e.runs_started.is_empty() {
                        String::new()
                    } else {
                        let ids: Vec<String> = e.runs_started.iter().map(|r| short(r)).collect();
                        format!(" started {}", ids.join(","))
                    }
                );
            }
            for r in self.runs_of(step) {
                let _ = writeln!(
                    out,
                    "  run {} {}: created {} ms, ended {}, {}",
                    short(&r.id),
                    if r.scheduled { "(scheduled)" } else { "" },
                    r.created_ms,
                    r.ended_ms.map_or("never".into(), |e| format!("{e} ms")),
                    r.state
                );
            }
            for (proc, run) in self.stored {
                if let Some(s) = stored_step(run, &step.id) {
                    let attempts: Vec<String> = s["attempts"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|a| {
                                    format!(
                                        "{}:{}{}",
                                        a["number"],
                                        a["status"].as_str().unwrap_or("?"),
                                        a["error"].as_str().map_or(String::new(), |e| format!(
                                            " ({})",
                                            cut(e, 90)
                                        ))
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  P{} stored: {} {} attempts [{}]",
                        proc + 1,
                        s["status"].as_str().unwrap_or("?"),
                        s["reason"].as_str().unwrap_or(""),
                        attempts.join("; ")
                    );
                }
            }
        }
        out
    }
}

fn stored_step<'v>(run: &'v Value, id: &str) -> Option<&'v Value> {
    run["steps"].as_array()?.iter().find(|s| s["id"] == id)
}

fn short(id: &str) -> String {
    id.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(n).collect::<String>())
    }
}

/// Paths with their GUIDs cut to 8 characters, to keep the story readable.
fn shorten_path(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.len() >= 32 {
                format!("{}..", &part[..8.min(part.len())])
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
