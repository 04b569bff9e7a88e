//! `pbibatch sim serve`: the simulator on a fixed address until Ctrl-C.

use std::path::Path;

use crate::error::{Error, exit};

/// Serves the simulator (the built-in estate, or `profile`) on `addr`.
pub(super) fn serve(addr: &str, profile: Option<&Path>) -> Result<u8, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", e))?;
    runtime
        .block_on(crate::sim::serve_command(addr, profile))
        .map(|()| exit::OK)
        .map_err(Error::from)
}
