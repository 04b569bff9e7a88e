//! Where requests go: the Power BI, Fabric and Entra bases per cloud, the IMDS endpoint, and
//! the plain-`http://` guard that `run` applies before anything is sent.

use std::time::Duration;

use url::Url;

use crate::job::Outbound;
use crate::job::model::Cloud;
use crate::secret::{Secret, redact_url};

/// Environment variable that overrides the Power BI REST base.
pub(crate) const ENV_POWERBI_URL: &str = "PBIBATCH_POWERBI_URL";
/// Environment variable that overrides the Fabric REST base.
pub(crate) const ENV_FABRIC_URL: &str = "PBIBATCH_FABRIC_URL";
/// Environment variable that overrides the Azure Resource Manager base (capacity steps).
pub(crate) const ENV_ARM_URL: &str = "PBIBATCH_ARM_URL";
/// Environment variable that overrides the Entra ID authority.
pub(crate) const ENV_AUTHORITY_URL: &str = "PBIBATCH_AUTHORITY_URL";
/// Environment variable that overrides the managed-identity (IMDS) endpoint.
pub(crate) const ENV_IMDS_URL: &str = "PBIBATCH_IMDS_URL";
/// The Azure instance metadata service, the managed-identity token source on VMs.
pub(crate) const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
/// The App Service / Container Apps / Functions managed-identity endpoint (set by the platform).
pub(crate) const ENV_IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// The secret the platform gives the app for its identity endpoint (`X-IDENTITY-HEADER`).
pub(crate) const ENV_IDENTITY_HEADER: &str = "IDENTITY_HEADER";

/// The hosts and token audiences of one cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Power BI REST base (paths are `{powerbi}/v1.0/myorg/...`).
    pub powerbi: Url,
    /// Fabric REST base (paths are `{fabric}/v1/...`).
    pub fabric: Url,
    /// Entra ID authority (token endpoint `{authority}/{tenant}/oauth2/v2.0/token`).
    pub authority: Url,
    /// Resource (audience) of Power BI tokens, without `/.default`.
    pub powerbi_resource: String,
    /// Resource (audience) of Fabric tokens, without `/.default`.
    pub fabric_resource: String,
    /// Azure Resource Manager base (`{arm}/subscriptions/...`), capacity steps.
    pub arm: Url,
    /// Resource (audience) of ARM tokens, without `/.default`.
    pub arm_resource: String,
}

/// The Azure Resource Manager host of a cloud (base and token audience are the same).
fn arm_default(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Public => "https://management.azure.com",
        Cloud::Usgov | Cloud::Usgovhigh | Cloud::Usdod => "https://management.usgovcloudapi.net",
        Cloud::China => "https://management.chinacloudapi.cn",
    }
}

/// The documented hosts of a sovereign cloud.
///
/// Power BI hosts and audiences are Microsoft's documented national-cloud values. Fabric is
/// only partly available outside the public cloud; the US government clouds use
/// `api.fabric.microsoft.us` and China `api.fabric.microsoft.cn`, each with its own host as
/// the token audience (see docs/executors.md; override with `PBIBATCH_FABRIC_URL`).
fn cloud_defaults(
    cloud: Cloud,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
) {
    // (powerbi, fabric, authority, powerbi resource, fabric resource)
    match cloud {
        Cloud::Public => (
            "https://api.powerbi.com",
            "https://api.fabric.microsoft.com",
            "https://login.microsoftonline.com",
            "https://analysis.windows.net/powerbi/api",
            "https://api.fabric.microsoft.com",
        ),
        Cloud::Usgov => (
            "https://api.powerbigov.us",
            "https://api.fabric.microsoft.us",
            "https://login.microsoftonline.com",
            "https://analysis.usgovcloudapi.net/powerbi/api",
            "https://api.fabric.microsoft.us",
        ),
        Cloud::Usgovhigh => (
            "https://api.high.powerbigov.us",
            "https://api.fabric.microsoft.us",
            "https://login.microsoftonline.us",
            "https://high.analysis.usgovcloudapi.net/powerbi/api",
            "https://api.fabric.microsoft.us",
        ),
        Cloud::Usdod => (
            "https://api.mil.powerbigov.us",
            "https://api.fabric.microsoft.us",
            "https://login.microsoftonline.us",
            "https://mil.analysis.usgovcloudapi.net/powerbi/api",
            "https://api.fabric.microsoft.us",
        ),
        Cloud::China => (
            "https://api.powerbi.cn",
            "https://api.fabric.microsoft.cn",
            "https://login.chinacloudapi.cn",
            "https://analysis.chinacloudapi.cn/powerbi/api",
            "https://api.fabric.microsoft.cn",
        ),
    }
}

