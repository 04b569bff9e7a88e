use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pbibatch::cli::Cli::parse();
    match pbibatch::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(pbibatch::error::Error::Reported) => ExitCode::from(pbibatch::error::exit::INVALID),
        Err(err) => {
            let code = err.exit_code();
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::from(code)
        }
    }
}
