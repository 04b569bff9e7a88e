//! Live progress on a terminal (indicatif): an overall bar (done / total, elapsed, ETA), one
//! line per running step (type, resource, remote status, attempt, elapsed), and one permanent
//! line per finished step (`✓` / `✗` / `-`, duration, the error or reason).
//!
//! Split in two so the text can be tested without a terminal: [`ProgressModel`] (`model.rs`)
//! folds events into [`Change`]s (pure, deterministic: durations are the ones the scheduler
//! stamped), and [`ProgressReporter`] (`display.rs`) plays those changes on a `MultiProgress`.
//! A non-terminal never gets this display (see [`enabled`]): the plain [`super::lines`] take
//! over there. Here: whether the display is used, and the stderr writer that log records
//! share with it.

mod display;
mod model;

pub use display::{MAX_RUNNING_LINES, ProgressReporter};
pub use model::{Change, ProgressModel};

use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressDrawTarget};

use super::ProgressMode;

/// Whether the live display is used: `never` never; `always` whenever stderr is a terminal;
/// `auto` when stderr is a terminal that can move its cursor (`TERM` is not `dumb`).
pub(crate) fn enabled(mode: ProgressMode, stderr_is_terminal: bool, term: Option<&str>) -> bool {
    match mode {
        ProgressMode::Never => false,
        ProgressMode::Always => stderr_is_terminal,
        ProgressMode::Auto => stderr_is_terminal && term != Some("dumb"),
    }
}

/// The live display drawing on stderr, if any, so log records can be written around it.
static ON_STDERR: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// The writer for log records on stderr (give `log_writer` to tracing-subscriber's
/// `with_writer`). While the live display is drawn it lifts the bars, writes the record and
/// redraws them, so a warning never lands in the middle of a bar; otherwise it writes as is.
pub(crate) fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// One log record, written to stderr when dropped (see [`log_writer`]).
pub(crate) struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&self.0);
            let _ = err.flush();
        };
        // Clone out of the lock: the display is never drawn while the lock is held.
        let display = ON_STDERR.lock().ok().and_then(|d| d.clone());
        match display {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

/// Clears the live display for good before a last line is printed and the process exits (a
/// second Ctrl-C): the line then starts on a clean terminal, not under a stale frame.
pub(crate) fn clear_for_exit() {
    let display = ON_STDERR.lock().ok().and_then(|mut d| d.take());
    if let Some(multi) = display {
        let _ = multi.clear();
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}

#[cfg(test)]
mod tests {
    use indicatif::ProgressBar;

    use super::*;

    #[test]
    fn progress_only_on_a_terminal() {
        assert!(enabled(ProgressMode::Auto, true, Some("xterm-256color")));
        assert!(!enabled(ProgressMode::Auto, true, Some("dumb")));
        assert!(!enabled(ProgressMode::Auto, false, Some("xterm")));
        assert!(enabled(ProgressMode::Always, true, Some("dumb")));
        assert!(!enabled(ProgressMode::Always, false, None));
        assert!(!enabled(ProgressMode::Never, true, Some("xterm")));
    }

    /// An in-memory terminal recording what indicatif does to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(std::sync::Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("write {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("write {s}"));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("clear".into());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_last_line_before_exit_is_not_printed_under_a_stale_frame() {
        let screen = Screen::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        let bar = multi.add(ProgressBar::new_spinner().with_message("model · in progress"));
        bar.tick();
        *ON_STDERR.lock().unwrap() = Some(multi);
        let drawn = screen.0.lock().unwrap().len();
        assert!(drawn > 0);

        clear_for_exit();
        let after_clear = screen.0.lock().unwrap().clone();
        assert!(
            after_clear[drawn..].iter().any(|e| e == "clear"),
            "the frame is cleared: {after_clear:?}"
        );
        assert!(ON_STDERR.lock().unwrap().is_none());
        // The bar's own ticks (a steady tick in a real run) draw nothing any more.
        bar.set_message("redrawn");
        bar.tick();
        assert_eq!(screen.0.lock().unwrap().len(), after_clear.len());
    }
}