/// Settings of the HTTP retry layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Tries of one request, the first included.
    pub max_tries: u32,
    /// First backoff pause (doubles, jittered).
    pub base_delay: Duration,
    /// Longest single backoff pause when the service gives no `Retry-After`.
    pub max_delay: Duration,
    /// Longest total time spent waiting between the tries of one request; a `Retry-After`
    /// that would pass it ends the retries with the throttling error.
    pub max_total_wait: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_tries: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(600),
        }
    }
}

/// How IMDS answers that Microsoft's clients retry are retried (404: the identity is not yet
/// assigned; 410: IMDS is being updated, for at least 70 s per its documentation). 429 and 5xx
/// are retried by the HTTP layer like every other call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImdsRetry {
    /// Retries after the first try (Microsoft's clients: 5).
    pub max_retries: u32,
    /// First pause after a 404; doubles (Microsoft's clients: 800 ms).
    pub delay: Duration,
    /// First pause after a 410; doubles. 3 s gives 3+6+12+24+48 = 93 s over 5 retries,
    /// above the 70 s IMDS asks for (the value azure-identity uses).
    pub gone_delay: Duration,
    /// Longest single pause.
    pub max_delay: Duration,
}

impl Default for ImdsRetry {
    fn default() -> Self {
        Self {
            max_retries: 5,
            delay: Duration::from_millis(800),
            gone_delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(64),
        }
    }
}

impl ImdsRetry {
    /// The pause before retry number `retry` (0-based) after an answer of `status`, or `None`
    /// when the answer is final or the retries are spent.
    pub(crate) fn delay_after(&self, status: u16, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let first = match status {
            404 => self.delay,
            410 => self.gone_delay,
            _ => return None,
        };
        Some(
            first
                .saturating_mul(2u32.saturating_pow(retry))
                .min(self.max_delay),
        )
    }
}

/// The App Service / Container Apps identity endpoint and its header secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityEndpoint {
    /// `IDENTITY_ENDPOINT`, e.g. `http://localhost:42356/msi/token`.
    pub url: Url,
    /// `IDENTITY_HEADER`, sent as `X-IDENTITY-HEADER`.
    pub header: Secret,
}

/// Client configuration: base overrides, the IMDS endpoint and HTTP settings.
///
/// A connection's `cloud` picks the default hosts; the `PBIBATCH_*_URL` overrides win over
/// every cloud (that is how `--simulate` and tests point everything at the simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The cloud of connections that name none (the job's default).
    pub cloud: Cloud,
    pub powerbi_url: Option<Url>,
    pub fabric_url: Option<Url>,
    pub authority_url: Option<Url>,
    /// Azure Resource Manager base override (`PBIBATCH_ARM_URL`).
    pub arm_url: Option<Url>,
    /// Managed-identity endpoint (`{imds}/metadata/identity/oauth2/token`).
    pub imds_url: Url,
    /// How IMDS 404 / 410 answers are retried.
    pub imds_retry: ImdsRetry,
    /// The App Service / Container Apps identity endpoint: when set, managed identities get
    /// their tokens there instead of from IMDS.
    pub identity_endpoint: Option<IdentityEndpoint>,
    pub retry: RetrySettings,
    /// Longest silence while waiting for or reading an answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Errors in the client configuration (bad base URLs).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

fn parse_base(name: &str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value.trim_end_matches('/')).map_err(|e| ConfigError {
        name: name.to_string(),
        message: format!("{} ({e})", redact_url(value)),
    })
}

