//! What the webhook sink checks in a message before it accepts it: the shape of a Teams
//! Workflows message (an Adaptive Card in `attachments`) and of Slack Block Kit blocks.
//!
//! Teams Workflows ("When a Teams webhook request is received") posts Adaptive Cards only: a
//! bare `{"text": ...}` or an Office 365 connector MessageCard posts nothing, and a card whose
//! elements Teams does not know fails the flow's "Post card" action. The sink refuses such
//! bodies at once with a Logic Apps error body, so a test sees the refusal where a real run
//! would see a silent channel. Slack answers `400 invalid_blocks` / `400 no_text` in plain
//! text, as its incoming webhooks do.

use serde_json::Value;

/// The Adaptive Card versions Teams renders.
const CARD_VERSIONS: &[&str] = &["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"];

/// The card body elements Teams renders.
const CARD_ELEMENTS: &[&str] = &[
    "TextBlock",
    "RichTextBlock",
    "Image",
    "ImageSet",
    "Media",
    "FactSet",
    "Container",
    "ColumnSet",
    "ActionSet",
    "Table",
];

/// The card actions Teams renders.
const CARD_ACTIONS: &[&str] = &[
    "Action.OpenUrl",
    "Action.Submit",
    "Action.ShowCard",
    "Action.ToggleVisibility",
    "Action.Execute",
];

/// The Slack block types an incoming webhook message may carry.
const SLACK_BLOCKS: &[&str] = &[
    "section",
    "header",
    "context",
    "actions",
    "divider",
    "image",
    "rich_text",
    "input",
];

/// What a webhook sink expects (`hooks.<name>.kind` in the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Expects {
    /// Anything; a body that claims to be a Teams message or Slack blocks is still checked.
    #[default]
    Any,
    /// A Teams Workflows webhook: Adaptive Cards only.
    Teams,
    /// A Slack incoming webhook: `text` and/or `blocks`.
    Slack,
}

/// Why a body is refused: Teams (a Logic Apps error) or Slack (a plain-text code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Teams(String),
    Slack(&'static str),
}

/// Checks `body` (parsed JSON, `None` when it was not JSON) against what the sink expects.
pub(crate) fn check(expects: Expects, body: Option<&Value>) -> Result<(), Refusal> {
    let looks_teams =
        body.is_some_and(|b| b.get("attachments").is_some() || b["type"] == "message");
    let looks_slack = body.is_some_and(|b| b.get("blocks").is_some());
    match expects {
        Expects::Teams => teams(body).map_err(Refusal::Teams),
        Expects::Slack => slack(body).map_err(Refusal::Slack),
        Expects::Any if looks_teams => teams(body).map_err(Refusal::Teams),
        Expects::Any if looks_slack => slack(body).map_err(Refusal::Slack),
        Expects::Any => Ok(()),
    }
}

fn teams(body: Option<&Value>) -> Result<(), String> {
    let body = body.ok_or("the body is not JSON")?;
    if body.get("attachments").is_none() {
        return Err(if body.get("@type").is_some_and(|t| t == "MessageCard") {
            "a MessageCard (Office 365 connector format) is not supported by Workflows: send an Adaptive Card in `attachments`".into()
        } else {
            "Workflows support Adaptive Cards only: the body has no `attachments`".into()
        });
    }
    if body["type"] != "message" {
        return Err("`type` must be \"message\"".into());
    }
    let attachments = body["attachments"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("`attachments` must be a non-empty array")?;
    for (i, a) in attachments.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return Err(format!(
                "attachments[{i}].contentType must be \"application/vnd.microsoft.card.adaptive\""
            ));
        }
        card(&a["content"]).map_err(|e| format!("attachments[{i}].content: {e}"))?;
    }
    Ok(())
}

fn card(card: &Value) -> Result<(), String> {
    if card["type"] != "AdaptiveCard" {
        return Err("`type` must be \"AdaptiveCard\"".into());
    }
    let version = card["version"].as_str().ok_or("`version` is missing")?;
    if !CARD_VERSIONS.contains(&version) {
        return Err(format!(
            "version `{version}` is not one Teams renders (1.0 to 1.5)"
        ));
    }
    let body = card["body"].as_array().ok_or("`body` must be an array")?;
    elements(body, "body")?;
    if let Some(actions) = card.get("actions") {
        let actions = actions.as_array().ok_or("`actions` must be an array")?;
        for (i, a) in actions.iter().enumerate() {
            let ty = a["type"].as_str().unwrap_or_default();
            if !CARD_ACTIONS.contains(&ty) {
                return Err(format!("actions[{i}]: unknown action type `{ty}`"));
            }
            if ty == "Action.OpenUrl" && !a["url"].as_str().is_some_and(|u| u.starts_with("http")) {
                return Err(format!(
                    "actions[{i}]: Action.OpenUrl needs an http(s) `url`"
                ));
            }
        }
    }
    Ok(())
}

