//! Everything a command prints on stdout goes through [`write`], so a reader that stops early
//! (`pbibatch completions bash | head -3`, `pbibatch schema | head`) ends the output quietly
//! instead of panicking in `print!` with a backtrace.
//!
//! Rust ignores SIGPIPE, so a closed pipe is an `EPIPE` error on the write. Like cargo and
//! ripgrep, pbibatch treats it as the reader's choice: the rest of the output is dropped and
//! the command's own exit code stands (a `run --kestra` keeps the run's code).

use std::io::Write;

use crate::error::Error;

/// Writes `text` to stdout and flushes; a closed pipe is not an error.
pub fn write(text: &str) -> Result<(), Error> {
    write_to(&mut std::io::stdout().lock(), text.as_bytes())
}

/// [`write`] to any writer (tests use a closed one).
pub(crate) fn write_to(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("cannot write to stdout", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_not_an_error() {
        assert!(write_to(&mut Closed, b"text").is_ok());
    }
}
