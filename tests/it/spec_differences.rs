//! Every documented difference between the official specs (`specs/`) and what the service
//! sends or takes, in one table, each entry with its evidence. The conformance tests apply
//! these entries and nothing else: answer rewrites before an answer is validated
//! (`sim_specs::check_pbi` / `check_fabric`), allowed validator messages for requests
//! (`sim_requests`), and the one path form the spec lacks.
//!
//! `every_difference_is_real` proves each entry still matters on a wire sample taken from the
//! evidence: without the entry the sample fails (or a wrong value would go unchecked), with it
//! the sample passes (or the wrong value is caught). A spec update that fixes a difference
//! makes that test fail, so the entry is removed instead of silently hiding nothing.
//!
//! Not listed, because no spec forbids unknown properties and none of them fails a check:
//! the Power BI history entry's undocumented integer `id` (powerbi-api.md 1c, pitfall 5) and
//! Fabric's `Z`-less timestamps (pitfall 12; the spec types them as plain strings).
//!
//! Sources: `powerbi-api.md` is the team's wire reference (sections and pitfalls cited by
//! number); Microsoft Learn pages are cited by their path.

use serde_json::{Value, json};

use crate::sim_specs::{FABRIC, FABRIC_DATAFLOW, PBI, specs};

/// Which API a difference concerns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Api {
    PowerBi,
    Fabric,
}

/// What the difference changes in the conformance checks.
pub(crate) enum Effect {
    /// An answer the service sends that the spec would refuse: rewritten to the spec's form
    /// before validation. Proof: the sample fails raw and passes rewritten.
    Rewrite(fn(&str, &mut Value)),
    /// An answer property the spec spells differently, so the spec would not check it at all
    /// (no spec forbids unknown properties): renamed so its type is checked. Proof: a sample
    /// with a wrongly typed value passes raw and fails renamed.
    Rename(fn(&str, &mut Value)),
    /// A request the service takes that the spec's request schema refuses: the validator
    /// message it raises is allowed for `schema`. Proof: the sample raises it.
    Allows {
        schema: &'static str,
        error: &'static str,
    },
    /// A request path form the service takes that the spec lacks: checked against the spec's
    /// `checked_as` path. Proof: the spec has `checked_as` and not the wire form.
    Path {
        wire: &'static str,
        checked_as: &'static str,
    },
}

/// A wire body and the spec schema it is checked against.
pub(crate) struct Sample {
    pub spec: &'static str,
    /// A `$ref` relative to `spec`.
    pub schema: &'static str,
    /// The Power BI operation name the rewrites key on ("" when none applies).
    pub operation: &'static str,
    pub body: Value,
}

pub(crate) struct Difference {
    pub id: &'static str,
    pub api: Api,
    pub effect: Effect,
    /// Why the wire differs, with the source.
    pub evidence: &'static str,
    pub sample: fn() -> Sample,
}

/// Power BI properties the 2024 swagger spells in PascalCase.
const PASCAL_IN_SWAGGER: &[&str] = &[
    "createdDate",
    "contentProviderType",
    "createReportEmbedURL",
    "qnaEmbedURL",
    "isEffectiveIdentityRequired",
    "isEffectiveIdentityRolesRequired",
    "isOnPremGatewayRequired",
    "encryption",
    "isRefreshable",
    "isInPlaceSharingEnabled",
    "resourceFileExtension",
];

/// Fabric job-instance fields sent as `null` that the spec types as non-nullable.
const NULL_ON_THE_WIRE: &[&str] = &["failureReason", "endTimeUtc"];

