//! Stable codes of the job file's diagnostics (and of `validate --lineage`'s findings): what
//! CI tools and editors match on instead of the wording, which may improve. Every code is
//! listed in `docs/diagnostics.md` (a test keeps the two in step). A code, once published,
//! keeps its meaning; a new kind of problem gets a new code.

use serde::Serialize;

/// The kind of one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    // Reading the file.
    Unreadable,
    NotUtf8,
    EmptyFile,
    YamlSyntax,
    TooComplex,
    TooManyProblems,
    UnknownKey,
    DuplicateKey,
    MissingKey,
    UnknownValue,
    WrongType,
    // Checking what it says.
    UnsupportedVersion,
    EmptySteps,
    EmptyValue,
    InvalidName,
    InvalidValue,
    NotApplicable,
    ConflictingKeys,
    OutOfRange,
    InvalidDuration,
    StaticDuration,
    ShellSyntax,
    InsecureUrl,
    InvalidUrl,
    Interpolation,
    UnknownVariable,
    RunPlaceholder,
    UnknownStepReference,
    VarArgument,
    SelfDependency,
    UnknownDependency,
    DuplicateDependency,
    DependencyCycle,
    UnknownConnection,
    UnknownPool,
    UnknownWorkspaceAlias,
    NoCredentials,
    UnsupportedIdentity,
    InvalidWhen,
    EnvNotSet,
    ForEachSource,
    ForEachValues,
    EachPlaceholder,
    FanOutReference,
    SharedOutput,
    // `validate --lineage`: the live check.
    LineageNotFound,
    LineageNotRefreshable,
    LineageMissingDependency,
    LineageExtraDependency,
    LineageUnusedProfileEntry,
    LineageCheckFailed,
}

impl Code {
    /// The stable text of the code, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unreadable => "pbibatch::job::unreadable",
            Code::NotUtf8 => "pbibatch::job::not_utf8",
            Code::EmptyFile => "pbibatch::job::empty_file",
            Code::YamlSyntax => "pbibatch::job::yaml_syntax",
            Code::TooComplex => "pbibatch::job::too_complex",
            Code::TooManyProblems => "pbibatch::job::too_many_problems",
            Code::UnknownKey => "pbibatch::job::unknown_key",
            Code::DuplicateKey => "pbibatch::job::duplicate_key",
            Code::MissingKey => "pbibatch::job::missing_key",
            Code::UnknownValue => "pbibatch::job::unknown_value",
            Code::WrongType => "pbibatch::job::wrong_type",
            Code::UnsupportedVersion => "pbibatch::job::unsupported_version",
            Code::EmptySteps => "pbibatch::job::empty_steps",
            Code::EmptyValue => "pbibatch::job::empty_value",
            Code::InvalidName => "pbibatch::job::invalid_name",
            Code::InvalidValue => "pbibatch::job::invalid_value",
            Code::NotApplicable => "pbibatch::job::not_applicable",
            Code::ConflictingKeys => "pbibatch::job::conflicting_keys",
            Code::OutOfRange => "pbibatch::job::out_of_range",
            Code::InvalidDuration => "pbibatch::job::invalid_duration",
            Code::StaticDuration => "pbibatch::job::static_duration",
            Code::ShellSyntax => "pbibatch::job::shell_syntax",
            Code::InsecureUrl => "pbibatch::job::insecure_url",
            Code::InvalidUrl => "pbibatch::job::invalid_url",
            Code::Interpolation => "pbibatch::job::interpolation",
            Code::UnknownVariable => "pbibatch::job::unknown_variable",
            Code::RunPlaceholder => "pbibatch::job::run_placeholder",
            Code::UnknownStepReference => "pbibatch::job::unknown_step_reference",
            Code::VarArgument => "pbibatch::job::var_argument",
            Code::SelfDependency => "pbibatch::job::self_dependency",
            Code::UnknownDependency => "pbibatch::job::unknown_dependency",
            Code::DuplicateDependency => "pbibatch::job::duplicate_dependency",
            Code::DependencyCycle => "pbibatch::job::dependency_cycle",
            Code::UnknownConnection => "pbibatch::job::unknown_connection",
            Code::UnknownPool => "pbibatch::job::unknown_pool",
            Code::UnknownWorkspaceAlias => "pbibatch::job::unknown_workspace_alias",
            Code::NoCredentials => "pbibatch::job::no_credentials",
            Code::UnsupportedIdentity => "pbibatch::job::unsupported_identity",
            Code::InvalidWhen => "pbibatch::job::invalid_when",
            Code::EnvNotSet => "pbibatch::job::env_not_set",
            Code::ForEachSource => "pbibatch::job::for_each_source",
            Code::ForEachValues => "pbibatch::job::for_each_values",
            Code::SharedOutput => "pbibatch::job::shared_output",
            Code::EachPlaceholder => "pbibatch::job::each_placeholder",
            Code::FanOutReference => "pbibatch::job::fan_out_reference",
            Code::LineageNotFound => "pbibatch::lineage::not_found",
            Code::LineageNotRefreshable => "pbibatch::lineage::not_refreshable",
            Code::LineageMissingDependency => "pbibatch::lineage::missing_dependency",
            Code::LineageExtraDependency => "pbibatch::lineage::extra_dependency",
            Code::LineageUnusedProfileEntry => "pbibatch::lineage::unused_profile_entry",
            Code::LineageCheckFailed => "pbibatch::lineage::check_failed",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
