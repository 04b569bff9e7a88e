//! The one integration-test binary (linking once keeps CI fast). Each area has its module.

mod common;
mod reporter;
mod store_cli;
mod store_engine;
mod store_lock;
mod store_recorder;
mod store_resume;
mod store_schema;
mod store_support;
