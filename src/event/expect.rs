//! What a step is expected to take (`expected_duration`), as the run resolved it when it
//! started: stated in the job file, or learned from the step's past runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::model::{ExpectedDuration, OnOverrun};

/// `auto` flags a step past this many times its usual duration.
pub const AUTO_MARGIN: f64 = 1.5;
/// `auto` learns from at least this many past successful runs.
pub const AUTO_MIN_RUNS: u32 = 3;

/// The usual duration of a step or of its resource's runs: the median of recent successful
/// runs, and how many runs that median is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usual {
    pub median: Duration,
    pub runs: u32,
}

/// Where an expected duration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedFrom {
    /// Written in the job file.
    Stated,
    /// `auto`: this step's past successful runs in the state store (same target).
    History,
    /// `auto`: the resource's recent successful runs in the service's run history.
    Service,
    /// `auto`, and fewer than 3 past successful runs: nothing is flagged yet.
    None,
}

impl ExpectedFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedFrom::Stated => "stated",
            ExpectedFrom::History => "history",
            ExpectedFrom::Service => "service",
            ExpectedFrom::None => "none",
        }
    }
}

// The `expected_duration` of a report step: its JSON Schema takes the description from here.
/// The step's expected duration (`expected_duration`) as resolved when the run started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Expected {
    /// Past this many seconds the step is flagged (absent when `auto` learned nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secs: Option<f64>,
    /// `stated`, `history` (the step's past runs in the state store), `service` (the
    /// resource's run history in the service) or `none` (`auto` without 3 past runs).
    pub from: ExpectedFrom,
    /// `auto`: the median of the past successful runs it learned from, in seconds (`secs`
    /// is 1.5 times this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual_secs: Option<f64>,
    /// `auto`: how many past runs that median is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    /// `warn`: flagged only; `fail`: flagged and the run fails.
    #[serde(with = "on_overrun")]
    #[schemars(with = "String")]
    pub on_overrun: OnOverrun,
}

impl Expected {
    /// Resolves a step's `expected_duration`: a stated one as written; `auto` from the local
    /// history when it has enough runs, else from the service's, else nothing.
    pub fn resolve(
        stated: ExpectedDuration,
        on_overrun: OnOverrun,
        local: Option<Usual>,
        service: Option<Usual>,
    ) -> Expected {
        let learned = |u: Usual, from| Expected {
            secs: Some(u.median.as_secs_f64() * AUTO_MARGIN),
            from,
            usual_secs: Some(u.median.as_secs_f64()),
            runs: Some(u.runs),
            on_overrun,
        };
        match stated {
            ExpectedDuration::Stated(d) => Expected {
                secs: Some(d.as_secs_f64()),
                from: ExpectedFrom::Stated,
                usual_secs: None,
                runs: None,
                on_overrun,
            },
            ExpectedDuration::Auto => match (local, service) {
                (Some(u), _) if u.runs >= AUTO_MIN_RUNS => learned(u, ExpectedFrom::History),
                (_, Some(u)) if u.runs >= AUTO_MIN_RUNS => learned(u, ExpectedFrom::Service),
                (l, s) => Expected {
                    secs: None,
                    from: ExpectedFrom::None,
                    usual_secs: None,
                    runs: Some(l.map_or(0, |u| u.runs).max(s.map_or(0, |u| u.runs))),
                    on_overrun,
                },
            },
        }
    }

    /// Running past it fails the run (`on_overrun: fail`).
    pub fn fails_run(&self) -> bool {
        self.on_overrun == OnOverrun::Fail
    }

    /// The duration past which the step is flagged.
    pub fn limit(&self) -> Option<Duration> {
        self.secs
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
    }
}

mod on_overrun {
    use crate::job::model::OnOverrun;

    pub(super) fn serialize<S: serde::Serializer>(v: &OnOverrun, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<OnOverrun, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usual(secs: u64, runs: u32) -> Option<Usual> {
        Some(Usual {
            median: Duration::from_secs(secs),
            runs,
        })
    }

    #[test]
    fn auto_learns_from_the_local_history_first_then_the_service_and_needs_three_runs() {
        let auto = |l, s| Expected::resolve(ExpectedDuration::Auto, OnOverrun::Warn, l, s);
        let local = auto(usual(600, 4), usual(60, 5));
        assert_eq!(
            (local.from, local.secs, local.runs),
            (ExpectedFrom::History, Some(900.0), Some(4))
        );
        let service = auto(usual(600, 2), usual(60, 5));
        assert_eq!(
            (service.from, service.secs),
            (ExpectedFrom::Service, Some(90.0))
        );
        let none = auto(usual(600, 2), usual(60, 1));
        assert_eq!(
            (none.from, none.secs, none.runs),
            (ExpectedFrom::None, None, Some(2))
        );
        assert_eq!(none.limit(), None);
    }

    #[test]
    fn a_stated_duration_is_kept_as_written() {
        let e = Expected::resolve(
            ExpectedDuration::Stated(Duration::from_secs(1800)),
            OnOverrun::Fail,
            usual(5, 10),
            None,
        );
        assert_eq!(
            (e.from, e.limit()),
            (ExpectedFrom::Stated, Some(Duration::from_secs(1800)))
        );
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["on_overrun"], "fail");
        assert_eq!(json["from"], "stated");
    }
}
