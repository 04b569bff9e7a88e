//! Trigger rules: given the final outcomes of a step's parents, does the step run?
//!
//! Each parent is classified as [`ParentOutcome`]: `Success` (`succeeded`, a freshness skip
//! (`skip_if_fresh`: reported `skipped`, but its data is current), an unselected dependency,
//! or a `failed`/`timed_out` parent with `continue_on_error`), `Failed` (`failed`,
//! `timed_out`, `upstream_failed`), `Skipped` (any other skip), or `Cancelled`.
//!
//! | rule          | runs when                 | otherwise                                      |
//! | ------------- | ------------------------- | ---------------------------------------------- |
//! | `all_success` | every parent succeeded    | `upstream_failed` if one failed, else `skipped`|
//! | `all_failed`  | every parent failed       | `skipped`                                      |
//! | `all_done`    | always (all are final)    | -                                              |
//! | `one_failed`  | at least one failed       | `skipped`                                      |
//! | `one_success` | at least one succeeded    | `upstream_failed` if one failed, else `skipped`|
//! | `none_failed` | no parent failed          | `upstream_failed`                              |
//! | `always`      | always                    | -                                              |
//!
//! "Every" holds for zero parents (a root step with `all_failed` runs); "at least one" does
//! not (a root step with `one_failed` is skipped). A `cancelled` parent (only seen when a run
//! stops) cancels the step under every rule: the run was stopped, nothing was decided.

use crate::job::model::{StepId, TriggerRule};

/// How a parent's final status counts for its children's trigger rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentOutcome {
    Success,
    Failed,
    Skipped,
    Cancelled,
}

/// What the trigger rule decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go on to the `when:` condition and the ready queue.
    Run,
    /// The rule says the step is not needed.
    Skip(String),
    /// A failure upstream stops the step.
    UpstreamFailed(String),
    /// A parent was cancelled.
    Cancel(String),
}

/// Applies `rule` to the parents' outcomes (`parents` in job order).
pub(crate) fn decide(rule: TriggerRule, parents: &[(StepId, ParentOutcome)]) -> Decision {
    if let Some((id, _)) = parents.iter().find(|(_, o)| *o == ParentOutcome::Cancelled) {
        return Decision::Cancel(format!("not started: dependency `{id}` was cancelled"));
    }
    let with = |o: ParentOutcome| -> Vec<&str> {
        parents
            .iter()
            .filter(|(_, p)| *p == o)
            .map(|(id, _)| id.as_str())
            .collect()
    };
    let failed = with(ParentOutcome::Failed);
    let skipped = with(ParentOutcome::Skipped);
    let succeeded = with(ParentOutcome::Success);
    let name = rule_name(rule);
    match rule {
        TriggerRule::Always | TriggerRule::AllDone => Decision::Run,
        TriggerRule::AllSuccess => {
            if !failed.is_empty() {
                Decision::UpstreamFailed(format!(
                    "trigger rule {name}: {} failed",
                    list(&failed, "dependency", "dependencies")
                ))
            } else if !skipped.is_empty() {
                Decision::Skip(format!(
                    "trigger rule {name}: {} skipped",
                    list(&skipped, "dependency", "dependencies")
                ))
            } else {
                Decision::Run
            }
        }
        TriggerRule::AllFailed => {
            let others: Vec<&str> = parents
                .iter()
                .filter(|(_, o)| *o != ParentOutcome::Failed)
                .map(|(id, _)| id.as_str())
                .collect();
            if others.is_empty() {
                Decision::Run
            } else {
                Decision::Skip(format!(
                    "trigger rule {name}: {} did not fail",
                    list(&others, "dependency", "dependencies")
                ))
            }
        }
        TriggerRule::OneFailed => {
            if failed.is_empty() {
                Decision::Skip(format!("trigger rule {name}: no dependency failed"))
            } else {
                Decision::Run
            }
        }
        TriggerRule::OneSuccess => {
            if !succeeded.is_empty() {
                Decision::Run
            } else if !failed.is_empty() {
                Decision::UpstreamFailed(format!(
                    "trigger rule {name}: no dependency succeeded ({} failed)",
                    list(&failed, "dependency", "dependencies")
                ))
            } else {
                Decision::Skip(format!("trigger rule {name}: no dependency succeeded"))
            }
        }
        TriggerRule::NoneFailed => {
            if failed.is_empty() {
                Decision::Run
            } else {
                Decision::UpstreamFailed(format!(
                    "trigger rule {name}: {} failed",
                    list(&failed, "dependency", "dependencies")
                ))
            }
        }
    }
}

