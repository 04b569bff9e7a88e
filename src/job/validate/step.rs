//! One step: common settings (after `defaults:`), then the part of its type.

use std::time::Duration;

use indexmap::IndexMap;

use super::{Checker, MAX_DURATION, is_step_id, kinds};
use crate::job::Code;
use crate::job::keys::{
    applies_to, needs_wait_for, present_type_keys, type_keys, types_with_key, watches_remote_run,
};
use crate::job::model::{Connection, ExpectedDuration, IfRunning, OnOverrun, Step, TriggerRule};
use crate::job::raw::{
    RawDefaults, RawIfRunning, RawOnOverrun, RawRetries, RawStep, RawStepType, RawTrigger, Sp,
};
use crate::suggest::hint_for;

/// Built-in defaults (documented in the JSON Schema descriptions).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(30);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(600);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

/// `defaults:` after validation, with the built-in values filled in.
pub(super) struct Defaults {
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_backoff: Duration,
    poll_interval: Duration,
    if_running: IfRunning,
    connection: String,
    expected_duration: Option<ExpectedDuration>,
    on_overrun: Option<OnOverrun>,
}

/// Retries as written: count and optional backoff settings of the long form.
struct Retries {
    count: Option<u32>,
    backoff: Option<Duration>,
    max_backoff: Option<Duration>,
}

fn retries(c: &mut Checker<'_>, v: &Sp<RawRetries>) -> Retries {
    match v.get() {
        RawRetries::Count(n) => {
            let n = Sp(serde_saphyr::Spanned::new(*n, v.loc(), v.loc()));
            Retries {
                count: c.bounded(&n, "retries", 0, 100),
                backoff: None,
                max_backoff: None,
            }
        }
        RawRetries::Long(l) => Retries {
            count: c.bounded(&l.count, "retries.count", 0, 100),
            backoff: l
                .backoff
                .as_ref()
                .and_then(|b| c.duration(b, "retries.backoff", MAX_DURATION)),
            max_backoff: l
                .max_backoff
                .as_ref()
                .and_then(|b| c.duration(b, "retries.max_backoff", MAX_DURATION)),
        },
    }
}

/// Merges `retries` long-form settings with `retry_backoff` / `max_backoff`, refusing both.
fn backoff(
    c: &mut Checker<'_>,
    long: Option<Duration>,
    plain: &Option<Sp<String>>,
    key: &str,
    long_key: &str,
) -> Option<Duration> {
    let plain_value = plain
        .as_ref()
        .and_then(|v| c.duration(v, key, MAX_DURATION));
    if let (Some(_), Some(p)) = (long, plain) {
        c.error(
            Code::ConflictingKeys,
            p.loc(),
            format!("`{key}` is also set by `retries.{long_key}`"),
            "set it in one place",
        );
    }
    long.or(plain_value)
}

fn if_running(v: RawIfRunning) -> IfRunning {
    match v {
        RawIfRunning::Wait => IfRunning::Wait,
        RawIfRunning::Adopt => IfRunning::Adopt,
        RawIfRunning::Fail => IfRunning::Fail,
        RawIfRunning::Restart => IfRunning::Restart,
    }
}

