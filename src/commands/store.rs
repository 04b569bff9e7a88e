//! `pbibatch history` and `pbibatch show`: read the store, print a table or JSON.

use crate::cli::{HistoryArgs, ShowArgs, TableFormat};
use crate::error::{Error, exit};
use crate::store::{Store, StoreError, resolve_path};

/// `pbibatch history`: the latest runs first.
pub(super) fn history(args: &HistoryArgs) -> Result<u8, Error> {
    let runs = match open_for_reading(args.state.as_deref())? {
        Some(store) => store
            .history(args.job.as_deref(), args.limit)
            .map_err(to_error)?,
        None => Vec::new(),
    };
    let text = match args.format {
        TableFormat::Table => crate::store::render_history(&runs),
        TableFormat::Json => json(&runs)?,
    };
    print(&text)?;
    Ok(exit::OK)
}

/// `pbibatch show RUN_ID|last`: one run, with the content of its JSON run report.
pub(super) fn show(args: &ShowArgs) -> Result<u8, Error> {
    let Some(store) = open_for_reading(args.state.as_deref())? else {
        return Err(to_error(StoreError::NoRuns(None)));
    };
    let run = store.load_run(&args.run).map_err(to_error)?;
    let text = match args.format {
        TableFormat::Table => crate::store::render_run(&run),
        TableFormat::Json => json(&run.to_json())?,
    };
    print(&text)?;
    Ok(exit::OK)
}

/// Read-only commands never create a store: a missing file is an empty history.
fn open_for_reading(state: Option<&str>) -> Result<Option<Store>, Error> {
    match resolve_path(state) {
        Some(path) => Store::open_existing(&path).map_err(to_error),
        None => Err(Error::Usage(
            "no state store (`--state none`): there is no history to read".into(),
        )),
    }
}

fn to_error(err: StoreError) -> Error {
    Error::Store(err)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))
}

fn print(text: &str) -> Result<(), Error> {
    crate::stdout::write(text)
}
