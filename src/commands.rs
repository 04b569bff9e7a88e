//! One function per subcommand: wires the stages together and returns the exit code.

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};

/// Runs the parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Schema => Err(Error::Other("`schema` is not available yet".into())),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "pbibatch", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::History(args) => crate::store::history_command(&args),
        Command::Show(args) => crate::store::show_command(&args),
        _ => Err(Error::Other("this command is not available yet".into())),
    }
}