impl Defaults {
    pub(super) fn from_raw(
        c: &mut Checker<'_>,
        raw: Option<&RawDefaults>,
        connections: &IndexMap<String, Connection>,
    ) -> Defaults {
        let mut d = Defaults {
            timeout: DEFAULT_TIMEOUT,
            retries: 0,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            poll_interval: DEFAULT_POLL_INTERVAL,
            if_running: IfRunning::Wait,
            connection: "default".into(),
            expected_duration: None,
            on_overrun: None,
        };
        let Some(raw) = raw else {
            return d;
        };
        if let Some(t) = raw
            .timeout
            .as_ref()
            .and_then(|v| c.duration(v, "timeout", MAX_DURATION))
        {
            d.timeout = t;
        }
        let r = raw.retries.as_ref().map(|v| retries(c, v));
        if let Some(n) = r.as_ref().and_then(|r| r.count) {
            d.retries = n;
        }
        let long_backoff = r.as_ref().and_then(|r| r.backoff);
        let long_max = r.as_ref().and_then(|r| r.max_backoff);
        if let Some(b) = backoff(
            c,
            long_backoff,
            &raw.retry_backoff,
            "retry_backoff",
            "backoff",
        ) {
            d.retry_backoff = b;
        }
        if let Some(b) = backoff(c, long_max, &raw.max_backoff, "max_backoff", "max_backoff") {
            d.max_backoff = b;
        }
        if let Some(p) = raw
            .poll_interval
            .as_ref()
            .and_then(|v| c.duration(v, "poll_interval", MAX_DURATION))
        {
            d.poll_interval = p;
        }
        if let Some(v) = &raw.if_running {
            d.if_running = if_running(*v.get());
        }
        if let Some(v) = &raw.connection {
            check_connection(c, v, connections);
            d.connection = v.get().clone();
        }
        d.expected_duration = raw
            .expected_duration
            .as_ref()
            .and_then(|v| expected_duration(c, v));
        // `on_overrun` alone under `defaults:` is fine: it reaches the steps that state
        // their own `expected_duration`.
        d.on_overrun = raw.on_overrun.as_ref().map(|v| on_overrun(*v.get()));
        d
    }
}

fn on_overrun(v: RawOnOverrun) -> OnOverrun {
    match v {
        RawOnOverrun::Warn => OnOverrun::Warn,
        RawOnOverrun::Fail => OnOverrun::Fail,
    }
}

/// `expected_duration`: `auto` or a humantime duration.
fn expected_duration(c: &mut Checker<'_>, v: &Sp<String>) -> Option<ExpectedDuration> {
    if v.get().trim() == "auto" {
        return Some(ExpectedDuration::Auto);
    }
    if humantime::parse_duration(v.get().trim()).is_err() && !v.get().contains("${") {
        let text = v.get();
        c.error_help(
            Code::InvalidDuration,
            v.loc(),
            format!("invalid `expected_duration` `{text}`: neither a duration nor `auto`"),
            "not a duration",
            Some("write a duration (`45m`, `1h 30m`) or `auto` (learned from past runs)".into()),
        );
        return None;
    }
    c.duration(v, "expected_duration", MAX_DURATION)
        .map(ExpectedDuration::Stated)
}

/// `on_overrun` where no `expected_duration` applies: it could never act.
fn overrun_without_expectation(c: &mut Checker<'_>, v: &Sp<RawOnOverrun>) {
    c.error_help(
        Code::NotApplicable,
        v.loc(),
        "`on_overrun` does nothing without `expected_duration`",
        "no expected duration",
        Some("add `expected_duration: 45m` (or `auto`) next to it or under `defaults:`".into()),
    );
}

/// A stated expected duration the step can never reach: its attempts all end (time out)
/// sooner, backoffs included.
fn unreachable_expectation(
    c: &mut Checker<'_>,
    v: &Sp<String>,
    expected: Duration,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
) {
    let mut longest = timeout;
    let mut pause = backoff;
    for _ in 0..retries {
        longest = longest
            .saturating_add(timeout)
            .saturating_add(pause.min(max_backoff));
        pause = pause.saturating_mul(2);
        if longest >= expected {
            return;
        }
    }
    if expected > longest {
        let (off, len) = c.span(v.loc());
        c.warnings.push_at(
            crate::job::diag::Severity::Warning,
            Code::OutOfRange,
            off,
            len,
            format!(
                "`expected_duration` {} is never reached: the step ends within {} (timeout {} × {} attempt(s), backoffs included)",
                humantime::format_duration(expected),
                humantime::format_duration(longest),
                humantime::format_duration(timeout),
                retries + 1
            ),
            Some("longer than the step can run".into()),
            Some("lower it, or raise `timeout`".into()),
        );
    }
}

