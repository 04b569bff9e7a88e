//! One function per subcommand: wires the stages together and returns the exit code.

use crate::cli::{AuthCommand, Cli, Command, LogFormat, SimCommand};
use crate::error::{Error, exit};

/// Sets up tracing on stderr: `-q` errors only, default warnings, `-v` info... `RUST_LOG`
/// overrides the level; `--log-format json` gives one JSON object per line.
fn init_logging(cli: &Cli) {
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
    crate::run::set_output(
        cli.quiet,
        cli.log_format == LogFormat::Json,
        cli.verbose > 0 && !cli.quiet,
    );
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
    init_logging(&cli);
    match cli.command {
        Command::Run(args) => crate::run::run_command(args),
        Command::Validate(args) => crate::plan::cmd::validate(&args),
        Command::Plan(args) => crate::plan::cmd::plan(&args),
        Command::Graph(args) => crate::plan::cmd::graph(&args),
        Command::Schema => crate::plan::cmd::schema(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Generated whole, then written once: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "pbibatch", &mut script);
            crate::stdout::write_to(&mut std::io::stdout().lock(), &script)?;
            Ok(exit::OK)
        }
        Command::Export(crate::cli::ExportCommand::Kestra(args)) => {
            crate::export::kestra_command(&args)
        }
        Command::History(args) => crate::store::history_command(&args),
        Command::Show(args) => crate::store::show_command(&args),
        Command::Sim(SimCommand::Serve { addr, profile }) => {
            crate::sim::serve_cli(&addr, profile.as_deref())
        }
        Command::Discover(args) => crate::discover::command(args),
        Command::Auth(AuthCommand::Check {
            connection,
            job,
            simulate,
            sim_profile,
        }) => crate::discover::auth::command(
            connection.as_deref(),
            job.as_deref(),
            simulate,
            sim_profile.as_deref(),
        ),
    }
}