impl ClientConfig {
    /// The public defaults for `cloud`, no overrides.
    pub fn for_cloud(cloud: Cloud) -> Self {
        Self {
            cloud,
            powerbi_url: None,
            fabric_url: None,
            authority_url: None,
            arm_url: None,
            imds_url: Url::parse(DEFAULT_IMDS_URL).expect("constant url parses"),
            imds_retry: ImdsRetry::default(),
            identity_endpoint: None,
            retry: RetrySettings::default(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(20),
        }
    }

    /// Reads `PBIBATCH_POWERBI_URL`, `PBIBATCH_FABRIC_URL`, `PBIBATCH_AUTHORITY_URL` and
    /// `PBIBATCH_IMDS_URL`; unset or unparsable values fall back to the cloud's hosts (use
    /// [`ClientConfig::try_from_env`] to be told about bad values).
    pub(crate) fn from_env(cloud: Cloud) -> ClientConfig {
        let mut cfg = Self::for_cloud(cloud);
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| parse_base(name, &v).ok())
        };
        cfg.powerbi_url = read(ENV_POWERBI_URL);
        cfg.fabric_url = read(ENV_FABRIC_URL);
        cfg.authority_url = read(ENV_AUTHORITY_URL);
        cfg.arm_url = read(ENV_ARM_URL);
        if let Some(imds) = read(ENV_IMDS_URL) {
            cfg.imds_url = imds;
        }
        let header = std::env::var(ENV_IDENTITY_HEADER)
            .ok()
            .filter(|v| !v.trim().is_empty());
        if let (Some(url), Some(header)) = (read(ENV_IDENTITY_ENDPOINT), header) {
            cfg.identity_endpoint = Some(IdentityEndpoint {
                url,
                header: Secret::new(header),
            });
        }
        cfg
    }

    /// Like [`ClientConfig::from_env`], but a set variable that is not a URL is an error.
    pub(crate) fn try_from_env(cloud: Cloud) -> Result<ClientConfig, ConfigError> {
        for name in [
            ENV_POWERBI_URL,
            ENV_FABRIC_URL,
            ENV_AUTHORITY_URL,
            ENV_ARM_URL,
            ENV_IMDS_URL,
            ENV_IDENTITY_ENDPOINT,
        ] {
            if let Ok(v) = std::env::var(name)
                && !v.trim().is_empty()
            {
                parse_base(name, &v)?;
            }
        }
        Ok(Self::from_env(cloud))
    }

    /// Points the three bases (and IMDS) at one server, as `--simulate` does.
    pub fn with_single_base(mut self, base: &Url) -> Self {
        let base = parse_base("base", base.as_str()).unwrap_or_else(|_| base.clone());
        self.powerbi_url = Some(base.clone());
        self.fabric_url = Some(base.clone());
        self.authority_url = Some(base.clone());
        self.arm_url = Some(base.clone());
        self.imds_url = base;
        // The simulator serves IMDS itself; a platform identity endpoint would bypass it.
        self.identity_endpoint = None;
        self
    }

    /// Overrides the bases one by one (`None` keeps the current value).
    pub fn with_bases(
        mut self,
        powerbi: Option<Url>,
        fabric: Option<Url>,
        authority: Option<Url>,
        imds: Option<Url>,
    ) -> Self {
        if powerbi.is_some() {
            self.powerbi_url = powerbi;
        }
        if fabric.is_some() {
            self.fabric_url = fabric;
        }
        if authority.is_some() {
            self.authority_url = authority;
        }
        if let Some(imds) = imds {
            self.imds_url = imds;
        }
        self
    }

    /// The effective hosts for a connection of `cloud`: overrides first, then the cloud's.
    pub fn endpoints(&self, cloud: Cloud) -> Endpoints {
        let (pbi, fabric, authority, pbi_res, fabric_res) = cloud_defaults(cloud);
        let fixed = |s: &str| Url::parse(s).expect("constant url parses");
        Endpoints {
            powerbi: self.powerbi_url.clone().unwrap_or_else(|| fixed(pbi)),
            fabric: self.fabric_url.clone().unwrap_or_else(|| fixed(fabric)),
            authority: self
                .authority_url
                .clone()
                .unwrap_or_else(|| fixed(authority)),
            powerbi_resource: pbi_res.to_string(),
            fabric_resource: fabric_res.to_string(),
            arm: self
                .arm_url
                .clone()
                .unwrap_or_else(|| fixed(arm_default(cloud))),
            arm_resource: arm_default(cloud).to_string(),
        }
    }
}

/// True when `url` may be used: `https`, or `http` to `localhost` / a loopback IP.
pub(crate) fn is_allowed_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback_host(url),
        _ => false,
    }
}

/// True when the URL's host is `localhost` or a loopback address.
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_one(what: &str, raw: &str, problems: &mut Vec<String>) {
    match Url::parse(raw) {
        Ok(url) if is_allowed_url(&url) => {}
        Ok(url) if url.scheme() == "http" => problems.push(format!(
            "{what}: plain http is refused for {} (use https; http is allowed only for localhost and loopback addresses)",
            redact_url(raw)
        )),
        Ok(url) => problems.push(format!(
            "{what}: unsupported scheme `{}` in {}",
            url.scheme(),
            redact_url(raw)
        )),
        Err(_) => problems.push(format!("{what}: not a valid URL: {}", redact_url(raw))),
    }
}