fn check_connection(
    c: &mut Checker<'_>,
    v: &Sp<String>,
    connections: &IndexMap<String, Connection>,
) {
    if !connections.contains_key(v.get()) {
        let help = hint_for(v.get(), connections.keys().map(String::as_str));
        c.error_help(
            Code::UnknownConnection,
            v.loc(),
            format!("unknown connection `{}`", v.get()),
            "not under `connections:`",
            help,
        );
    }
}

/// Validates one step; `None` when its type-specific part is unusable (errors recorded).
pub(super) fn build(
    c: &mut Checker<'_>,
    id: &Sp<String>,
    step: &Sp<RawStep>,
    defaults: &Defaults,
    connections: &IndexMap<String, Connection>,
    pools: &IndexMap<String, u32>,
) -> Option<Step> {
    let raw = step.get();
    let ty = *raw.step_type.get();
    if !is_step_id(id.get()) {
        c.error(
            Code::InvalidName,
            id.loc(),
            format!("invalid step id `{}`", id.get()),
            "use letters, digits, `_` and `-`, starting with a letter or `_`",
        );
    }
    let has_wait_for = raw.wait_for.is_some();
    let has_oauth = raw.oauth.as_ref().is_some_and(|v| *v.get());
    for (key, loc) in present_type_keys(raw) {
        let (message, label) = if !type_keys(ty).contains(&key) {
            (
                format!("`{key}` is not a key of a `{}` step", ty.name()),
                format!("not a `{}` key", ty.name()),
            )
        } else if ty == RawStepType::SasFlow
            && needs_wait_for(key)
            && !has_wait_for
            && !(key == "connection" && has_oauth)
        {
            let why = if key == "connection" {
                "no Power BI call (nor flow token) without `wait_for` or `oauth: true`"
            } else {
                "nothing is watched without `wait_for`"
            };
            (
                format!("`{key}` is not a key of a `sas_flow` step without `wait_for`"),
                why.to_string(),
            )
        } else {
            continue;
        };
        let help = match applies_to(key) {
            Some(where_) => format!("`{key}` applies to {where_}"),
            None => format!("`{key}` belongs to: {}", types_with_key(key).join(", ")),
        };
        c.error_help(Code::NotApplicable, loc, message, &label, Some(help));
    }
    // `poll_interval` and `if_running` (from `defaults:` too) apply only to a step that
    // watches a remote run; any other step keeps the built-in values, which nothing reads
    // except the export poll of a `report` (bounded by the service's `Retry-After`).
    let watches = watches_remote_run(ty, has_wait_for);

    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|v| c.duration(v, "timeout", MAX_DURATION))
        .unwrap_or(defaults.timeout);
    let r = raw.retries.as_ref().map(|v| retries(c, v));
    let retries_n = r.as_ref().and_then(|r| r.count).unwrap_or(defaults.retries);
    let retry_backoff = backoff(
        c,
        r.as_ref().and_then(|r| r.backoff),
        &raw.retry_backoff,
        "retry_backoff",
        "backoff",
    )
    .unwrap_or(defaults.retry_backoff);
    let max_backoff = backoff(
        c,
        r.as_ref().and_then(|r| r.max_backoff),
        &raw.max_backoff,
        "max_backoff",
        "max_backoff",
    )
    .unwrap_or(defaults.max_backoff);
    // A capacity step watches its ARM operation, but no run of another caller can be
    // running on it: `poll_interval` applies, `if_running` does not.
    let poll_interval = if watches || ty == RawStepType::Capacity {
        raw.poll_interval
            .as_ref()
            .and_then(|v| c.duration(v, "poll_interval", MAX_DURATION))
            .unwrap_or(defaults.poll_interval)
    } else {
        DEFAULT_POLL_INTERVAL
    };
    let skip_if_fresh = raw
        .skip_if_fresh
        .as_ref()
        .and_then(|v| c.duration(v, "skip_if_fresh", MAX_DURATION));
    let expected = match &raw.expected_duration {
        Some(v) => {
            let e = expected_duration(c, v);
            if let Some(ExpectedDuration::Stated(d)) = e {
                unreachable_expectation(c, v, d, timeout, retries_n, retry_backoff, max_backoff);
            }
            e
        }
        None => defaults.expected_duration,
    };
    if let (Some(v), None, None) = (
        &raw.on_overrun,
        &raw.expected_duration,
        defaults.expected_duration,
    ) {
        overrun_without_expectation(c, v);
    }
    let on_overrun = raw
        .on_overrun
        .as_ref()
        .map(|v| on_overrun(*v.get()))
        .or(defaults.on_overrun)
        .unwrap_or_default();

    let pool = raw.pool.as_ref().map(|p| {
        if !pools.contains_key(p.get()) {
            let help = hint_for(p.get(), pools.keys().map(String::as_str));
            c.error_help(
                Code::UnknownPool,
                p.loc(),
                format!("unknown pool `{}`", p.get()),
                "not under `pools:`",
                help,
            );
        }
        p.get().clone()
    });
    let connection = match &raw.connection {
        Some(v) => {
            check_connection(c, v, connections);
            v.get().clone()
        }
        None => defaults.connection.clone(),
    };
    let mut tags = Vec::new();
    for t in raw.tags.iter().flatten() {
        let tag = t.get();
        if tag.is_empty() || tag.contains(char::is_whitespace) {
            c.error(
                Code::InvalidName,
                t.loc(),
                format!("invalid tag `{tag}`"),
                "no spaces; not empty",
            );
        }
        tags.push(tag.clone());
    }
    let when = raw.when.as_ref().map(|w| {
        super::expr::check(c, w, raw);
        w.get().clone()
    });

    let kind = match ty {
        RawStepType::SasFlow => kinds::sas_flow(c, step),
        RawStepType::Webhook => kinds::webhook(c, step),
        RawStepType::Dataflow => kinds::dataflow(c, step),
        RawStepType::Dataset => kinds::dataset(c, step),
        RawStepType::Report => kinds::report(c, step),
        RawStepType::FabricJob => super::fabric_job::fabric_job(c, step),
        RawStepType::Capacity => super::capacity::capacity(c, step),
        RawStepType::DataCheck => super::data_check::data_check(c, step),
        RawStepType::Freshness => super::freshness::freshness(c, step),
    }?;

    Some(Step {
        id: id.get().clone(),
        kind,
        depends_on: raw
            .depends_on
            .as_ref()
            .map(|d| d.get().iter().map(|s| s.get().clone()).collect())
            .unwrap_or_default(),
        trigger: match raw.trigger.as_ref().map(|t| *t.get()) {
            None | Some(RawTrigger::AllSuccess) => TriggerRule::AllSuccess,
            Some(RawTrigger::AllDone) => TriggerRule::AllDone,
            Some(RawTrigger::AllFailed) => TriggerRule::AllFailed,
            Some(RawTrigger::OneFailed) => TriggerRule::OneFailed,
            Some(RawTrigger::OneSuccess) => TriggerRule::OneSuccess,
            Some(RawTrigger::NoneFailed) => TriggerRule::NoneFailed,
            Some(RawTrigger::Always) => TriggerRule::Always,
        },
        when,
        pool,
        tags,
        connection,
        timeout,
        retries: retries_n,
        retry_backoff,
        max_backoff,
        poll_interval,
        if_running: if watches {
            raw.if_running
                .as_ref()
                .map_or(defaults.if_running, |v| if_running(*v.get()))
        } else {
            IfRunning::Wait
        },
        continue_on_error: raw.continue_on_error.as_ref().is_some_and(|v| *v.get()),
        skip_if_fresh,
        expected_duration: expected,
        on_overrun,
    })
}