fn elements(items: &[Value], at: &str) -> Result<(), String> {
    for (i, e) in items.iter().enumerate() {
        let ty = e["type"].as_str().unwrap_or_default();
        if !CARD_ELEMENTS.contains(&ty) {
            return Err(format!("{at}[{i}]: unknown element type `{ty}`"));
        }
        match ty {
            "TextBlock" if !e["text"].is_string() => {
                return Err(format!("{at}[{i}]: a TextBlock needs a string `text`"));
            }
            "FactSet" => {
                let facts = e["facts"]
                    .as_array()
                    .ok_or(format!("{at}[{i}]: a FactSet needs `facts`"))?;
                if facts
                    .iter()
                    .any(|f| !f["title"].is_string() || !f["value"].is_string())
                {
                    return Err(format!(
                        "{at}[{i}]: every fact needs string `title` and `value`"
                    ));
                }
            }
            "Container" => {
                let inner = e["items"]
                    .as_array()
                    .ok_or(format!("{at}[{i}]: a Container needs `items`"))?;
                elements(inner, &format!("{at}[{i}].items"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn slack(body: Option<&Value>) -> Result<(), &'static str> {
    let body = body.ok_or("invalid_payload")?;
    let text = body["text"].as_str().filter(|t| !t.trim().is_empty());
    let Some(blocks) = body.get("blocks") else {
        return text.map(|_| ()).ok_or("no_text");
    };
    let blocks = blocks.as_array().ok_or("invalid_blocks")?;
    if blocks.len() > 50 {
        return Err("invalid_blocks");
    }
    for b in blocks {
        let ty = b["type"].as_str().unwrap_or_default();
        if !SLACK_BLOCKS.contains(&ty) {
            return Err("invalid_blocks");
        }
        let limit = match ty {
            "header" => 150,
            "section" => 3000,
            _ => usize::MAX,
        };
        if let Some(t) = b["text"].get("text") {
            if t.as_str().is_none_or(|t| t.chars().count() > limit) {
                return Err("invalid_blocks");
            }
        } else if ty == "header" || (ty == "section" && b.get("fields").is_none()) {
            return Err("invalid_blocks");
        }
        if let Some(fields) = b.get("fields")
            && fields.as_array().is_none_or(|f| f.len() > 10)
        {
            return Err("invalid_blocks");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn teams_msg(content: Value) -> Value {
        json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": content}]})
    }

    #[test]
    fn teams_refuses_text_message_cards_and_bad_elements() {
        let ok = teams_msg(
            json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "x"}]}),
        );
        assert_eq!(check(Expects::Teams, Some(&ok)), Ok(()));
        assert_eq!(check(Expects::Any, Some(&ok)), Ok(()));
        let text = json!({"text": "hi"});
        assert!(
            matches!(check(Expects::Teams, Some(&text)), Err(Refusal::Teams(e)) if e.contains("Adaptive Cards only"))
        );
        assert_eq!(check(Expects::Any, Some(&text)), Ok(()));
        let message_card = json!({"@type": "MessageCard", "text": "hi"});
        assert!(
            matches!(check(Expects::Teams, Some(&message_card)), Err(Refusal::Teams(e)) if e.contains("MessageCard"))
        );
        for (content, want) in [
            (
                json!({"type": "AdaptiveCard", "version": "2.0", "body": []}),
                "version `2.0`",
            ),
            (
                json!({"type": "Card", "version": "1.4", "body": []}),
                "\"AdaptiveCard\"",
            ),
            (
                json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "Markdown"}]}),
                "unknown element type `Markdown`",
            ),
            (
                json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "FactSet", "facts": [{"title": "a", "value": 1}]}]}),
                "string `title` and `value`",
            ),
            (
                json!({"type": "AdaptiveCard", "version": "1.4", "body": [], "actions": [{"type": "Action.OpenUrl"}]}),
                "needs an http(s) `url`",
            ),
        ] {
            match check(Expects::Any, Some(&teams_msg(content))) {
                Err(Refusal::Teams(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn slack_refuses_bad_blocks_and_empty_messages() {
        assert_eq!(check(Expects::Slack, Some(&json!({"text": "hi"}))), Ok(()));
        assert_eq!(
            check(Expects::Slack, Some(&json!({}))),
            Err(Refusal::Slack("no_text"))
        );
        assert_eq!(
            check(Expects::Any, Some(&json!({"blocks": [{"type": "banner"}]}))),
            Err(Refusal::Slack("invalid_blocks"))
        );
        let long = json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}]});
        assert_eq!(
            check(Expects::Slack, Some(&long)),
            Err(Refusal::Slack("invalid_blocks"))
        );
    }
}
