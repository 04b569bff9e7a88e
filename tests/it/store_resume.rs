//! `run --resume`: the fate of every kind of step, and the changed-job rule.

use std::collections::HashMap;

use pbibatch::event::StepStatus;
use pbibatch::store::{StepResume, Store, StoreError};

use crate::store_support::{Script, enhanced, meta, record};

const STEPS: [(&str, &str); 11] = [
    ("ok", "dataset"),
    ("bad", "dataset"),
    ("slow", "dataset"),
    ("up", "report"),
    ("stop", "dataset"),
    ("skip", "webhook"),
    ("flying", "dataset"),
    ("blind", "sas_flow"),
    ("almost", "dataset"),
    ("backoff", "dataset"),
    ("never", "webhook"),
];

fn ids() -> Vec<&'static str> {
    STEPS.iter().map(|(id, _)| *id).collect()
}

/// A run of `nightly` that died with every kind of step in it.
fn crashed_run(path: &std::path::Path) {
    let mut s = Script::new("run-crash");
    s.started(0, "nightly", &STEPS, None)
        .simple(0, 10, "ok", StepStatus::Succeeded, None)
        .simple(0, 10, "bad", StepStatus::Failed, Some("boom"))
        .simple(
            0,
            10,
            "slow",
            StepStatus::TimedOut,
            Some("timed out after 2h"),
        )
        .step_end(10, "up", StepStatus::UpstreamFailed, Some("bad failed"), 0)
        .simple(0, 10, "stop", StepStatus::Cancelled, Some("interrupted"))
        .step_end(10, "skip", StepStatus::Skipped, Some("when is false"), 0)
        .attempt(10, "flying", 1)
        .attempt_end(20, "flying", 1, StepStatus::Failed, Some("flaky"), true)
        .attempt(50, "flying", 2)
        .handle(51, "flying", 2, enhanced("req-flying"))
        .attempt(10, "blind", 1)
        .attempt(10, "almost", 1)
        .handle(11, "almost", 1, enhanced("req-almost"))
        .attempt_end(30, "almost", 1, StepStatus::Succeeded, None, false)
        .attempt(10, "backoff", 1)
        .attempt_end(20, "backoff", 1, StepStatus::Failed, Some("flaky"), true);
    record(path, meta("job-v1", &ids()), &s);
}

fn hashes() -> HashMap<String, String> {
    ids()
        .into_iter()
        .map(|id| (id.to_string(), format!("h-{id}")))
        .collect()
}

fn reason(fate: &StepResume) -> &str {
    match fate {
        StepResume::Run { reason, .. } => reason,
        other => panic!("expected Run, got {other:?}"),
    }
}

#[test]
fn store_resume_classifies_every_kind_of_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    let mut current = hashes();
    current.insert("brand_new".into(), "h-new".into());
    let store = Store::open(&path).unwrap();
    let resume = store
        .resume_state("last", "nightly", "job-v1", false, &current)
        .unwrap();
    assert_eq!(resume.from_run, "run-crash");
    assert!(!resume.job_changed);
    let s = &resume.steps;

    assert!(
        matches!(&s["ok"], StepResume::Keep { run_id, attempts: 1, adopted: false, .. }
            if run_id == "run-crash")
    );
    assert!(
        matches!(&s["almost"], StepResume::Keep { .. }),
        "{:?}",
        s["almost"]
    );
    assert_eq!(
        s["flying"],
        StepResume::Reattach {
            attempt: 2,
            handle: enhanced("req-flying"),
            remote_status: Some("NotStarted".into()),
        }
    );
    assert_eq!(reason(&s["bad"]), "failed in run run-crash");
    assert_eq!(reason(&s["slow"]), "timed_out in run run-crash");
    assert_eq!(reason(&s["up"]), "upstream_failed in run run-crash");
    assert_eq!(reason(&s["stop"]), "cancelled in run run-crash");
    assert_eq!(reason(&s["skip"]), "skipped in run run-crash");
    assert_eq!(
        reason(&s["blind"]),
        "attempt 1 was in flight in run run-crash with no remote id to re-attach to"
    );
    assert_eq!(
        reason(&s["backoff"]),
        "attempt 1 ended failed in run run-crash"
    );
    assert_eq!(reason(&s["never"]), "never started in run run-crash");
    assert_eq!(reason(&s["brand_new"]), "not part of run run-crash");
    assert_eq!(s.len(), 12);

    let kept: Vec<&String> = resume.kept().collect();
    assert_eq!(kept, ["almost", "ok"]);
    let reattach: Vec<&String> = resume.reattach().map(|(id, _)| id).collect();
    assert_eq!(reattach, ["flying"]);
}

