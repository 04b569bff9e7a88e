//! Expected durations: a step still running at its limit is flagged at that moment (retries
//! and backoffs count), once, before its end; one within its limit never is; `on_overrun:
//! fail` fails the run and nothing else.

use super::*;
use crate::event::{Expected, ExpectedFrom};
use crate::job::model::OnOverrun;

fn expect(secs: f64, on_overrun: OnOverrun) -> Expected {
    Expected {
        secs: Some(secs),
        from: ExpectedFrom::Stated,
        usual_secs: None,
        runs: None,
        on_overrun,
    }
}

fn with_expected(pairs: &[(&str, Expected)]) -> EngineOptions {
    EngineOptions {
        expected: pairs.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
        ..opts()
    }
}

/// `(seq, at - run start, step)` of every `StepOverran`.
fn overruns(events: &[RunEvent]) -> Vec<(u64, Duration, String)> {
    let start = events[0].at;
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::StepOverran { step, elapsed } => {
                let since = (e.at - start).to_std().unwrap();
                assert_eq!(
                    *elapsed, since,
                    "elapsed is the time since the first attempt"
                );
                Some((e.seq, since, step.clone()))
            }
            _ => None,
        })
        .collect()
}

fn finished_overran(events: &[RunEvent], id: &str) -> (u64, bool) {
    events
        .iter()
        .find_map(|e| match &e.kind {
            RunEventKind::StepFinished { step, overran, .. } if step == id => {
                Some((e.seq, *overran))
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_step_still_running_at_its_limit_is_flagged_then_and_keeps_its_status() {
    // `slow` fails after 4 s, waits 10 s, succeeds after 5 s: past 12 s during its backoff.
    // `quick` ends in 3 s, inside its 5 s.
    let exec = Fake::new(&[
        ("slow", vec![Act::Fail(secs(4), "boom"), Act::Ok(secs(5))]),
        ("quick", vec![Act::Ok(secs(3))]),
    ]);
    let slow = Step {
        retries: 1,
        retry_backoff: secs(10),
        ..step("slow", &[])
    };
    let j = job(vec![slow, step("quick", &[])], 8);
    let opts = with_expected(&[
        ("slow", expect(12.0, OnOverrun::Warn)),
        ("quick", expect(5.0, OnOverrun::Fail)),
    ]);
    let (status, events) = run_job(j, exec, opts, None).await;
    // Nothing with `on_overrun: fail` overran; `slow` only warns.
    assert_eq!(status, RunStatus::Succeeded);
    let flagged = overruns(&events);
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let (seq, at, id) = &flagged[0];
    assert_eq!((id.as_str(), *at), ("slow", secs(12)));
    let (end_seq, overran) = finished_overran(&events, "slow");
    assert!(overran && end_seq > *seq);
    assert_eq!(status_of(&events, "slow"), StepStatus::Succeeded);
    assert!(!finished_overran(&events, "quick").1);
}

#[tokio::test(start_paused = true)]
async fn on_overrun_fail_fails_the_run_only() {
    let exec = Fake::new(&[
        ("load", vec![Act::Ok(secs(8))]),
        ("after", vec![Act::Ok(secs(1))]),
    ]);
    let j = job(vec![step("load", &[]), step("after", &["load"])], 8);
    let opts = with_expected(&[("load", expect(5.0, OnOverrun::Fail))]);
    let (status, events) = run_job(j, exec.clone(), opts, None).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(status_of(&events, "load"), StepStatus::Succeeded);
    // The dependent ran, and saw the run as failing already.
    assert_eq!(status_of(&events, "after"), StepStatus::Succeeded);
    let calls = exec.calls();
    let after = calls.iter().find(|c| c.step == "after").unwrap();
    assert!(
        after
            .summary
            .contains("1 overran its expected duration (load)"),
        "{}",
        after.summary
    );
    assert_eq!(overruns(&events)[0].1, secs(5));
    // The same overrun with `warn` leaves the run succeeded.
    let exec = Fake::new(&[("load", vec![Act::Ok(secs(8))])]);
    let j = job(vec![step("load", &[])], 8);
    let opts = with_expected(&[("load", expect(5.0, OnOverrun::Warn))]);
    let (status, events) = run_job(j, exec, opts, None).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert!(finished_overran(&events, "load").1);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_never_started_is_never_flagged() {
    // `gated` is skipped by its condition and `child` ends upstream_failed: no attempt, no
    // clock, no flag, however long the run.
    let exec = Fake::new(&[("bad", vec![Act::Fail(secs(30), "boom")])]);
    let mut gated = step("gated", &[]);
    gated.when = Some("false".into());
    let j = job(vec![step("bad", &[]), step("child", &["bad"]), gated], 8);
    let opts = with_expected(&[
        ("child", expect(1.0, OnOverrun::Fail)),
        ("gated", expect(1.0, OnOverrun::Fail)),
    ]);
    let (status, events) = run_job(j, exec, opts, None).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(overruns(&events).is_empty());
}

mod generated {
    //! Generated jobs and limits: an expected duration never changes what the steps do
    //! (statuses, attempts, calls); a step is flagged exactly when it took longer than its
    //! limit, once, before its end; the run fails for it only with `on_overrun: fail`.

    use proptest::prelude::*;

    use super::*;

    /// One step: its attempts' acts (whole seconds, so no duration ties a half-second limit),
    /// its retries, and its limit in half seconds with `fail` or `warn`.
    #[derive(Debug, Clone)]
    struct Gen {
        acts: Vec<(bool, u64)>,
        retries: u32,
        limit_halves: Option<(u64, bool)>,
        parent: Option<usize>,
    }

    fn gen_step() -> impl Strategy<Value = Gen> {
        (
            prop::collection::vec((any::<bool>(), 1u64..20), 1..4),
            0u32..3,
            prop::option::of((0u64..40, any::<bool>())),
            prop::option::of(0usize..6),
        )
            .prop_map(|(acts, retries, limit_halves, parent)| Gen {
                acts,
                retries,
                limit_halves,
                parent,
            })
    }

    fn build(gens: &[Gen]) -> (Job, Vec<(&'static str, Vec<Act>)>, EngineOptions) {
        const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let mut steps = Vec::new();
        let mut script = Vec::new();
        let mut expected = Vec::new();
        for (i, g) in gens.iter().enumerate() {
            let deps: Vec<&str> = g
                .parent
                .filter(|p| *p < i)
                .map(|p| vec![IDS[p]])
                .unwrap_or_default();
            steps.push(Step {
                retries: g.retries,
                retry_backoff: secs(3),
                ..step(IDS[i], &deps)
            });
            script.push((
                IDS[i],
                g.acts
                    .iter()
                    .map(|&(ok, s)| {
                        if ok {
                            Act::Ok(secs(s))
                        } else {
                            Act::Fail(secs(s), "boom")
                        }
                    })
                    .collect(),
            ));
            if let Some((halves, fail)) = g.limit_halves {
                let on = if fail {
                    OnOverrun::Fail
                } else {
                    OnOverrun::Warn
                };
                expected.push((IDS[i], expect(halves as f64 + 0.5, on)));
            }
        }
        (job(steps, 3), script, with_expected(&expected))
    }

    fn outcome(events: &[RunEvent]) -> Vec<(String, StepStatus, u32)> {
        let mut v: Vec<_> = finals(events)
            .into_iter()
            .map(|(id, (status, _, attempts))| (id, status, attempts))
            .collect();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn an_expected_duration_flags_and_never_changes_what_ran(
            gens in prop::collection::vec(gen_step(), 1..6)
        ) {
            let (job_with, script, opts_with) = build(&gens);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            let (status_with, events) = rt.block_on(run_job(
                job_with.clone(),
                Fake::new(&script),
                opts_with.clone(),
                None,
            ));
            let (status_without, plain) =
                rt.block_on(run_job(job_with, Fake::new(&script), opts(), None));
            // Same steps, same statuses, same attempts.
            prop_assert_eq!(outcome(&events), outcome(&plain));

            let start = events[0].at;
            let mut late_fail = false;
            for e in &events {
                let RunEventKind::StepFinished { step, duration, overran, .. } = &e.kind else {
                    continue;
                };
                let limit = opts_with.expected.get(step).and_then(|x| x.limit());
                let past = match (duration, limit) {
                    (Some(d), Some(l)) => *d > l,
                    _ => false,
                };
                prop_assert_eq!(*overran, past, "{}: {:?} vs {:?}", step, duration, limit);
                let flags: Vec<&RunEvent> = events
                    .iter()
                    .filter(|f| matches!(&f.kind, RunEventKind::StepOverran { step: s, .. } if s == step))
                    .collect();
                prop_assert_eq!(flags.len(), usize::from(past));
                if let (Some(flag), Some(l)) = (flags.first(), limit) {
                    // Flagged at the limit itself, while still running.
                    prop_assert!(flag.seq < e.seq);
                    let RunEventKind::StepOverran { elapsed, .. } = &flag.kind else {
                        unreachable!()
                    };
                    prop_assert_eq!(*elapsed, l);
                    prop_assert!(flag.at > start);
                    late_fail |= opts_with.expected[step].on_overrun == OnOverrun::Fail;
                }
            }
            let expected_status = if late_fail { RunStatus::Failed } else { status_without };
            prop_assert_eq!(status_with, expected_status);
        }
    }
}