/// The rule's name as written in job files.
pub(crate) fn rule_name(rule: TriggerRule) -> &'static str {
    match rule {
        TriggerRule::AllSuccess => "all_success",
        TriggerRule::AllDone => "all_done",
        TriggerRule::AllFailed => "all_failed",
        TriggerRule::OneFailed => "one_failed",
        TriggerRule::OneSuccess => "one_success",
        TriggerRule::NoneFailed => "none_failed",
        TriggerRule::Always => "always",
    }
}

/// "dependency `a`" / "dependencies `a`, `b`".
fn list(ids: &[&str], one: &str, many: &str) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    let noun = if ids.len() == 1 { one } else { many };
    format!("{noun} {}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParentOutcome::*;

    fn p(list: &[(&str, ParentOutcome)]) -> Vec<(StepId, ParentOutcome)> {
        list.iter().map(|(id, o)| (id.to_string(), *o)).collect()
    }

    #[test]
    fn all_success_distinguishes_failure_from_skip() {
        assert_eq!(
            decide(
                TriggerRule::AllSuccess,
                &p(&[("a", Success), ("b", Success)])
            ),
            Decision::Run
        );
        assert_eq!(
            decide(
                TriggerRule::AllSuccess,
                &p(&[("a", Skipped), ("b", Failed)])
            ),
            Decision::UpstreamFailed("trigger rule all_success: dependency `b` failed".into())
        );
        assert_eq!(
            decide(
                TriggerRule::AllSuccess,
                &p(&[("a", Skipped), ("b", Success)])
            ),
            Decision::Skip("trigger rule all_success: dependency `a` skipped".into())
        );
    }

    #[test]
    fn every_holds_for_no_parents_and_one_does_not() {
        assert_eq!(decide(TriggerRule::AllFailed, &[]), Decision::Run);
        assert_eq!(decide(TriggerRule::AllSuccess, &[]), Decision::Run);
        assert!(matches!(
            decide(TriggerRule::OneFailed, &[]),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(TriggerRule::OneSuccess, &[]),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn one_success_with_only_failures_is_upstream_failed() {
        assert!(matches!(
            decide(
                TriggerRule::OneSuccess,
                &p(&[("a", Failed), ("b", Skipped)])
            ),
            Decision::UpstreamFailed(_)
        ));
        assert_eq!(
            decide(
                TriggerRule::OneSuccess,
                &p(&[("a", Failed), ("b", Success)])
            ),
            Decision::Run
        );
    }

    #[test]
    fn none_failed_accepts_skips() {
        assert_eq!(
            decide(
                TriggerRule::NoneFailed,
                &p(&[("a", Skipped), ("b", Success)])
            ),
            Decision::Run
        );
        assert!(matches!(
            decide(TriggerRule::NoneFailed, &p(&[("a", Failed)])),
            Decision::UpstreamFailed(_)
        ));
    }

    #[test]
    fn all_failed_and_one_failed() {
        assert_eq!(
            decide(TriggerRule::AllFailed, &p(&[("a", Failed), ("b", Failed)])),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::AllFailed, &p(&[("a", Failed), ("b", Success)])),
            Decision::Skip("trigger rule all_failed: dependency `b` did not fail".into())
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &p(&[("a", Failed), ("b", Success)])),
            Decision::Run
        );
    }

    #[test]
    fn cancelled_parent_cancels_under_every_rule() {
        for rule in [
            TriggerRule::Always,
            TriggerRule::AllDone,
            TriggerRule::OneFailed,
        ] {
            assert!(matches!(
                decide(rule, &p(&[("a", Cancelled), ("b", Failed)])),
                Decision::Cancel(_)
            ));
        }
        assert_eq!(
            decide(TriggerRule::AllDone, &p(&[("a", Failed), ("b", Skipped)])),
            Decision::Run
        );
    }
}
