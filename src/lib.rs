//! pbibatch: refresh Power BI and Microsoft Fabric resources in dependency order.
//!
//! ```text
//! job.yaml --parse--> Job (values keep their source spans) --validate--> Plan (petgraph)
//!   --> Engine (the only place that schedules, and the only one that emits RunEvents)
//!         --> executors (one file per step type) --> Power BI / Fabric client (auth, HTTP retry)
//!   --> reporters (pure consumers of RunEvents): log lines, progress, Kestra lines,
//!       JSON / JUnit / Markdown report, the SQLite store
//! ```
//!
//! The simulator (`sim`) serves a faithful local model of the remote APIs for tests,
//! examples and `--simulate`.

pub mod cli;
pub mod commands;
pub mod discover;
pub mod engine;
pub mod error;
pub mod event;
pub mod executor;
pub mod export;
pub mod job;
pub mod plan;
pub mod powerbi;
pub mod reporter;
pub mod secret;
pub mod sim;
pub mod stdout;
pub mod store;
pub(crate) mod suggest;
pub(crate) mod term;
