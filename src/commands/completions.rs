//! `pbibatch completions SHELL`: the shell completion script.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, exit};

/// Prints the completion script for `shell`.
pub(super) fn command(shell: clap_complete::Shell) -> Result<u8, Error> {
    let mut cmd = Cli::command();
    // Generated whole, then written once: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pbibatch", &mut script);
    crate::stdout::write_to(&mut std::io::stdout().lock(), &script)?;
    Ok(exit::OK)
}