/// The one table.
pub(crate) const DIFFERENCES: &[Difference] = &[
    Difference {
        id: "pbi-camel-case",
        api: Api::PowerBi,
        effect: Effect::Rename(rename_pascal),
        evidence: "The swagger spells some properties in PascalCase (IsRefreshable, CreatedDate, \
                   ResourceFileExtension, ...); its own x-ms-examples and real answers use \
                   camelCase (powerbi-api.md section 0, pitfall 13).",
        sample: || Sample {
            spec: PBI,
            schema: "#/definitions/Dataset",
            operation: "GetDatasets",
            body: json!({"id": "d", "name": "m", "isRefreshable": "yes"}),
        },
    },
    Difference {
        id: "pbi-odata-context",
        api: Api::PowerBi,
        effect: Effect::Rename(rename_odata_context),
        evidence: "List wrappers carry `@odata.context` on the wire; the swagger names it \
                   `odata.context` (powerbi-api.md section 0, pitfall 13).",
        sample: || Sample {
            spec: PBI,
            schema: "#/definitions/Datasets",
            operation: "GetDatasets",
            body: json!({"@odata.context": 7, "value": []}),
        },
    },
    Difference {
        id: "pbi-execution-details-cancelled",
        api: Api::PowerBi,
        effect: Effect::Rewrite(cancelled_as_unknown),
        evidence: "Execution details report `status: Cancelled` after a DELETE (Microsoft Learn \
                   power-bi/connect-data/asynchronous-refresh, 2025; observed, powerbi-api.md \
                   1c/1d); the 2024 enum of `status` lacks it, while `extendedStatus` has it. \
                   Checked as `Unknown`.",
        sample: || Sample {
            spec: PBI,
            schema: "#/definitions/DatasetRefreshDetail",
            operation: "GetRefreshExecutionDetails",
            body: json!({"status": "Cancelled", "extendedStatus": "Cancelled"}),
        },
    },
    Difference {
        id: "pbi-transaction-cancel-pascal",
        api: Api::PowerBi,
        effect: Effect::Rewrite(transaction_status_camel),
        evidence: "Cancel Dataflow Transaction: the spec's enum is camelCase \
                   (`successfullyMarked`), its own example and the wire PascalCase \
                   (`SuccessfullyMarked`) (powerbi-api.md pitfall 9).",
        sample: || Sample {
            spec: PBI,
            schema: "#/definitions/DataflowTransactionStatus",
            operation: "CancelDataflowTransaction",
            body: json!({"transactionId": "t", "status": "SuccessfullyMarked"}),
        },
    },
    Difference {
        id: "fabric-nulls",
        api: Api::Fabric,
        effect: Effect::Rewrite(drop_wire_nulls),
        evidence: "Job instances carry `\"failureReason\": null` (the spec's own examples) and \
                   `\"endTimeUtc\": null` while running (powerbi-api.md 3c); the spec types both \
                   as non-nullable. Dropped before validation.",
        sample: || Sample {
            spec: FABRIC,
            schema: "./definitions/platform.json#/definitions/ItemJobInstance",
            operation: "",
            body: json!({
                "id": "4b218778-e7a5-4d73-8187-f10824047715",
                "status": "InProgress",
                "failureReason": null,
                "endTimeUtc": null
            }),
        },
    },
    Difference {
        id: "enhanced-refresh-without-notify",
        api: Api::PowerBi,
        effect: Effect::Allows {
            schema: "DatasetRefreshRequest",
            error: "\"notifyOption\" is a required property",
        },
        evidence: "An enhanced refresh must omit notifyOption (Microsoft Learn, \
                   power-bi/connect-data/asynchronous-refresh: 'notifyOption ... can't be used \
                   with enhanced refresh'; powerbi-api.md pitfall 1); the 2024 swagger marks it \
                   required.",
        sample: || Sample {
            spec: PBI,
            schema: "#/definitions/DatasetRefreshRequest",
            operation: "",
            body: json!({"type": "Full"}),
        },
    },
    Difference {
        id: "fabric-scalar-job-parameter",
        api: Api::Fabric,
        effect: Effect::Allows {
            schema: "ItemJobParameter",
            error: "is not of type \"object\"",
        },
        evidence: "ItemJobParameter.value is typed object, but the spec's own example \
                   dataflow/examples/RunOnDemandDataflowExecuteJobWithParameters.json sends 25 \
                   and \"start\".",
        sample: || Sample {
            spec: FABRIC_DATAFLOW,
            schema: "./definitions.json#/definitions/ItemJobParameter",
            operation: "",
            body: json!({"parameterName": "A", "type": "Automatic", "value": 25}),
        },
    },
    Difference {
        id: "fabric-legacy-job-path",
        api: Api::Fabric,
        effect: Effect::Path {
            wire: "/workspaces/{workspaceId}/items/{itemId}/jobs/instances",
            checked_as: "/workspaces/{workspaceId}/items/{itemId}/jobs/{jobType}/instances",
        },
        evidence: "Run on demand is documented in two forms, `POST .../jobs/instances?jobType=X` \
                   (Microsoft Learn rest/api/fabric/core/job-scheduler/run-on-demand-item-job, \
                   still accepted) and the path form `.../jobs/{jobType}/instances` that the \
                   spec has (powerbi-api.md 3a, pitfall 10). The query form is checked against \
                   the path form's operation.",
        sample: || Sample {
            spec: FABRIC,
            schema: "",
            operation: "",
            body: Value::Null,
        },
    },
];

