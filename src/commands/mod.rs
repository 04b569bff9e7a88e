//! The commands: one file per subcommand, each turning its clap arguments into the plain
//! options of the stages it wires together, and returning the exit code. Only this folder
//! and `cli.rs` know clap.

mod auth;
mod completions;
mod discover;
mod export;
mod graph;
mod load;
mod plan;
mod run;
mod signal;
mod sim;
mod store;
mod validate;

use crate::cli::{AuthCommand, Cli, Command, LogFormat, SimCommand};
use crate::error::Error;

/// The global output flags, as the commands that print while they work need them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Output {
    /// `-q`: errors only.
    pub quiet: bool,
    /// `--log-format json`: JSON log lines on stderr.
    pub json_logs: bool,
    /// `-v` (without `-q`): more detail (the service's own status words, among others).
    pub verbose: bool,
}

/// Sets up tracing on stderr: `-q` errors only, default warnings, `-v` info... `RUST_LOG`
/// overrides the level; `--log-format json` gives one JSON object per line.
fn init_logging(cli: &Cli) -> Output {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info,pbibatch=debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::reporter::progress::log_writer)
        .with_timer(Rfc3339Millis)
        .with_target(false);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(crate::term::color_on_stderr()).try_init(),
    };
    Output {
        quiet: cli.quiet,
        json_logs: cli.log_format == LogFormat::Json,
        verbose: cli.verbose > 0 && !cli.quiet,
    }
}

/// Log record timestamps in the one format the run's own log lines use (RFC 3339, UTC,
/// milliseconds: `2026-11-25T20:15:02.125Z`), so `-v` output reads as one stream.
struct Rfc3339Millis;

impl tracing_subscriber::fmt::time::FormatTime for Rfc3339Millis {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        w.write_str(&crate::reporter::lines::timestamp(chrono::Utc::now()))
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<u8, Error> {
    let output = init_logging(&cli);
    match cli.command {
        Command::Run(args) => run::command(args, output),
        Command::Validate(args) => validate::command(&args),
        Command::Plan(args) => plan::command(&args),
        Command::Graph(args) => graph::command(&args),
        Command::Schema => graph::schema(),
        Command::Completions { shell } => completions::command(shell),
        Command::Export(crate::cli::ExportCommand::Kestra(args)) => export::kestra(&args),
        Command::History(args) => store::history(&args),
        Command::Show(args) => store::show(&args),
        Command::Sim(SimCommand::Serve { addr, profile }) => sim::serve(&addr, profile.as_deref()),
        Command::Discover(args) => discover::command(&args),
        Command::Auth(AuthCommand::Check {
            connection,
            job,
            simulate,
            sim_profile,
        }) => auth::check(
            connection.as_deref(),
            job.as_deref(),
            simulate,
            sim_profile.as_deref(),
        ),
    }
}
