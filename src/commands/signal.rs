//! Signals, turned into one cancellation in one place: the first SIGINT/SIGTERM cancels the
//! run, the second exits at once.

use tokio_util::sync::CancellationToken;

use crate::error::exit;

/// First SIGINT/SIGTERM: stop starting work and cancel in-flight work (the engine does it).
/// Second: exit at once with 130.
pub(super) fn spawn_handler(interrupt: CancellationToken) {
    tokio::spawn(async move {
        let mut count = 0u32;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                tracing::warn!("interrupted: starting nothing new, cancelling in-flight work");
                interrupt.cancel();
            } else {
                crate::reporter::progress::clear_for_exit();
                eprintln!("interrupted twice: exiting now");
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