/// The spec path a request path form is checked against.
pub(crate) fn checked_path(wire: &str) -> &str {
    DIFFERENCES
        .iter()
        .find_map(|d| match d.effect {
            Effect::Path {
                wire: w,
                checked_as,
            } if w == wire => Some(checked_as),
            _ => None,
        })
        .unwrap_or(wire)
}

/// An answer body in its spec's spelling: every rewrite and rename of `api` applied.
pub(crate) fn answer(api: Api, operation: &str, mut body: Value) -> Value {
    for d in DIFFERENCES.iter().filter(|d| d.api == api) {
        if let Effect::Rewrite(f) | Effect::Rename(f) = d.effect {
            f(operation, &mut body);
        }
    }
    body
}

/// Whether a request validator message for `schema` is a listed difference.
pub(crate) fn allowed(schema: &str, error: &str) -> bool {
    DIFFERENCES.iter().any(|d| match d.effect {
        Effect::Allows {
            schema: s,
            error: e,
        } => s == schema && error.contains(e),
        _ => false,
    })
}

fn rename_pascal(_: &str, v: &mut Value) {
    match v {
        Value::Object(map) => {
            for name in PASCAL_IN_SWAGGER {
                if let Some(value) = map.remove(*name) {
                    map.insert(upper_first(name), value);
                }
            }
            map.values_mut().for_each(|v| rename_pascal("", v));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_pascal("", v)),
        _ => {}
    }
}

fn rename_odata_context(_: &str, body: &mut Value) {
    if let Some(obj) = body.as_object_mut()
        && let Some(ctx) = obj.remove("@odata.context")
    {
        obj.insert("odata.context".into(), ctx);
    }
}

fn cancelled_as_unknown(operation: &str, body: &mut Value) {
    if operation == "GetRefreshExecutionDetails" && body["status"] == "Cancelled" {
        body["status"] = Value::from("Unknown");
    }
}

fn transaction_status_camel(operation: &str, body: &mut Value) {
    if operation == "CancelDataflowTransaction"
        && let Some(s) = body["status"].as_str()
    {
        let mut c = s.chars();
        let lower = c
            .next()
            .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
            .unwrap_or_default();
        body["status"] = Value::from(lower);
    }
}

fn drop_wire_nulls(_: &str, v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, v| !(v.is_null() && NULL_ON_THE_WIRE.contains(&k.as_str())));
            map.values_mut().for_each(|v| drop_wire_nulls("", v));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_wire_nulls("", v)),
        _ => {}
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[test]
fn every_difference_is_real() {
    let mut ids = std::collections::HashSet::new();
    for d in DIFFERENCES {
        assert!(ids.insert(d.id), "{}: listed twice", d.id);
        assert!(d.evidence.len() > 40, "{}: no evidence", d.id);
        let s = (d.sample)();
        let errors = |body: &Value| specs().errors(&json!({"$ref": s.schema}), s.spec, body, d.id);
        match d.effect {
            Effect::Rewrite(f) => {
                assert!(
                    !errors(&s.body).is_empty(),
                    "{}: the spec now takes the wire form; remove the entry",
                    d.id
                );
                let mut fixed = s.body.clone();
                f(s.operation, &mut fixed);
                assert_eq!(errors(&fixed), Vec::<String>::new(), "{}", d.id);
            }
            Effect::Rename(f) => {
                assert_eq!(
                    errors(&s.body),
                    Vec::<String>::new(),
                    "{}: the spec now checks the wire spelling; remove the entry",
                    d.id
                );
                let mut renamed = s.body.clone();
                f(s.operation, &mut renamed);
                assert!(
                    !errors(&renamed).is_empty(),
                    "{}: the renamed property is still not checked",
                    d.id
                );
            }
            Effect::Allows { schema, .. } => {
                let raised = errors(&s.body);
                assert!(
                    raised.iter().any(|e| allowed(schema, e)),
                    "{}: the spec no longer raises it; remove the entry ({raised:?})",
                    d.id
                );
            }
            Effect::Path { wire, checked_as } => {
                let paths = &specs().docs[s.spec]["paths"];
                assert!(paths[checked_as].is_object(), "{}", d.id);
                assert!(
                    paths[wire]["post"].is_null(),
                    "{}: the spec now has the wire form; remove the entry",
                    d.id
                );
            }
        }
    }
}
