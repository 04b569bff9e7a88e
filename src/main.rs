use std::process::ExitCode;

use clap::Parser;
use pbibatch::error::Error;

fn main() -> ExitCode {
    let cli = pbibatch::cli::Cli::parse();
    match pbibatch::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        // Already printed where it happened (a job file's diagnostics, unwritable outputs).
        Err(err @ Error::Reported) => ExitCode::from(err.exit_code()),
        Err(err) => {
            let code = err.exit_code();
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::from(code)
        }
    }
}
