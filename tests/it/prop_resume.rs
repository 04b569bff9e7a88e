//! Property test: whatever an earlier run left in the store (steps that succeeded, failed,
//! were cut off mid-attempt, never started), a resumed run never runs a succeeded step again,
//! and runs every other step that has nothing to re-attach to.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use pbibatch::engine::{self, EngineOptions, ResumeState};
use pbibatch::event::{RunStatus, StepStatus};
use pbibatch::executor::{AttemptContext, AttemptOutcome, Executor};
use pbibatch::job::load_bytes;
use pbibatch::plan::Plan;
use pbibatch::store::{StepResume, Store};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::store_support::{Script, enhanced, meta, record};

/// What the earlier run did with one step.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Succeeded(u32),
    Ended(StepStatus),
    InFlightWithHandle,
    InFlightWithoutHandle,
    LastAttemptSucceededNoStepEnd,
    NeverStarted,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        (1u32..4).prop_map(Fate::Succeeded),
        prop::sample::select(vec![
            StepStatus::Failed,
            StepStatus::TimedOut,
            StepStatus::Skipped,
            StepStatus::UpstreamFailed,
            StepStatus::Cancelled,
        ])
        .prop_map(Fate::Ended),
        Just(Fate::InFlightWithHandle),
        Just(Fate::InFlightWithoutHandle),
        Just(Fate::LastAttemptSucceededNoStepEnd),
        Just(Fate::NeverStarted),
    ]
}

fn succeeded_before(f: Fate) -> bool {
    matches!(f, Fate::Succeeded(_) | Fate::LastAttemptSucceededNoStepEnd)
}

/// Records which steps were executed, and how.
#[derive(Default)]
struct Recorder {
    fresh: Mutex<Vec<String>>,
    reattached: Mutex<Vec<String>>,
}

impl Executor for Recorder {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        let list = if ctx.reattach.is_some() {
            &self.reattached
        } else {
            &self.fresh
        };
        list.lock().unwrap().push(ctx.step.id.clone());
        async { AttemptOutcome::Succeeded { adopted: false } }.boxed()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn resume_never_reruns_a_succeeded_step(
        fates in prop::collection::vec(fate(), 1..10),
        run_finished in any::<bool>(),
    ) {
        let ids: Vec<String> = (0..fates.len()).map(|i| format!("s{i}")).collect();
        let typed: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "dataset")).collect();
        let mut script = Script::new("run-1");
        script.started(0, "nightly", &typed, None);
        for (i, (id, f)) in ids.iter().zip(&fates).enumerate() {
            let t = 10 * i as i64 + 1;
            match *f {
                Fate::Succeeded(n) => {
                    for a in 1..n {
                        script.attempt(t, id, a).attempt_end(t, id, a, StepStatus::Failed, Some("boom"), true);
                    }
                    script.attempt(t, id, n)
                        .attempt_end(t + 1, id, n, StepStatus::Succeeded, None, false)
                        .step_end(t + 1, id, StepStatus::Succeeded, None, n);
                }
                Fate::Ended(StepStatus::UpstreamFailed) => {
                    script.step_end(t, id, StepStatus::UpstreamFailed, Some("dependency failed"), 0);
                }
                Fate::Ended(StepStatus::Skipped) => {
                    script.step_end(t, id, StepStatus::Skipped, Some("condition false"), 0);
                }
                Fate::Ended(st) => {
                    script.simple(t, t + 1, id, st, Some("boom"));
                }
                Fate::InFlightWithHandle => {
                    script.attempt(t, id, 1).handle(t, id, 1, enhanced(&format!("req-{id}")));
                }
                Fate::InFlightWithoutHandle => {
                    script.attempt(t, id, 1);
                }
                Fate::LastAttemptSucceededNoStepEnd => {
                    script.attempt(t, id, 1).attempt_end(t + 1, id, 1, StepStatus::Succeeded, None, false);
                }
                Fate::NeverStarted => {}
            }
        }
        if run_finished {
            script.finished(1000, RunStatus::Failed);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        record(&path, meta("job-v1", &id_refs), &script);

        let hashes = ids.iter().map(|id| (id.clone(), format!("h-{id}"))).collect();
        let store = Store::open(&path).unwrap();
        let resume = store.resume_state("last", "nightly", "job-v1", false, &hashes).unwrap();
        for (id, f) in ids.iter().zip(&fates) {
            let kept = matches!(resume.steps[id], StepResume::Keep { .. });
            prop_assert_eq!(kept, succeeded_before(*f), "{} was {:?}: {:?}", id, f, resume.steps[id]);
        }

        // The engine, given that state, executes no kept step, and every other one once.
        let mut yaml = String::from("version: 1\nname: nightly\nsteps:\n");
        for (i, id) in ids.iter().enumerate() {
            let dep = if i == 0 { String::new() } else { format!("s{}", i - 1) };
            let _ = writeln!(yaml, "  {id}: {{ type: webhook, url: \"https://hooks.example.com/x\", depends_on: [{dep}] }}");
        }
        let job = load_bytes("nightly.yaml", yaml.as_bytes(), &[], &|_| None).unwrap().job;
        let plan = Arc::new(Plan::new(Arc::new(job)).unwrap());
        let exec = Arc::new(Recorder::default());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let state: ResumeState = resume.into();
        let opts = EngineOptions { run_id: "run-2".into(), resume: Some(state), ..EngineOptions::default() };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let status = rt.block_on(engine::run(plan, exec.clone(), opts, CancellationToken::new(), tx));
        prop_assert_eq!(status, RunStatus::Succeeded);
        let fresh: HashSet<String> = exec.fresh.lock().unwrap().iter().cloned().collect();
        let reattached: HashSet<String> = exec.reattached.lock().unwrap().iter().cloned().collect();
        prop_assert_eq!(fresh.len(), exec.fresh.lock().unwrap().len(), "a step ran twice");
        for (id, f) in ids.iter().zip(&fates) {
            if succeeded_before(*f) {
                prop_assert!(!fresh.contains(id) && !reattached.contains(id), "{} ran again", id);
            } else if matches!(f, Fate::InFlightWithHandle) {
                prop_assert!(reattached.contains(id) && !fresh.contains(id), "{} not re-attached", id);
            } else {
                prop_assert!(fresh.contains(id), "{} did not run", id);
            }
        }
    }
}
