//! One function per subcommand: wires the stages together and returns the exit code.

use crate::cli::{Cli, Command, SimCommand};
use crate::error::{Error, exit};

/// Runs the parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Validate(args) => crate::plan::cmd::validate(&args),
        Command::Plan(args) => crate::plan::cmd::plan(&args),
        Command::Graph(args) => crate::plan::cmd::graph(&args),
        Command::Schema => crate::plan::cmd::schema(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "pbibatch", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Sim(SimCommand::Serve { addr, profile }) => {
            crate::sim::serve_cli(&addr, profile.as_deref())
        }
        _ => Err(Error::Other("this command is not available yet".into())),
    }
}
