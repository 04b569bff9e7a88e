//! The ready payloads of a `webhook` step (`format: teams | slack`): a Teams Workflows
//! message carrying an Adaptive Card, and a Slack message with Block Kit blocks.
//!
//! Both are built from the [`RunView`] only: the run's status, counts, the first failed steps
//! with their errors (already redacted where they were made: errors never hold a secret),
//! the run id and the step's `link`. Nothing else of the job reaches them, so no URL, header
//! or credential can. Every piece of text is bounded so one long error cannot make the
//! message exceed what Teams or Slack accept.

use serde_json::{Value, json};

use super::RunView;
use crate::event::StepStatus;

/// The Adaptive Card version sent: 1.4 is what Teams renders on every client (desktop, web,
/// mobile) and what Microsoft's Workflows samples use.
pub(crate) const CARD_VERSION: &str = "1.4";

/// The attachment content type of an Adaptive Card.
pub(crate) const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// At most this many characters of one step's error are shown.
const ERROR_CHARS: usize = 300;

/// At most this many failed steps are listed (the rest are counted).
const FAILED_SHOWN: usize = 5;

/// `text` cut to `max` characters, with `…` when cut.
fn bounded(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The failed steps to list and how many more there are.
fn failed_steps(view: &RunView) -> (Vec<(String, String)>, usize) {
    let shown: Vec<(String, String)> = view
        .failures
        .iter()
        .take(FAILED_SHOWN)
        .map(|(id, status, error)| {
            let what = match (status, error.is_empty()) {
                (StepStatus::TimedOut, true) => "timed out".to_string(),
                (StepStatus::TimedOut, false) => {
                    format!("timed out: {}", bounded(error, ERROR_CHARS))
                }
                (_, true) => "failed".to_string(),
                (_, false) => bounded(error, ERROR_CHARS),
            };
            (id.clone(), what)
        })
        .collect();
    let failed_total: usize = view
        .counts
        .iter()
        .filter(|(s, _)| matches!(s, StepStatus::Failed | StepStatus::TimedOut))
        .map(|(_, n)| n)
        .sum();
    let more = failed_total.saturating_sub(shown.len());
    (shown, more)
}

/// The counts worth showing: every non-zero one, and `succeeded` and `failed` always.
fn shown_counts(view: &RunView) -> Vec<(&'static str, usize)> {
    view.counts
        .iter()
        .filter(|(s, n)| *n > 0 || matches!(s, StepStatus::Succeeded | StepStatus::Failed))
        .map(|(s, n)| (s.as_str(), *n))
        .collect()
}

fn headline(view: &RunView) -> String {
    format!("pbibatch: {} {}", view.job, view.status)
}

/// A Teams Workflows message: `{"type": "message", "attachments": [{"contentType":
/// "application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}`.
pub(crate) fn teams_card(view: &RunView, link: Option<&str>) -> Value {
    let color = match view.status.as_str() {
        "succeeded" => "Good",
        "failed" => "Attention",
        _ => "Default",
    };
    let mut facts = vec![json!({"title": "Run", "value": view.run_id})];
    if !view.started_at.is_empty() {
        facts.push(json!({"title": "Started", "value": view.started_at}));
    }
    for (status, n) in shown_counts(view) {
        facts.push(json!({"title": status.replace('_', " "), "value": n.to_string()}));
    }
    let mut body = vec![
        json!({"type": "TextBlock", "text": bounded(&headline(view), 150), "weight": "Bolder",
               "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": bounded(&view.summary, 500), "wrap": true,
               "isSubtle": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    let (failed, more) = failed_steps(view);
    if !failed.is_empty() {
        body.push(
            json!({"type": "TextBlock", "text": "Failed steps", "weight": "Bolder",
                         "wrap": true, "spacing": "Medium"}),
        );
        let facts: Vec<Value> = failed
            .into_iter()
            .map(|(id, what)| json!({"title": id, "value": what}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
        if more > 0 {
            body.push(
                json!({"type": "TextBlock", "text": format!("and {more} more"),
                             "wrap": true, "isSubtle": true}),
            );
        }
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    });
    if let Some(link) = link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open run", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": null, "content": card}],
    })
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped (they start links and mentions).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack message: `text` (the notification fallback) and Block Kit `blocks` (header,
/// summary, counts as fields, failed steps, a button for `link`).
pub(crate) fn slack_message(view: &RunView, link: Option<&str>) -> Value {
    let mut fields =
        vec![json!({"type": "mrkdwn", "text": format!("*Run*\n`{}`", slack_escape(&view.run_id))})];
    for (status, n) in shown_counts(view).into_iter().take(9) {
        fields.push(
            json!({"type": "mrkdwn", "text": format!("*{}*\n{n}", status.replace('_', " "))}),
        );
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": bounded(&headline(view), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&bounded(&view.summary, 500))}}),
        json!({"type": "section", "fields": fields}),
    ];
    let (failed, more) = failed_steps(view);
    if !failed.is_empty() {
        let mut text = String::from("*Failed steps*");
        for (id, what) in failed {
            text.push_str(&format!(
                "\n• `{}`: {}",
                slack_escape(&id),
                slack_escape(&what)
            ));
        }
        if more > 0 {
            text.push_str(&format!("\nand {more} more"));
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if let Some(link) = link {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": link}
        ]}));
    }
    json!({"text": bounded(&view.summary, 500), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> RunView {
        RunView {
            run_id: "r-1".into(),
            job: "order_list".into(),
            status: "failed".into(),
            summary: "order_list: 1 succeeded, 7 failed (a, b, c, d, e, ...), 0 skipped".into(),
            started_at: "2026-12-06T02:00:00Z".into(),
            counts: StepStatus::ALL
                .iter()
                .map(|s| {
                    (
                        *s,
                        if *s == StepStatus::Failed {
                            7
                        } else {
                            usize::from(*s == StepStatus::Succeeded)
                        },
                    )
                })
                .collect(),
            failures: (0..7)
                .map(|i| {
                    (
                        format!("s{i}"),
                        StepStatus::Failed,
                        format!("error <{i}> & {}", "x".repeat(400)),
                    )
                })
                .collect(),
            ..RunView::default()
        }
    }

    #[test]
    fn teams_card_lists_five_failures_bounded_and_counts_the_rest() {
        let card = teams_card(&view(), Some("https://kestra.example.com/r-1"));
        assert_eq!(card["type"], "message");
        let content = &card["attachments"][0]["content"];
        assert_eq!(card["attachments"][0]["contentType"], CARD_CONTENT_TYPE);
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["version"], "1.4");
        let body = content["body"].as_array().unwrap();
        let failed = &body[4]["facts"];
        assert_eq!(failed.as_array().unwrap().len(), 5);
        assert_eq!(failed[0]["title"], "s0");
        assert_eq!(
            failed[0]["value"].as_str().unwrap().chars().count(),
            ERROR_CHARS
        );
        assert_eq!(body[5]["text"], "and 2 more");
        assert_eq!(
            content["actions"][0]["url"],
            "https://kestra.example.com/r-1"
        );
        // Zero counts other than succeeded / failed are left out.
        let titles: Vec<&str> = body[2]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Run", "Started", "succeeded", "failed"]);
    }

    #[test]
    fn slack_message_escapes_mrkdwn_and_keeps_a_text_fallback() {
        let msg = slack_message(&view(), None);
        assert!(
            msg["text"]
                .as_str()
                .unwrap()
                .starts_with("order_list: 1 succeeded")
        );
        let failed = msg["blocks"][3]["text"]["text"].as_str().unwrap();
        assert!(
            failed.contains("`s0`: error &lt;0&gt; &amp; xxx"),
            "{failed}"
        );
        assert!(failed.ends_with("and 2 more"), "{failed}");
        assert_eq!(msg["blocks"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn a_succeeded_run_has_no_failed_section() {
        let v = RunView {
            status: "succeeded".into(),
            failures: Vec::new(),
            counts: vec![(StepStatus::Succeeded, 3), (StepStatus::Failed, 0)],
            ..view()
        };
        let card = teams_card(&v, None);
        let body = card["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        assert_eq!(body.len(), 3);
        assert_eq!(body[0]["color"], "Good");
        assert!(card["attachments"][0]["content"].get("actions").is_none());
    }
}
