//! What tests read back: recorded requests and counters (`GET /_sim/requests`,
//! `GET /_sim/counters`, and the same through [`super::SimServer`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::http::Sim;

/// One request as the simulator received it (credentials included, as sent: this is a test
/// tool on loopback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// RFC 3339 receive time.
    pub time: String,
    pub method: String,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Counts of one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCounters {
    /// Refresh / run / export / flow / hook calls accepted (dropped ones included).
    pub triggers: u64,
    /// Status reads (history, execution details, transactions, export status, job instance).
    pub polls: u64,
    /// Cancel calls.
    pub cancels: u64,
}

/// Counters of the whole simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every request received (introspection excluded).
    pub requests: u64,
    /// Access tokens issued (Entra token endpoint and IMDS).
    pub tokens_issued: u64,
    /// 429 answers served by the throttling rule.
    pub throttled: u64,
    /// Transient 503 answers served.
    pub unavailable: u64,
    /// Connections closed without an answer.
    pub dropped_connections: u64,
    /// Per resource, keyed by [`resource_key`].
    pub resources: BTreeMap<String, ResourceCounters>,
}

impl Counters {
    /// The counters of a resource (zeros when unknown).
    pub fn resource(&self, key: &str) -> ResourceCounters {
        self.resources.get(key).copied().unwrap_or_default()
    }
}

/// The key of a resource in [`Counters::resources`]: `dataset:Sales/Orders`,
/// `dataflow:WS/Name` (Gen1), `fabric_dataflow:WS/Name` (Gen2), `report:WS/Name`,
/// `item:WS/Name`; flows and hooks are `flow:NAME` and `hook:NAME` (pass `""` as workspace).
pub fn resource_key(kind: &str, workspace: &str, name: &str) -> String {
    if workspace.is_empty() {
        format!("{kind}:{name}")
    } else {
        format!("{kind}:{workspace}/{name}")
    }
}

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/requests", get(requests))
        .route("/_sim/counters", get(counters))
}

async fn requests(State(sim): State<Arc<Sim>>) -> Json<Vec<RecordedRequest>> {
    Json(sim.requests())
}

async fn counters(State(sim): State<Arc<Sim>>) -> Json<Counters> {
    Json(sim.counters())
}