#[test]
fn store_resume_refuses_a_changed_job_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    let store = Store::open(&path).unwrap();

    let err = store
        .resume_state(
            "run-crash",
            "nightly",
            "job-v2-0123456789abcdef",
            false,
            &hashes(),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::JobChanged { .. }));
    assert_eq!(
        err.to_string(),
        "the job file changed since run `run-crash` (hash job-v1 -> job-v2-01234); pass \
         --force to resume anyway, keeping only the steps whose definition did not change"
    );

    // Forced: `ok` changed, `almost` did not; the in-flight `flying` changed too, so it runs
    // again rather than re-attaching to work started from the old definition.
    let mut current = hashes();
    current.insert("ok".into(), "h-ok-v2".into());
    current.insert("flying".into(), "h-flying-v2".into());
    let resume = store
        .resume_state("run-crash", "nightly", "job-v2", true, &current)
        .unwrap();
    assert!(resume.job_changed);
    assert_eq!(
        reason(&resume.steps["ok"]),
        "its definition changed since run run-crash"
    );
    assert_eq!(
        reason(&resume.steps["flying"]),
        "its definition changed since run run-crash"
    );
    assert!(matches!(resume.steps["almost"], StepResume::Keep { .. }));
    assert_eq!(reason(&resume.steps["bad"]), "failed in run run-crash");
}

#[test]
fn store_resume_checks_the_run_and_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    let store = Store::open(&path).unwrap();
    let err = store
        .resume_state("last", "other", "x", false, &hashes())
        .unwrap_err();
    assert_eq!(err.to_string(), "no run of job `other` in the state store");
    let err = store
        .resume_state("run-crash", "other", "x", false, &hashes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `run-crash` belongs to job `nightly`, not `other`"
    );
    let err = store
        .resume_state("run-zzz", "nightly", "x", false, &hashes())
        .unwrap_err();
    assert_eq!(err.to_string(), "no run `run-zzz` in the state store");
}

#[test]
fn store_resume_of_a_resumed_run_keeps_what_it_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    // The resumed run reports the kept step as succeeded without attempts, then fails again.
    let mut s = Script::new("run-resumed");
    s.started(100, "nightly", &STEPS, Some("run-crash"))
        .step_end(
            100,
            "ok",
            StepStatus::Succeeded,
            Some("succeeded in run run-crash"),
            0,
        )
        .simple(100, 110, "bad", StepStatus::Failed, Some("boom again"));
    record(&path, meta("job-v1", &ids()), &s);
    let store = Store::open(&path).unwrap();
    let resume = store
        .resume_state("last", "nightly", "job-v1", false, &hashes())
        .unwrap();
    assert_eq!(resume.from_run, "run-resumed");
    // Kept again, still naming the run where it really succeeded.
    assert!(
        matches!(&resume.steps["ok"], StepResume::Keep { run_id, .. } if run_id == "run-crash"),
        "{:?}",
        resume.steps["ok"]
    );
    assert_eq!(reason(&resume.steps["bad"]), "failed in run run-resumed");
    assert_eq!(
        store
            .load_run("run-resumed")
            .unwrap()
            .resumed_from
            .as_deref(),
        Some("run-crash")
    );
}

#[test]
fn store_resume_maps_into_the_engine_state() {
    use pbibatch::engine::{ResumeState, ResumeStep};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    let store = Store::open(&path).unwrap();
    let resume = store
        .resume_state("last", "nightly", "job-v1", false, &hashes())
        .unwrap();
    let state = ResumeState::from(resume);
    assert_eq!(state.run_id, "run-crash");
    assert_eq!(state.steps.len(), 3);
    assert_eq!(
        state.steps["ok"],
        ResumeStep::Keep {
            status: StepStatus::Succeeded,
            reason: Some("succeeded in run run-crash".into()),
        }
    );
    assert!(matches!(state.steps["almost"], ResumeStep::Keep { .. }));
    assert_eq!(
        state.steps["flying"],
        ResumeStep::Reattach(enhanced("req-flying"))
    );
}

#[test]
fn store_resume_reruns_a_step_whose_resolved_definition_changed() {
    // Same job file, but `--var` changed what one step resolves to.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    crashed_run(&path);
    let store = Store::open(&path).unwrap();
    let mut current = hashes();
    current.insert("ok".into(), "h-ok-other-vars".into());
    let resume = store
        .resume_state("last", "nightly", "job-v1", false, &current)
        .unwrap();
    assert!(!resume.job_changed);
    assert_eq!(
        reason(&resume.steps["ok"]),
        "its definition changed since run run-crash"
    );
    assert!(matches!(resume.steps["almost"], StepResume::Keep { .. }));
}

#[test]
fn store_resume_of_a_killed_resume_keeps_the_earlier_runs_handle() {
    // run-1 dies with `model` in flight; run-2 resumes it and dies before `model`'s attempt
    // records anything. Resuming run-2 still reads run-1's refresh first.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let steps = [("model", "dataset")];
    let mut first = Script::new("run-1");
    first
        .started(0, "nightly", &steps, None)
        .attempt(1, "model", 1)
        .handle(2, "model", 1, enhanced("req-first"));
    record(&path, meta("job-v1", &["model"]), &first);
    let mut second = Script::new("run-2");
    second
        .started(10, "nightly", &steps, Some("run-1"))
        .attempt(11, "model", 1);
    record(&path, meta("job-v1", &["model"]), &second);

    let store = Store::open(&path).unwrap();
    let hashes: HashMap<String, String> = [("model".to_string(), "h-model".to_string())].into();
    let resume = store
        .resume_state("run-2", "nightly", "job-v1", false, &hashes)
        .unwrap();
    match &resume.steps["model"] {
        StepResume::Run {
            previous: Some(handle),
            ..
        } => assert_eq!(handle, &enhanced("req-first")),
        other => panic!("the earlier run's refresh was forgotten: {other:?}"),
    }
}
