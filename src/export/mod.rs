//! `pbibatch export`: a job rendered for another tool. Today: a Kestra flow whose Dag task
//! mirrors the job's DAG, one task per step (see `docs/kestra-export.md`).
//!
//! ```text
//! job.yaml --job::load--> Job --kestra::export--> KestraFlow { yaml, notes }
//!                                                  notes -> stderr (and YAML comments)
//! ```

pub(crate) mod iso8601;
pub(crate) mod kestra;
mod notes;

/// Why an export failed (the job itself was valid).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `--namespace` is not a Kestra namespace.
    #[error(
        "invalid --namespace `{0}`: a Kestra namespace is lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"
    )]
    Namespace(String),
    /// `--cron` is not a cron expression Kestra's Schedule trigger accepts.
    #[error("invalid --cron `{cron}`: {reason}")]
    Cron { cron: String, reason: String },
    /// `--image` is empty or holds whitespace.
    #[error(
        "invalid --image `{0}`: expected a container image reference such as `pbibatch:latest`"
    )]
    Image(String),
    /// The YAML serializer refused the flow (a bug: the flow is built from plain values).
    #[error("serialize the Kestra flow: {0}")]
    Serialize(String),
}
