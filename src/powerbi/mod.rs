//! The Power BI / Fabric REST client: one reqwest client, tokens, HTTP-level retry.
//!
//! - [`config`]: bases per cloud and the plain-http guard ([`check_urls`]);
//! - [`auth`]: the token cache (one token per connection and audience, single flight);
//! - [`http`]: transient-fault retries honouring `Retry-After`, safe redirects;
//! - [`errors`]: [`ClientError`] and the parsers of the services' error envelopes;
//! - [`resolve`]: names → ids with near-match hints;
//! - [`api`]: the typed calls the executors make;
//! - [`arm`]: Azure Resource Manager calls on Fabric capacities (resume, suspend, SKU);
//! - [`skus`]: what each capacity SKU allows (documented refresh parallelism).

pub(crate) mod api;
pub(crate) mod arm;
pub mod auth;
pub(crate) mod capacities;
pub(crate) mod client;
pub(crate) mod config;
pub mod errors;
pub mod http;
pub(crate) mod resolve;
pub(crate) mod skus;

pub use client::{Api, ApiResponse, PowerBiClient};
pub use config::{ClientConfig, ConfigError, RetrySettings, check_urls};
pub use errors::ClientError;
