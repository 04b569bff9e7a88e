//! Property test: whatever steps do (succeed, fail, fail then succeed) under any trigger
//! rules, retries and `--fail-fast`, every step ends in a final state and the report's counts
//! are exactly its steps' statuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use pbibatch::engine::{self, EngineOptions};
use pbibatch::event::StepStatus;
use pbibatch::executor::{AttemptContext, AttemptOutcome, Executor};
use pbibatch::job::load_bytes;
use pbibatch::job::model::TriggerRule;
use pbibatch::plan::Plan;
use pbibatch::reporter::Reporters;
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

/// Fails each step's first `failures[id]` attempts, then succeeds, after a short pause.
struct Scripted(HashMap<String, u32>);

impl Executor for Scripted {
    fn execute(&self, ctx: AttemptContext) -> BoxFuture<'static, AttemptOutcome> {
        let failures = self.0.get(&ctx.step.id).copied().unwrap_or(0);
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if ctx.attempt <= failures {
                AttemptOutcome::Failed {
                    error: format!("scripted failure {}", ctx.attempt),
                    retry_after: None,
                }
            } else {
                AttemptOutcome::Succeeded { adopted: false }
            }
        }
        .boxed()
    }
}

const RULES: [TriggerRule; 7] = [
    TriggerRule::AllSuccess,
    TriggerRule::AllDone,
    TriggerRule::AllFailed,
    TriggerRule::OneFailed,
    TriggerRule::OneSuccess,
    TriggerRule::NoneFailed,
    TriggerRule::Always,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn report_counts_equal_its_steps(
        g in crate::prop_plan::dag_yaml(1..30),
        script in prop::collection::vec((0u32..3, 0u32..2, 0usize..7), 30),
        fail_fast in any::<bool>(),
    ) {
        let mut job = load_bytes("gen.yaml", g.text.as_bytes(), &[], &|_| None).unwrap().job;
        let mut failures = HashMap::new();
        for (i, step) in job.steps.values_mut().enumerate() {
            let (fail, retries, rule) = script[i];
            // 2 = always fails.
            failures.insert(step.id.clone(), if fail == 2 { u32::MAX } else { fail });
            step.retries = retries;
            step.retry_backoff = Duration::from_millis(5);
            step.trigger = RULES[rule];
        }
        let plan = Arc::new(Plan::new(Arc::new(job)).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let report = rt.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let reporters = Reporters::new().spawn(rx);
            let opts = EngineOptions { run_id: "prop".into(), fail_fast, ..EngineOptions::default() };
            engine::run(plan, Arc::new(Scripted(failures)), opts, CancellationToken::new(), tx).await;
            reporters.await.unwrap()
        });
        prop_assert_eq!(report.steps.len(), g.deps.len());
        let mut tally: HashMap<StepStatus, u32> = HashMap::new();
        for s in &report.steps {
            *tally.entry(s.status).or_default() += 1;
            // Attempts are numbered from 1 and never exceed 1 + retries.
            for (k, a) in s.attempts.iter().enumerate() {
                prop_assert_eq!(a.number as usize, k + 1);
            }
        }
        for st in StepStatus::ALL {
            prop_assert_eq!(report.counts.get(st), tally.get(&st).copied().unwrap_or(0), "{}", st);
        }
    }
}
