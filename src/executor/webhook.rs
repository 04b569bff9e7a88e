//! `webhook`: one HTTP call (Teams / Slack incoming webhook or any endpoint) whose JSON body
//! may carry the run so far. Without a body it sends `{"text": "<run summary>"}`, which both
//! Teams and Slack incoming webhooks accept.

use reqwest::Method;
use serde_json::{Value, json};

use super::common::{Stop, conclude, guard_raw};
use super::payload;
use super::sas_flow::{build_headers, status_ok};
use super::{AttemptContext, AttemptOutcome, RunView};
use crate::event::AttemptUpdate;
use crate::job::model::{WebhookFormat, WebhookStep};
use crate::powerbi::PowerBiClient;
use crate::powerbi::errors::parse_error_body;
use crate::powerbi::http::{Body, HttpRequest, RetryMode};
use crate::secret::redact_url;

/// Replaces `${run.job}`, `${run.status}`, `${run.id}`, `${run.summary}`,
/// `${run.started_at}` and `${steps.<id>.status|attempts|duration_secs}` in one string. A step
/// without a final status yet reads `pending`, with 0 attempts and 0 seconds.
pub(crate) fn render_str(s: &str, view: &RunView) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match lookup(key, view) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn lookup(key: &str, view: &RunView) -> Option<String> {
    match key {
        "run.job" => Some(view.job.clone()),
        "run.status" => Some(view.status.clone()),
        "run.id" => Some(view.run_id.clone()),
        "run.summary" => Some(view.summary.clone()),
        "run.started_at" => Some(view.started_at.clone()),
        _ => {
            let (id, field) = key.strip_prefix("steps.")?.rsplit_once('.')?;
            let stats = view.stats.iter().find(|(s, _, _)| s == id);
            match field {
                "status" => Some(
                    view.steps
                        .iter()
                        .find(|(s, _)| s == id)
                        .map(|(_, st)| st.as_str().to_string())
                        .unwrap_or_else(|| "pending".to_string()),
                ),
                "attempts" => Some(stats.map_or(0, |(_, n, _)| *n).to_string()),
                // One decimal, as the summary table shows durations.
                "duration_secs" => Some(format!("{:.1}", stats.map_or(0.0, |(_, _, d)| *d))),
                _ => None,
            }
        }
    }
}

/// Renders every string of a JSON body (keys included).
pub(crate) fn render_body(body: &Value, view: &RunView) -> Value {
    match body {
        Value::String(s) => Value::String(render_str(s, view)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render_body(v, view)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (render_str(k, view), render_body(v, view)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The body sent: the step's, rendered, or the ready payload of its `format` (by default
/// `{"text": summary}`).
pub(crate) fn webhook_body(step: &WebhookStep, view: &RunView) -> Value {
    let link = step.link.as_deref().map(|l| render_str(l, view));
    match (&step.body, step.format) {
        (Some(b), _) => render_body(b, view),
        (None, WebhookFormat::Plain) => json!({ "text": view.summary }),
        (None, WebhookFormat::Teams) => payload::teams_card(view, link.as_deref()),
        (None, WebhookFormat::Slack) => payload::slack_message(view, link.as_deref()),
    }
}

/// Runs one attempt of a webhook step.
pub(crate) async fn run(
    client: PowerBiClient,
    ctx: AttemptContext,
    w: WebhookStep,
) -> AttemptOutcome {
    let result = attempt(&client, &ctx, &w).await;
    conclude(&client, &ctx, result, None).await
}

async fn attempt(
    client: &PowerBiClient,
    ctx: &AttemptContext,
    w: &WebhookStep,
) -> Result<AttemptOutcome, Stop> {
    let shown = redact_url(w.url.expose());
    let url = url::Url::parse(w.url.expose())
        .map_err(|_| Stop::Failed(format!("invalid webhook url {shown}")))?;
    let method = Method::from_bytes(w.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Stop::Failed(format!("invalid method `{}`", w.method)))?;
    // A notification sent twice beats one lost: webhooks are retried on 5xx and timeouts too.
    let mut req = HttpRequest::new(method.clone(), url, RetryMode::Idempotent);
    req.headers = build_headers(&w.headers).map_err(Stop::Failed)?;
    if method != Method::GET && method != Method::HEAD {
        req.body = Body::Json(webhook_body(w, &ctx.run_view));
    }
    let resp = guard_raw(&ctx.cancel, client.send_plain(&req))
        .await?
        .map_err(Stop::from)?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if !status_ok(status, &w.expect_status) {
        let info = parse_error_body(&text);
        return Err(Stop::Failed(format!(
            "webhook {shown} answered {status}{}",
            if info.message.is_empty() {
                String::new()
            } else {
                format!(": {}", info.message)
            }
        )));
    }
    ctx.update(AttemptUpdate {
        remote_status: Some(status.to_string()),
        ..AttemptUpdate::default()
    });
    Ok(AttemptOutcome::Succeeded { adopted: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StepStatus;
    use crate::secret::Secret;
    use indexmap::IndexMap;

    fn view() -> RunView {
        RunView {
            run_id: "r1".into(),
            job: "order_list".into(),
            status: "failed".into(),
            summary: "order_list: 1 succeeded, 1 failed (model)".into(),
            steps: vec![("model".into(), StepStatus::Failed)],
            started_at: "2026-12-06T02:00:00Z".into(),
            stats: vec![("model".into(), 3, 42.26)],
            ..RunView::default()
        }
    }

    #[test]
    fn run_start_attempts_and_durations_are_filled() {
        let v = view();
        assert_eq!(
            render_str(
                "${run.started_at} ${steps.model.attempts}x ${steps.model.duration_secs}s ${steps.later.attempts} ${steps.later.duration_secs} ${steps.model.nope}",
                &v
            ),
            "2026-12-06T02:00:00Z 3x 42.3s 0 0.0 ${steps.model.nope}"
        );
    }

    #[test]
    fn placeholders_are_filled() {
        let v = view();
        assert_eq!(
            render_str(
                "${run.job} ${run.id} is ${run.status}: ${steps.model.status}, ${steps.other.status} ${unknown} $x ${",
                &v
            ),
            "order_list r1 is failed: failed, pending ${unknown} $x ${"
        );
    }

    #[test]
    fn default_body_is_a_text_message() {
        let step = WebhookStep {
            url: Secret::new("https://example.com/hook"),
            method: "POST".into(),
            headers: IndexMap::new(),
            body: None,
            expect_status: vec![],
            format: WebhookFormat::Plain,
            link: None,
        };
        assert_eq!(
            webhook_body(&step, &view()),
            json!({"text": "order_list: 1 succeeded, 1 failed (model)"})
        );
        let step = WebhookStep {
            body: Some(json!({"title": "${run.job}", "facts": [{"v": "${run.summary}"}], "n": 1})),
            ..step
        };
        assert_eq!(
            webhook_body(&step, &view()),
            json!({"title": "order_list", "facts": [{"v": "order_list: 1 succeeded, 1 failed (model)"}], "n": 1})
        );
    }
}
