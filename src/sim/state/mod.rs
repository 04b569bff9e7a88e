//! The simulated estate and its clock: workspaces, items, runs (refreshes, transactions,
//! exports, job instances), tokens, counters and recorded requests.
//!
//! Runs are not driven by timers: each run records when it was created and how long it
//! takes, and its phase is computed from the clock when asked. That keeps the simulator
//! cheap, exact and compatible with `tokio::time::pause()`.

mod capacity;
mod model;
mod world;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

pub(crate) use capacity::{ArmOperation, Capacity};
pub(crate) use model::{
    Audience, EnhancedRequest, Item, ItemKind, Phase, Principal, RefreshOrigin, Run, RunKind,
    TokenInfo,
};
pub(crate) use world::{World, collapse_whitespace};

use super::profile::{Credentials, DurationSpec, Throttle};

/// Settings fixed for the simulator's lifetime.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `http://127.0.0.1:PORT`, used in `Location` headers and continuation URIs.
    pub base_url: String,
    pub credentials: Credentials,
    pub token_lifetime: Duration,
    pub latency: DurationSpec,
    pub throttle: Option<Throttle>,
    pub transient_503: f64,
    pub connection_drop: f64,
    pub page_size: usize,
    pub strict_audience: bool,
    /// The strict rules in force (all but those the profile relaxed).
    pub rules: super::strict::Rules,
    pub redirect_exports: bool,
    pub max_recorded_requests: usize,
    pub seed: u64,
}

/// Simulated time: a monotonic instant (tokio's, so tests may pause it) plus the wall-clock
/// time it corresponds to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    pub(super) fn new() -> Self {
        Clock {
            start: Instant::now(),
            wall: Utc::now(),
        }
    }

    pub(super) fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall-clock time of `at`.
    pub(super) fn wall(&self, at: Instant) -> DateTime<Utc> {
        // Runs before the start (`past_runs`) lie in the past of the wall clock too.
        match at.checked_duration_since(self.start) {
            Some(since) => self.wall + chrono::Duration::from_std(since).unwrap_or_default(),
            None => {
                let before = self.start.saturating_duration_since(at);
                self.wall - chrono::Duration::from_std(before).unwrap_or_default()
            }
        }
    }

    pub(super) fn start(&self) -> Instant {
        self.start
    }
}

/// Power BI timestamps: `2024-05-01T10:00:00.123Z`.
pub(crate) fn pbi_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Fabric job timestamps: 7 fractional digits and no `Z` (powerbi-api.md section 0).
pub(crate) fn fabric_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

/// A stable GUID from names, so the same profile always yields the same ids.
pub(crate) fn derived_uuid(parts: &[&str]) -> Uuid {
    let digest = Sha256::digest(parts.join("\u{0}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A 64-bit number from names and a seed (for per-resource random streams).
pub(crate) fn derived_u64(seed: u64, parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(parts.join("\u{0}").as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Unpadded base64url (JWT-shaped tokens, SAS signatures, export ids).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_known_values() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn fabric_time_has_seven_digits_and_no_zone() {
        let t = DateTime::parse_from_rfc3339("2023-04-22T06:35:00.7812154Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(fabric_time(t), "2023-04-22T06:35:00.7812154");
        assert_eq!(pbi_time(t), "2023-04-22T06:35:00.781Z");
    }

    #[test]
    fn ids_are_deterministic() {
        assert_eq!(derived_uuid(&["a", "b"]), derived_uuid(&["a", "b"]));
        assert_ne!(derived_uuid(&["a", "b"]), derived_uuid(&["ab"]));
    }
}
