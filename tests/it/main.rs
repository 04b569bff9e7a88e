//! The one integration-test binary (linking once keeps CI fast). Each area has its module.

mod common;
mod store_recorder;
mod store_support;
