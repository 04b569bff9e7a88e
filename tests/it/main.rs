//! The one integration-test binary (linking once keeps CI fast). Each area has its module.

mod common;
mod sim_entra;
mod sim_powerbi;
mod sim_support;
