//! The top-level error: every stage's error ends here, one variant per stage (`#[from]`), and
//! its kind decides the exit code. Each variant has a stable diagnostic code
//! (`docs/diagnostics.md`); a stage error that is itself a miette diagnostic keeps its help.

use crate::discover::DiscoverError;
use crate::export::ExportError;
use crate::job::{MissingEnv, VarOverrideError};
use crate::plan::{CycleError, SelectionError};
use crate::powerbi::{ClientError, ConfigError};
use crate::sim::SimError;
use crate::store::StoreError;

/// Exit codes of the command line (DESIGN.md).
pub mod exit {
    /// Every selected step succeeded or was skipped.
    pub(crate) const OK: u8 = 0;
    /// A step failed, timed out or was not run because of a failure.
    pub const FAILED: u8 = 1;
    /// Invalid job file, arguments or configuration; nothing was sent.
    pub const INVALID: u8 = 2;
    /// Interrupted (SIGINT/SIGTERM).
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// A failure of the program itself (not of a step).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The problems were already printed (a job file's diagnostics, unwritable outputs):
    /// only the exit code is left to give. Nothing was sent.
    #[error("invalid input")]
    #[diagnostic(code(pbibatch::reported))]
    Reported,
    /// Command-line arguments that do not go together or are out of range.
    #[error("{0}")]
    #[diagnostic(code(pbibatch::usage))]
    Usage(String),
    /// A `--var` that is not `KEY=VALUE` (job stage).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Vars(#[from] VarOverrideError),
    /// Environment variables the job needs are not set (job stage).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Env(#[from] MissingEnv),
    /// A `--select` / `--exclude` that cannot be applied (plan stage).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Selection(#[from] SelectionError),
    /// The dependencies form a cycle (plan stage; validation reports it first).
    #[error(transparent)]
    #[diagnostic(code(pbibatch::plan::cycle))]
    Cycle(#[from] CycleError),
    /// A `PBIBATCH_*_URL` that is not a URL (client configuration).
    #[error(transparent)]
    #[diagnostic(code(pbibatch::config::base_url))]
    Config(#[from] ConfigError),
    /// A remote the job or the environment names that the client refuses (plain `http://`
    /// to a non-loopback host, among others), one problem a line.
    #[error("{}", .0.join("\n"))]
    #[diagnostic(code(pbibatch::config::remote))]
    Remotes(Vec<String>),
    /// The Power BI / Fabric client could not be built (client stage).
    #[error(transparent)]
    #[diagnostic(code(pbibatch::client::setup))]
    Client(Box<ClientError>),
    /// Discovery: an unknown workspace or connection, missing credentials, or a call that
    /// failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Discover(#[from] DiscoverError),
    /// A `for_each: { discover: ... }` could not list what it expands to, before any step
    /// started (run stage).
    #[error("discover the items of `for_each` of step `{step}`: {source}")]
    #[diagnostic(code(pbibatch::run::discovery))]
    FanOutDiscovery {
        step: String,
        #[source]
        source: Box<ClientError>,
    },
    /// The state store refused (locked job, refused resume, damaged file...).
    #[error(transparent)]
    #[diagnostic(code(pbibatch::store))]
    Store(#[from] StoreError),
    /// The simulator profile cannot be read or is invalid.
    #[error(transparent)]
    #[diagnostic(code(pbibatch::sim::profile))]
    SimProfile(#[from] SimError),
    /// The simulator could not start (its address could not be bound).
    #[error("failed to start the simulator: {0}")]
    #[diagnostic(code(pbibatch::sim::start))]
    SimStart(#[source] SimError),
    /// The export refused an argument.
    #[error(transparent)]
    #[diagnostic(code(pbibatch::export))]
    Export(#[from] ExportError),
    /// I/O on local files (before anything is sent).
    #[error("{context}: {source}")]
    #[diagnostic(code(pbibatch::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Something failed after the run's requests were sent: the refreshes happened, so the
    /// exit code is never 2 ("nothing was sent"). `run_exit` is what the run itself would
    /// have exited with.
    #[error("{source}")]
    #[diagnostic(code(pbibatch::run::after_run))]
    AfterRun {
        #[source]
        source: AfterRunError,
        run_exit: u8,
    },
    /// A bug: something that cannot fail did.
    #[error("{0}")]
    #[diagnostic(code(pbibatch::internal))]
    Internal(String),
}

/// What can fail once a run has sent its requests.
#[derive(Debug, thiserror::Error)]
pub enum AfterRunError {
    /// The task that records the events in the store and forwards them died.
    #[error("the event task failed: {0}")]
    Events(tokio::task::JoinError),
    /// The task that folds the events into the report and draws the progress died.
    #[error("the reporter task failed: {0}")]
    Reporters(tokio::task::JoinError),
}

impl From<ClientError> for Error {
    fn from(source: ClientError) -> Self {
        Error::Client(Box::new(source))
    }
}

impl From<AfterRunError> for Error {
    fn from(source: AfterRunError) -> Self {
        Error::AfterRun {
            source,
            run_exit: exit::FAILED,
        }
    }
}

impl Error {
    /// The process exit code for this error, by its kind: 2 when nothing was sent, 1 when
    /// a remote call failed, and after a run at least 1 (an interrupted run keeps 130).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::AfterRun { run_exit, .. } => (*run_exit).max(exit::FAILED),
            Error::Discover(DiscoverError::Client { .. }) => exit::FAILED,
            Error::Reported
            | Error::Usage(_)
            | Error::Vars(_)
            | Error::Env(_)
            | Error::Selection(_)
            | Error::Cycle(_)
            | Error::Config(_)
            | Error::Remotes(_)
            | Error::Client(_)
            | Error::Discover(_)
            | Error::FanOutDiscovery { .. }
            | Error::Store(_)
            | Error::SimProfile(_)
            | Error::SimStart(_)
            | Error::Export(_)
            | Error::Io { .. }
            | Error::Internal(_) => exit::INVALID,
        }
    }

    /// Convenience for `Error::Io`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A failure after the run sent its requests, which would have exited with `run_exit`.
    pub fn after_run(source: AfterRunError, run_exit: u8) -> Self {
        Error::AfterRun { source, run_exit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `JoinError`: the one a reporter task that panicked gives.
    fn panicked_task() -> tokio::task::JoinError {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            tokio::spawn(async { panic!("reporter bug") })
                .await
                .expect_err("the task panics")
        })
    }

    #[test]
    fn a_reporter_failure_after_a_run_is_never_exit_2() {
        for (run_exit, expected) in [
            (exit::OK, exit::FAILED),
            (exit::FAILED, exit::FAILED),
            (exit::INTERRUPTED, exit::INTERRUPTED),
        ] {
            let err = Error::after_run(AfterRunError::Reporters(panicked_task()), run_exit);
            assert_eq!(err.exit_code(), expected, "{err}");
            assert!(
                err.to_string().starts_with("the reporter task failed"),
                "{err}"
            );
        }
        let events: Error = AfterRunError::Events(panicked_task()).into();
        assert_eq!(events.exit_code(), exit::FAILED);
    }

    #[test]
    fn nothing_sent_is_exit_2_and_a_failed_remote_call_exit_1() {
        assert_eq!(Error::Usage("--retries".into()).exit_code(), exit::INVALID);
        assert_eq!(Error::Reported.exit_code(), exit::INVALID);
        let call = DiscoverError::Client {
            what: "list the workspaces".into(),
            source: Box::new(ClientError::Config("refused".into())),
        };
        assert_eq!(Error::from(call).exit_code(), exit::FAILED);
    }

    #[test]
    fn stage_errors_keep_their_help() {
        let err = Error::from(MissingEnv {
            missing: Default::default(),
        });
        let help = miette::Diagnostic::help(&err).map(|h| h.to_string());
        assert!(help.is_some_and(|h| h.contains("--simulate")));
    }
}
