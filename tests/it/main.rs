//! The one integration-test binary (linking once keeps CI fast). Each area has its module.

mod common;
mod docs;
mod engine_run;
mod export_kestra;
mod job_files;
mod reporter;
mod run_cli;
mod sim_cli;
mod sim_conformance;
mod sim_dataflow_export;
mod sim_entra;
mod sim_fabric;
mod sim_flow;
mod sim_knobs;
mod sim_powerbi;
mod sim_profile_schema;
mod sim_support;
mod vscode;
