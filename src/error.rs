//! The top-level error: every stage's error ends here and knows its exit code.

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
    /// Bad input: job file, arguments, configuration. Nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// Diagnostics already printed (e.g. validation); only the exit code is left to give.
    #[error("invalid input")]
    Reported,
    /// I/O on local files.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything else that stops the program.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::Reported => exit::INVALID,
            Error::Io { .. } | Error::Other(_) => exit::INVALID,
        }
    }

    /// Convenience for `Error::Io`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
