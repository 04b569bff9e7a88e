//! The type-specific part of a step: one builder per step type.

use indexmap::IndexMap;
use serde_saphyr::Location;

use super::Checker;
use crate::job::Code;
use crate::job::model::{
    CommitMode, DataflowStep, DatasetStep, EnhancedRefresh, ExecuteOption, ExportFormat,
    ExportSpec, Generation, HeaderValue, NotifyOption, ProcessType, RefreshObject, RefreshType,
    ReportStep, SasFlowStep, StepKind, WaitFor, WebhookFormat, WebhookStep,
};
use crate::job::raw::{
    RawCommitMode, RawExecuteOption, RawNotify, RawProcessType, RawRefresh, RawRefreshType,
    RawStep, RawWebhookFormat, Sp,
};
use crate::suggest::hint_for;

/// The enhanced refresh `timeout` is sent as `hh:mm:ss` and must stay under a day.
const MAX_SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600 - 1);

/// A required key of the step's type.
pub(super) fn required<'s>(
    c: &mut Checker<'_>,
    step: &Sp<RawStep>,
    v: &'s Option<Sp<String>>,
    key: &str,
    hint: &str,
) -> Option<&'s Sp<String>> {
    if v.is_none() {
        let ty = step.get().step_type.get().name();
        c.missing_key(
            step.get().step_type.loc(),
            key,
            format!("a `{ty}` step needs `{key}`"),
            &format!("`{key}:` missing ({hint})"),
        );
    }
    v.as_ref()
}

