//! What the Job Scheduler takes per item type: the `executionData` each job documents, the
//! top-level `parameters` only the notebook run declares, and the identity table of each
//! item's own run operation (the service applies it whichever URL form is called).
//!
//! Shapes marked "spec" are checked against their schema in `specs/` by
//! `tests/it/sim_requests.rs`; the others come from Microsoft Learn articles that the specs
//! do not cover (the generic `Pipeline` and `RunNotebook` job types), cited on each.

use super::strict::{Field, IdentitySupport, Shape};

const fn field(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: false,
    }
}

const fn required(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        shape,
        required: true,
    }
}

/// `executionData` of a pipeline run (`jobType=Pipeline`): parameter name -> value
/// (Microsoft Learn, "Data Factory pipeline REST API": `{"executionData": {"parameters":
/// {...}}}`; the dataPipeline spec's own `jobs/execute` operation takes no body).
pub const PIPELINE_EXECUTION_DATA: Shape =
    Shape::Object(&[field("parameters", Shape::Map(&Shape::Any))]);

const NOTEBOOK_ITEM: Shape =
    Shape::Object(&[field("id", Shape::String), field("name", Shape::String)]);

/// `executionData` of a notebook run (`jobType=RunNotebook`; Microsoft Learn, "Notebook
/// public API", run on demand): parameters name -> `{value, type}` and the session
/// `configuration`.
pub const RUN_NOTEBOOK_EXECUTION_DATA: Shape = Shape::Object(&[
    field(
        "parameters",
        Shape::Map(&Shape::Object(&[
            required("value", Shape::Any),
            required("type", Shape::Enum(&["string", "int", "float", "bool"])),
        ])),
    ),
    field(
        "configuration",
        Shape::Object(&[
            field("conf", Shape::Map(&Shape::String)),
            field("environment", NOTEBOOK_ITEM),
            field(
                "defaultLakehouse",
                Shape::Object(&[
                    field("name", Shape::String),
                    field("id", Shape::String),
                    field("workspaceId", Shape::String),
                ]),
            ),
            field("useStarterPool", Shape::Boolean),
            field("useWorkspacePool", Shape::String),
        ]),
    ),
]);

/// Fabric `Parameter` (common/job_scheduling.json) of a run's top-level `parameters`.
const JOB_PARAMETER: Shape = Shape::Object(&[
    required("name", Shape::String),
    required(
        "type",
        Shape::Enum(&[
            "VariableReference",
            "Integer",
            "Number",
            "Text",
            "Boolean",
            "DateTime",
            "Guid",
            "Automatic",
        ]),
    ),
    required("value", Shape::Any),
]);

/// Spec: notebook `RunNotebookRequest` (the notebook's `jobs/execute` run, which declares
/// top-level `parameters`; `executionData` is checked as an object: its compute
/// configuration depends on the `compute` discriminator).
pub const RUN_NOTEBOOK_REQUEST: Shape = Shape::Object(&[
    field("executionData", Shape::AnyObject),
    field("parameters", Shape::Array(&JOB_PARAMETER)),
]);

/// Spec: Spark job definition `ExecutionData` (`jobType=sparkjob`).
pub const SPARK_JOB_EXECUTION_DATA: Shape = Shape::Object(&[
    field("executableFile", Shape::String),
    field("mainClass", Shape::String),
    field("commandLineArguments", Shape::String),
    field("additionalLibraryUris", Shape::Array(&Shape::String)),
    field("environmentId", Shape::AnyObject),
    field("defaultLakehouseId", Shape::AnyObject),
]);

/// The `executionData` shape of `job_type` on an item of `item_type`, when one is known.
pub(crate) fn execution_data_shape(item_type: &str, job_type: &str) -> Option<Shape> {
    let job = job_type.to_ascii_lowercase();
    match (item_type, job.as_str()) {
        ("Dataflow", "execute") => Some(super::strict::DATAFLOW_EXECUTION_PAYLOAD),
        ("DataPipeline", "pipeline") => Some(PIPELINE_EXECUTION_DATA),
        ("Notebook", "runnotebook") => Some(RUN_NOTEBOOK_EXECUTION_DATA),
        ("SparkJobDefinition", "sparkjob") => Some(SPARK_JOB_EXECUTION_DATA),
        _ => None,
    }
}

/// The whole request shape of a job whose item declares top-level `parameters`; `None`:
/// top-level `parameters` are refused (`FeatureNotAvailable`, platform spec).
pub(crate) fn request_with_parameters(item_type: &str, job_type: &str) -> Option<Shape> {
    (item_type == "Notebook" && job_type.eq_ignore_ascii_case("Execute"))
        .then_some(RUN_NOTEBOOK_REQUEST)
}

const DATA_PIPELINE: &str = "fabric-rest-api-specs/dataPipeline/swagger.json";
const NOTEBOOK: &str = "fabric-rest-api-specs/notebook/swagger.json";
const SPARK_JOB_DEFINITION: &str = "fabric-rest-api-specs/sparkjobdefinition/swagger.json";

/// The identity table of each item type's own run operation, copied from its spec (checked
/// by `tests/it/sim_requests.rs`). A copy job has no run operation of its own: the platform
/// run-on-demand table applies.
pub const ITEM_JOB_IDENTITY: &[(&str, IdentitySupport)] = &[
    (
        "DataPipeline",
        IdentitySupport {
            spec: DATA_PIPELINE,
            operation_id: "BackgroundJobs_RunOnDemandExecute",
            user: true,
            app: true,
        },
    ),
    (
        "Notebook",
        IdentitySupport {
            spec: NOTEBOOK,
            operation_id: "BackgroundJobs_RunOnDemandNotebook",
            user: true,
            app: true,
        },
    ),
    (
        "SparkJobDefinition",
        IdentitySupport {
            spec: SPARK_JOB_DEFINITION,
            operation_id: "BackgroundJobs_RunOnDemandSparkJobDefinition",
            user: true,
            app: true,
        },
    ),
    (
        "CopyJob",
        IdentitySupport {
            spec: "fabric-rest-api-specs/platform/swagger.json",
            operation_id: "JobScheduler_RunOnDemandItemJob",
            user: true,
            app: true,
        },
    ),
];

/// The identity row that governs running a job of an item of `item_type`.
pub fn item_job_identity(item_type: &str) -> Option<&'static IdentitySupport> {
    ITEM_JOB_IDENTITY
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(item_type))
        .map(|(_, row)| row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::state::Principal;
    use crate::sim::strict::{Rule, Rules, check_identity_row};

    #[test]
    fn each_item_types_identity_row_is_applied_to_app_only_callers() {
        // Today every item type's run operation lists service principals (the specs)...
        for (item_type, _) in ITEM_JOB_IDENTITY {
            let row = item_job_identity(item_type).unwrap();
            assert!(check_identity_row(&Rules::default(), row, Principal::App).is_ok());
        }
        assert!(item_job_identity("Dataflow").is_none());
        // ...and a row that did not would refuse them as the service does, unless relaxed.
        let user_only = IdentitySupport {
            app: false,
            ..*item_job_identity("Notebook").unwrap()
        };
        let refused = check_identity_row(&Rules::default(), &user_only, Principal::App)
            .expect_err("an app-only caller is refused");
        assert_eq!(refused.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(check_identity_row(&Rules::default(), &user_only, Principal::User).is_ok());
        let relaxed = Rules::relaxing(&[Rule::IdentitySupport]);
        assert!(check_identity_row(&relaxed, &user_only, Principal::ManagedIdentity).is_ok());
    }
}