/// Checks every URL a run sends to, as [`Job::outbound`](crate::job::model::Job::outbound)
/// lists them: the bases of each cloud the steps' connections use (the configured cloud when
/// none says), the managed-identity endpoint when a connection uses one, and every URL a step
/// calls directly. `run` calls this before anything is sent and exits 2 on `Err`; the messages
/// show URLs redacted.
pub fn check_urls(out: &Outbound, cfg: &ClientConfig) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if out.service {
        let clouds = if out.clouds.is_empty() {
            vec![cfg.cloud]
        } else {
            out.clouds.clone()
        };
        for cloud in clouds {
            let ep = cfg.endpoints(cloud);
            check_one("Power BI base", ep.powerbi.as_str(), &mut problems);
            check_one("Fabric base", ep.fabric.as_str(), &mut problems);
            check_one("authority", ep.authority.as_str(), &mut problems);
        }
        // IMDS is plain http on a link-local address by design; only a changed endpoint is
        // checked, and it must be loopback when it is http.
        let uses_mi = out.managed_identity;
        if uses_mi && let Some(endpoint) = &cfg.identity_endpoint {
            check_one(
                "managed identity endpoint (IDENTITY_ENDPOINT)",
                endpoint.url.as_str(),
                &mut problems,
            );
        } else if uses_mi && cfg.imds_url.as_str().trim_end_matches('/') != DEFAULT_IMDS_URL {
            check_one(
                "managed identity endpoint",
                cfg.imds_url.as_str(),
                &mut problems,
            );
        }
    }
    for (what, url) in &out.step_urls {
        check_one(what, url.expose(), &mut problems);
    }
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_is_allowed_and_remote_http_is_not() {
        let ok = |s: &str| is_allowed_url(&Url::parse(s).unwrap());
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(ok("http://localhost:1/"));
        assert!(ok("http://[::1]:9/"));
        assert!(ok("https://api.powerbi.com"));
        assert!(!ok("http://api.powerbi.com"));
        assert!(!ok("http://10.0.0.1/"));
        assert!(!ok("http://localhost.evil.com/"));
        assert!(!ok("ftp://localhost/"));
    }

    #[test]
    fn cloud_hosts() {
        let cfg = ClientConfig::for_cloud(Cloud::Public);
        let ep = cfg.endpoints(Cloud::Usgovhigh);
        assert_eq!(ep.powerbi.as_str(), "https://api.high.powerbigov.us/");
        assert_eq!(ep.authority.as_str(), "https://login.microsoftonline.us/");
        let ep = cfg.endpoints(Cloud::China);
        assert_eq!(ep.authority.as_str(), "https://login.chinacloudapi.cn/");
        assert_eq!(
            ep.powerbi_resource,
            "https://analysis.chinacloudapi.cn/powerbi/api"
        );
    }

    #[test]
    fn overrides_win_over_the_cloud() {
        let base = Url::parse("http://127.0.0.1:4000").unwrap();
        let cfg = ClientConfig::for_cloud(Cloud::Public).with_single_base(&base);
        let ep = cfg.endpoints(Cloud::Usdod);
        assert_eq!(ep.powerbi, base);
        assert_eq!(ep.fabric, base);
        assert_eq!(ep.authority, base);
        assert_eq!(
            ep.powerbi_resource,
            "https://mil.analysis.usgovcloudapi.net/powerbi/api"
        );
    }

    #[test]
    fn imds_retries_404_and_410_and_gives_410_at_least_70_seconds() {
        let r = ImdsRetry::default();
        assert_eq!(r.delay_after(404, 0), Some(Duration::from_millis(800)));
        assert_eq!(r.delay_after(404, 1), Some(Duration::from_millis(1600)));
        let gone: Duration = (0..r.max_retries)
            .map(|n| r.delay_after(410, n).unwrap())
            .sum();
        assert!(gone >= Duration::from_secs(70), "{gone:?}");
        assert_eq!(r.delay_after(410, r.max_retries), None);
        for status in [200, 400, 401, 403, 429, 500, 503] {
            assert_eq!(r.delay_after(status, 0), None, "{status}");
        }
    }
}
