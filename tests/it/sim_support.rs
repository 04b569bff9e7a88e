//! Helpers for the simulator tests: start a simulator from YAML, a loopback client, tokens.
#![allow(dead_code)]

use std::net::SocketAddr;

use pbibatch::sim::{Profile, SimServer};
use reqwest::{Client, Method, Response};
use serde_json::Value;

pub(crate) const PBI_SCOPE: &str = "https://analysis.windows.net/powerbi/api/.default";
pub(crate) const FABRIC_SCOPE: &str = "https://api.fabric.microsoft.com/.default";

/// Starts a simulator for a YAML profile on an ephemeral loopback port.
pub(crate) async fn start(yaml: &str) -> SimServer {
    let profile = Profile::from_yaml(yaml).expect("valid profile");
    start_profile(profile).await
}

pub(crate) async fn start_profile(profile: Profile) -> SimServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    pbibatch::sim::start(profile, addr)
        .await
        .expect("simulator starts")
}

/// A plain-HTTP client (reqwest needs a rustls provider installed even for http://).
pub(crate) fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().build().unwrap()
}

/// A client-credentials token for `scope`.
pub(crate) async fn token(sim: &SimServer, scope: &str) -> String {
    let response = client()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            sim.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &sim.client_id()),
            ("client_secret", &sim.client_secret()),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// An authenticated call to the simulator: `(status, headers, body as JSON or Null)`.
pub(crate) struct Api<'a> {
    pub sim: &'a SimServer,
    pub client: Client,
    pub pbi: String,
    pub fabric: String,
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn answer(response: Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        bytes,
    }
}

impl<'a> Api<'a> {
    pub(crate) async fn new(sim: &'a SimServer) -> Api<'a> {
        Api {
            sim,
            client: client(),
            pbi: token(sim, PBI_SCOPE).await,
            fabric: token(sim, FABRIC_SCOPE).await,
        }
    }

    /// The same calls with a signed-in user's tokens instead of the service principal's.
    pub(crate) fn as_user(sim: &'a SimServer) -> Api<'a> {
        Api {
            sim,
            client: client(),
            pbi: sim.user_token(PBI_SCOPE).unwrap(),
            fabric: sim.user_token(FABRIC_SCOPE).unwrap(),
        }
    }

    /// A call with a raw body and the given `Content-Type` (none when `None`); `path` is the
    /// whole path (`/v1.0/myorg/...` or `/v1/...`), which picks the token.
    pub(crate) async fn send_typed(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Answer {
        let token = if path.starts_with("/v1.0/") {
            &self.pbi
        } else {
            &self.fabric
        };
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.sim.base_url()))
            .bearer_auth(token)
            .body(body.to_string());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A Power BI call; `path` starts after `/v1.0/myorg`.
    pub(crate) async fn pbi(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}/v1.0/myorg{path}", self.sim.base_url());
        let mut req = self.client.request(method, url).bearer_auth(&self.pbi);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A Power BI call with a raw body.
    pub(crate) async fn pbi_raw(&self, method: Method, path: &str, body: &str) -> Answer {
        let url = format!("{}/v1.0/myorg{path}", self.sim.base_url());
        let req = self
            .client
            .request(method, url)
            .bearer_auth(&self.pbi)
            .header("content-type", "application/json")
            .body(body.to_string());
        answer(req.send().await.unwrap()).await
    }

    /// A Fabric call; `path` starts after `/v1`.
    pub(crate) async fn fabric(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}/v1{path}", self.sim.base_url());
        let mut req = self.client.request(method, url).bearer_auth(&self.fabric);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// Any URL (e.g. a `Location`) with the Fabric token.
    pub(crate) async fn fabric_url(&self, url: &str) -> Answer {
        answer(
            self.client
                .get(url)
                .bearer_auth(&self.fabric)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST to any URL (e.g. a job's `.../cancel`) with the Fabric token.
    pub(crate) async fn fabric_url_post(&self, url: &str) -> Answer {
        answer(
            self.client
                .post(url)
                .bearer_auth(&self.fabric)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `(workspace id, item id)` by names.
    pub(crate) fn ids(&self, ws: &str, item: &str) -> (String, String) {
        self.sim.ids(ws, item).expect("known names")
    }
}

/// Percent-encodes one path segment.
pub(crate) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