/// A shell-style `$NAME` (upper case, as environment variables are written), which a job
/// file does not expand: `${env.NAME}` does.
fn shell_variable(s: &str) -> Option<&str> {
    s.match_indices('$').find_map(|(i, _)| {
        let rest = &s[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        (name.len() >= 2 && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_'))
            .then_some(name)
    })
}

fn url(c: &mut Checker<'_>, v: &Sp<String>) -> String {
    let s = c.non_empty(v, "url");
    if let Some(name) = shell_variable(&s) {
        c.error_help(
            Code::ShellSyntax,
            v.loc(),
            format!("`${name}` is shell syntax, which a job file does not expand"),
            "shell variable",
            Some(format!(
                "write `${{env.{name}}}` to read the environment variable `{name}`"
            )),
        );
        return s;
    }
    if !s.contains("${") {
        match url::Url::parse(&s) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && is_loopback(&u) => {}
            Ok(u) if u.scheme() == "http" => c.error(
                Code::InsecureUrl,
                v.loc(),
                "plain `http://` is refused except for loopback addresses",
                "use https",
            ),
            Ok(u) => c.error(
                Code::InvalidUrl,
                v.loc(),
                format!("unsupported URL scheme `{}`", u.scheme()),
                "use https",
            ),
            Err(e) => c.error(
                Code::InvalidUrl,
                v.loc(),
                format!("invalid URL: {e}"),
                "not a URL",
            ),
        }
    }
    s
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The HTTP part shared by `sas_flow` and `webhook`.
struct Http {
    url: String,
    method: String,
    headers: IndexMap<String, HeaderValue>,
    body: Option<serde_json::Value>,
    expect_status: Vec<u16>,
}

fn http(c: &mut Checker<'_>, step: &Sp<RawStep>, allow_run: bool) -> Option<Http> {
    let raw = step.get();
    let url_v = required(
        c,
        step,
        &raw.url,
        "url",
        "use `${env.NAME}`: the URL is a secret",
    );
    let url = url_v.map(|v| url(c, v));
    let method = match &raw.method {
        Some(m) => {
            let up = m.get().trim().to_ascii_uppercase();
            if !matches!(up.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                c.error(
                    Code::InvalidValue,
                    m.loc(),
                    format!("unsupported HTTP method `{}`", m.get()),
                    "GET, POST, PUT, PATCH or DELETE",
                );
            }
            up
        }
        None => "POST".to_string(),
    };
    let mut headers = IndexMap::new();
    for (k, v) in raw.headers.iter().flat_map(|h| h.get().iter()) {
        let value = c.text(v);
        let value = if crate::secret::is_credential_header(k) {
            HeaderValue::Secret(crate::secret::Secret::new(value))
        } else {
            HeaderValue::Plain(value)
        };
        headers.insert(k.clone(), value);
    }
    let body = raw
        .body
        .as_ref()
        .map(|b| c.json(b.get(), b.loc(), allow_run));
    let mut expect_status = Vec::new();
    for s in raw.expect_status.iter().flat_map(|s| s.get().iter()) {
        if let Some(n) = c.bounded(s, "expect_status", 100, 599) {
            expect_status.push(u16::try_from(n).unwrap_or(200));
        }
    }
    Some(Http {
        url: url?,
        method,
        headers,
        body,
        expect_status,
    })
}

pub(super) fn sas_flow(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let h = http(c, step, false);
    let wait_for = step.get().wait_for.as_ref().map(|w| {
        let w = w.get();
        WaitFor {
            workspace: c.workspace(&w.workspace),
            dataflow: c.non_empty(&w.dataflow, "dataflow"),
        }
    });
    let h = h?;
    Some(StepKind::SasFlow(SasFlowStep {
        url: crate::secret::Secret::new(h.url),
        method: h.method,
        headers: h.headers,
        body: h.body,
        expect_status: h.expect_status,
        wait_for,
        oauth: step.get().oauth.as_ref().is_some_and(|v| *v.get()),
    }))
}

pub(super) fn webhook(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let h = http(c, step, true);
    let format = match raw.format.as_ref() {
        None => WebhookFormat::Plain,
        Some(f) => {
            let format = match f.get() {
                RawWebhookFormat::Plain => WebhookFormat::Plain,
                RawWebhookFormat::Teams => WebhookFormat::Teams,
                RawWebhookFormat::Slack => WebhookFormat::Slack,
            };
            if let Some(b) = &raw.body {
                c.error_help(Code::ConflictingKeys,
                    b.loc(),
                    "a webhook step has both `body` and `format`",
                    "`format` builds the body",
                    Some("remove `body` to send the ready payload, or `format` to send your own body".into()),
                );
            }
            if let Some(h) = &h
                && h.method != "POST"
            {
                c.error_help(
                    Code::NotApplicable,
                    f.loc(),
                    format!(
                        "`format` sends a JSON body, which `{}` does not carry",
                        h.method
                    ),
                    "needs `method: POST`",
                    Some("remove `method`: POST is the default".into()),
                );
            }
            format
        }
    };
    let link = raw.link.as_ref().map(|l| {
        if format == WebhookFormat::Plain {
            c.error_help(
                Code::NotApplicable,
                l.loc(),
                "`link` is shown only by `format: teams` or `format: slack`",
                "no place for it in a plain body",
                Some("add `format: teams` or `format: slack`".into()),
            );
        }
        let s = c.interpolate(l.get(), l.loc(), true);
        if s.trim().is_empty() {
            c.error(Code::EmptyValue, l.loc(), "`link` is empty", "empty value");
        } else if !s.contains("${") {
            match url::Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "https" | "http") => {}
                _ => c.error(
                    Code::InvalidUrl,
                    l.loc(),
                    format!("`{s}` is not an http(s) URL"),
                    "not a link",
                ),
            }
        }
        s
    });
    let h = h?;
    Some(StepKind::Webhook(WebhookStep {
        url: crate::secret::Secret::new(h.url),
        method: h.method,
        headers: h.headers,
        body: h.body,
        expect_status: h.expect_status,
        format,
        link,
    }))
}

