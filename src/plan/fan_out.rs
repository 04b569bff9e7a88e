//! Fan-outs over what discovery finds when the run starts (`for_each: { discover: ... }`):
//! list the workspace's semantic models, keep the refreshable ones whose name matches, leave
//! out those other steps name when asked, and give the names to the job loader, which
//! expands the template into one step per model (`src/job/validate/fan_out.rs`). The engine
//! never sees a template: it gets the expanded job like any other.
//!
//! A resumed run does not discover again: it takes the values its first run recorded (the
//! run's arguments in the state store, `discovered`), so the steps it resumes are the ones
//! that ran, whatever the workspace holds now.

use crate::job::Discovered;
use crate::job::model::{DiscoverSpec, Job, StepKind};
use crate::powerbi::api::Item;
use crate::powerbi::resolve::ItemKind;
use crate::powerbi::{ClientError, PowerBiClient};

/// A discovery that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("discover the items of `for_each` of step `{step}`: {source}")]
pub(crate) struct DiscoveryError {
    pub(crate) step: String,
    #[source]
    pub(crate) source: ClientError,
}

/// Lists what each fan-out awaiting discovery expands to, in the service's order.
pub(crate) async fn discover(
    client: &PowerBiClient,
    job: &Job,
) -> Result<Discovered, DiscoveryError> {
    let mut found = Discovered::new();
    for (id, spec) in job.awaiting_discovery() {
        let conn = job.steps[id].connection.as_str();
        let err = |source| DiscoveryError {
            step: id.to_string(),
            source,
        };
        let ws = client
            .workspace_id(conn, &spec.workspace)
            .await
            .map_err(err)?;
        let models = client
            .list_items(conn, &ws, ItemKind::Dataset)
            .await
            .map_err(err)?;
        let mut named = Vec::new();
        if spec.exclude_named {
            for (other, step) in &job.steps {
                if let StepKind::Dataset(d) = &step.kind
                    && other != id
                    && client
                        .workspace_id(conn, &d.workspace)
                        .await
                        .ok()
                        .as_deref()
                        == Some(&ws)
                {
                    named.push(d.dataset.clone());
                }
            }
        }
        found.insert(id.to_string(), keep(spec, &models, &named));
    }
    Ok(found)
}

/// The names of the models to fan out over: refreshable, matching the pattern, not named by
/// another step (by name or id, case-insensitively, as the service compares names).
fn keep(spec: &DiscoverSpec, models: &[Item], named: &[String]) -> Vec<String> {
    models
        .iter()
        .filter(|m| m.is_refreshable != Some(false))
        .filter(|m| glob(&spec.name, &m.name))
        .filter(|m| {
            !named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&m.name) || n.eq_ignore_ascii_case(&m.id))
        })
        .map(|m| m.name.clone())
        .collect()
}

/// `*` (any run of characters) and `?` (one), case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative matching with one backtrack point (the last `*`): linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The values recorded for a resumed run, from the run's arguments (`discovered`).
pub(crate) fn recorded(arguments: &serde_json::Value) -> Discovered {
    let mut out = Discovered::new();
    if let Some(map) = arguments.get("discovered").and_then(|d| d.as_object()) {
        for (id, values) in map {
            let values = values
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(id.clone(), values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, refreshable: Option<bool>) -> Item {
        Item {
            id: format!("id-{name}"),
            name: name.into(),
            report_type: None,
            is_refreshable: refreshable,
            dataset_id: None,
        }
    }

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob("*", "anything"));
        assert!(glob("Sales *", "sales EU"));
        assert!(glob("s?les*eu", "Sales West EU"));
        assert!(!glob("Sales *", "Finance"));
        assert!(!glob("Sales ?", "Sales EU"));
        assert!(glob("*EU", "Sales EU"));
        assert!(!glob("*EU", "Sales EU West"));
    }

    #[test]
    fn keeps_refreshable_matching_unnamed_models_in_order() {
        let spec = DiscoverSpec {
            workspace: "W".into(),
            name: "Sales*".into(),
            exclude_named: true,
        };
        let models = [
            model("Sales EU", None),
            model("Sales Live", Some(false)),
            model("Finance", Some(true)),
            model("Sales US", Some(true)),
            model("Sales APAC", Some(true)),
        ];
        assert_eq!(
            keep(&spec, &models, &["sales apac".into()]),
            ["Sales EU", "Sales US"]
        );
        assert_eq!(
            keep(&spec, &models, &["id-Sales EU".into()]),
            ["Sales US", "Sales APAC"]
        );
    }

    #[test]
    fn recorded_values_come_back_in_order() {
        let args = serde_json::json!({"discovered": {"models": ["B", "A"]}});
        assert_eq!(recorded(&args)["models"], ["B", "A"]);
        assert!(recorded(&serde_json::json!({})).is_empty());
    }
}