pub(super) fn workspace(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<String> {
    required(
        c,
        step,
        &step.get().workspace,
        "workspace",
        "alias, name or GUID",
    )
    .map(|v| c.workspace(v))
}

fn not_for(c: &mut Checker<'_>, loc: Location, key: &str, which: &str) {
    c.error(
        Code::NotApplicable,
        loc,
        format!("`{key}` applies to {which} only"),
        "not for this step",
    );
}

pub(super) fn dataflow(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let workspace = workspace(c, step);
    let dataflow = required(c, step, &raw.dataflow, "dataflow", "name or GUID")
        .map(|v| c.non_empty(v, "dataflow"));
    let generation = match &raw.generation {
        None => Generation::Gen1,
        Some(g) => match *g.get() {
            1 => Generation::Gen1,
            2 => Generation::Gen2,
            n => {
                c.error(
                    Code::InvalidValue,
                    g.loc(),
                    format!("`generation` must be 1 or 2, not {n}"),
                    "1 or 2",
                );
                Generation::Gen1
            }
        },
    };
    let gen2 = generation == Generation::Gen2;
    let notify = match &raw.notify {
        None => NotifyOption::NoNotification,
        Some(n) if gen2 => {
            not_for(c, n.loc(), "notify", "Gen1 dataflows");
            NotifyOption::NoNotification
        }
        Some(n) => match n.get() {
            RawNotify::NoNotification => NotifyOption::NoNotification,
            RawNotify::MailOnFailure => NotifyOption::MailOnFailure,
            RawNotify::MailOnCompletion => {
                c.error(
                    Code::InvalidValue,
                    n.loc(),
                    "dataflows support `no_notification` or `mail_on_failure`",
                    "not for dataflows",
                );
                NotifyOption::NoNotification
            }
        },
    };
    let process_type = raw.process_type.as_ref().map(|p| {
        if gen2 {
            not_for(c, p.loc(), "process_type", "Gen1 dataflows");
        }
        match p.get() {
            RawProcessType::Default => ProcessType::Default,
            RawProcessType::ProcessFull => ProcessType::ProcessFull,
        }
    });
    let execute_option = raw.execute_option.as_ref().map(|e| {
        if !gen2 {
            not_for(
                c,
                e.loc(),
                "execute_option",
                "Gen2 dataflows (`generation: 2`)",
            );
        }
        match e.get() {
            RawExecuteOption::SkipApplyChanges => ExecuteOption::SkipApplyChanges,
            RawExecuteOption::ApplyChangesIfNeeded => ExecuteOption::ApplyChangesIfNeeded,
        }
    });
    let mut parameters = IndexMap::new();
    if let Some(p) = &raw.parameters {
        if !gen2 {
            not_for(c, p.loc(), "parameters", "Gen2 dataflows (`generation: 2`)");
        }
        for (k, v) in p.get() {
            parameters.insert(k.clone(), c.json(v, p.loc(), false));
        }
    }
    Some(StepKind::Dataflow(DataflowStep {
        workspace: workspace?,
        dataflow: dataflow?,
        generation,
        notify,
        process_type,
        execute_option,
        parameters,
    }))
}

pub(super) fn dataset(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let workspace = workspace(c, step);
    let dataset = required(c, step, &raw.dataset, "dataset", "name or GUID")
        .map(|v| c.non_empty(v, "dataset"));
    let notify = match &raw.notify {
        None => NotifyOption::NoNotification,
        Some(n) => {
            if raw.refresh.is_some() {
                c.error_help(Code::NotApplicable,
                    n.loc(),
                    "`notify` applies to standard refreshes only",
                    "not with `refresh:`",
                    Some("an enhanced refresh (`refresh:`) sends no notification; remove one of them".into()),
                );
            }
            match n.get() {
                RawNotify::NoNotification => NotifyOption::NoNotification,
                RawNotify::MailOnFailure => NotifyOption::MailOnFailure,
                RawNotify::MailOnCompletion => NotifyOption::MailOnCompletion,
            }
        }
    };
    let refresh = raw.refresh.as_ref().map(|r| refresh(c, r.get()));
    Some(StepKind::Dataset(DatasetStep {
        workspace: workspace?,
        dataset: dataset?,
        notify,
        refresh,
    }))
}

fn refresh(c: &mut Checker<'_>, r: &RawRefresh) -> EnhancedRefresh {
    let mut objects = Vec::new();
    for o in r.objects.iter().flatten() {
        let o = o.get();
        objects.push(RefreshObject {
            table: c.non_empty(&o.table, "table"),
            partition: o.partition.as_ref().map(|p| c.non_empty(p, "partition")),
        });
    }
    if let Some(d) = &r.effective_date {
        let s = d.get().trim();
        let ok = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
            || chrono::DateTime::parse_from_rfc3339(s).is_ok();
        if !ok {
            c.error(
                Code::InvalidValue,
                d.loc(),
                format!("invalid `effective_date` `{s}`"),
                "expected YYYY-MM-DD or an RFC 3339 date-time",
            );
        }
    }
    EnhancedRefresh {
        refresh_type: r.refresh_type.as_ref().map(|t| match t.get() {
            RawRefreshType::Full => RefreshType::Full,
            RawRefreshType::ClearValues => RefreshType::ClearValues,
            RawRefreshType::Calculate => RefreshType::Calculate,
            RawRefreshType::DataOnly => RefreshType::DataOnly,
            RawRefreshType::Automatic => RefreshType::Automatic,
            RawRefreshType::Defragment => RefreshType::Defragment,
        }),
        commit_mode: r.commit_mode.as_ref().map(|m| match m.get() {
            RawCommitMode::Transactional => CommitMode::Transactional,
            RawCommitMode::PartialBatch => CommitMode::PartialBatch,
        }),
        objects,
        apply_refresh_policy: r.apply_refresh_policy,
        effective_date: r
            .effective_date
            .as_ref()
            .map(|d| d.get().trim().to_string()),
        max_parallelism: r
            .max_parallelism
            .as_ref()
            .and_then(|v| c.bounded(v, "max_parallelism", 1, 10_000)),
        retry_count: r
            .retry_count
            .as_ref()
            .and_then(|v| c.bounded(v, "retry_count", 0, 100)),
        timeout: r
            .timeout
            .as_ref()
            .and_then(|v| c.duration(v, "refresh.timeout", MAX_SERVICE_TIMEOUT)),
    }
}

/// Every export format, by wire name.
const FORMATS: [ExportFormat; 10] = [
    ExportFormat::Pdf,
    ExportFormat::Pptx,
    ExportFormat::Png,
    ExportFormat::Image,
    ExportFormat::Xlsx,
    ExportFormat::Docx,
    ExportFormat::Csv,
    ExportFormat::Xml,
    ExportFormat::Mhtml,
    ExportFormat::Accessiblepdf,
];

pub(super) fn report(c: &mut Checker<'_>, step: &Sp<RawStep>) -> Option<StepKind> {
    let raw = step.get();
    let workspace = workspace(c, step);
    let report =
        required(c, step, &raw.report, "report", "name or GUID").map(|v| c.non_empty(v, "report"));
    let Some(export) = &raw.export else {
        c.missing_key(
            raw.step_type.loc(),
            "export",
            "a `report` step needs `export`",
            "`export:` missing ({ format, path })",
        );
        return None;
    };
    let e = export.get();
    let wanted = e.format.get().trim().to_ascii_uppercase();
    let format = FORMATS.iter().copied().find(|f| f.as_str() == wanted);
    if format.is_none() {
        let help = hint_for(&wanted, FORMATS.iter().map(|f| f.as_str())).or_else(|| {
            Some(format!(
                "expected one of: {}",
                FORMATS
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
        c.error_help(
            Code::InvalidValue,
            e.format.loc(),
            format!("invalid export format `{}`", e.format.get()),
            "unknown format",
            help,
        );
    }
    let path = c.non_empty(&e.path, "export.path");
    let pages = e
        .pages
        .iter()
        .flatten()
        .map(|p| c.non_empty(p, "page"))
        .collect();
    let bookmark = e.bookmark.as_ref().map(|b| c.text(b));
    let mut parameters = IndexMap::new();
    for (k, v) in e.parameters.iter().flatten() {
        parameters.insert(k.clone(), c.text(v));
    }
    let locale = e.locale.as_ref().map(|l| c.text(l));
    let filter = e.filter.as_ref().map(|f| c.non_empty(f, "export.filter"));
    if let (Some(f), Some(p)) = (&e.filter, &e.parameters)
        && !p.is_empty()
    {
        c.error_help(Code::ConflictingKeys,
            f.loc(),
            "`export.filter` and `export.parameters` in one export",
            "a filter is for Power BI reports",
            Some("parameters are for paginated reports, a report-level filter for Power BI reports: keep the one of this report's kind".into()),
        );
    }
    if let (Some(f), Some(format)) = (&e.filter, format)
        && format.paginated_only()
    {
        c.error_help(Code::NotApplicable,
            f.loc(),
            format!(
                "`export.filter` with format {}: only paginated reports export to it, and they take no filter",
                format.as_str()
            ),
            "a filter is for Power BI reports",
            Some("filter a paginated report with `parameters`".into()),
        );
    }
    let identities = e
        .identities
        .as_ref()
        .map(|list| super::burst::identities(c, list))
        .unwrap_or_default();
    Some(StepKind::Report(ReportStep {
        workspace: workspace?,
        report: report?,
        export: ExportSpec {
            format: format?,
            path: path.into(),
            pages,
            bookmark,
            parameters,
            locale,
            include_hidden_pages: e.include_hidden_pages,
            filter,
            identities,
        },
    }))
}
