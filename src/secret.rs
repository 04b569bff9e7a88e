//! Secrets: values that must never leave memory in clear text.
//!
//! [`Secret`] has no `Display`, its `Debug` prints `***`, and its `Serialize` writes `"***"`,
//! so a secret cannot reach a log line, a report or the state store by accident. Code that
//! must send the value (an HTTP request) calls [`Secret::expose`] at the last moment.

use std::fmt;

/// A string that is never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear-text value, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// Query parameters whose value is a credential (SAS signatures, codes, keys, tokens).
const SECRET_QUERY_KEYS: &[&str] = &[
    "sig",
    "code",
    "key",
    "apikey",
    "api_key",
    "token",
    "access_token",
    "client_secret",
    "password",
    "secret",
];

/// A URL fit for printing, for any URL a user gave (`sas_flow` and `webhook` URLs) or one
/// whose origin is not known: credential query values become `***` (`sig=***`), user info is
/// dropped. Anything that does not parse as a URL is replaced whole.
///
/// The path is shown only where it is known to carry no credential: the Power BI, Fabric and
/// Entra API hosts, and the Power Automate / Logic Apps trigger hosts (whose secret is the
/// `sig` parameter, starred). Anywhere else only the origin is shown,
/// `https://hooks.slack.com/***`: a Teams or Slack incoming webhook keeps its secret in the
/// path, and so may any other endpoint. Loopback is no exception (the simulator's webhook sink
/// and SAS triggers, a local relay), nor is a URL that happens to carry a `sig` parameter.
pub(crate) fn redact_url(url: &str) -> String {
    redact(url, path_is_public)
}

/// A URL the client built itself under a configured Power BI, Fabric, Entra or managed
/// identity base (`{powerbi}/v1.0/myorg/...`): its path is made of ids, so it is shown, with
/// credential query values starred. Whatever the host: the bases may point at a loopback
/// simulator or a proxy.
pub(crate) fn redact_api_url(url: &str) -> String {
    redact(url, |_| true)
}

fn redact(url: &str, path_is_public: impl Fn(&url::Url) -> bool) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "***".to_string();
    };
    let _ = parsed.set_password(None);
    let _ = parsed.set_username("");
    if !path_is_public(&parsed) {
        return match parsed.host_str() {
            Some(_) => format!("{}/***", parsed.origin().ascii_serialization()),
            None => "***".to_string(),
        };
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let redacted = SECRET_QUERY_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (
                    k.into_owned(),
                    if redacted {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        // Build the query by hand so `***` stays readable instead of being percent-encoded.
        let query = pairs
            .iter()
            .map(|(k, v)| {
                if v == "***" {
                    format!("{}=***", encode_component(k))
                } else {
                    format!("{}={}", encode_component(k), encode_component(v))
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        parsed.set_query(Some(&query));
    }
    parsed.to_string()
}

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Hosts (and their subdomains) whose URL paths hold ids, never credentials.
const PUBLIC_PATH_HOSTS: &[&str] = &[
    "powerbi.com",
    "powerbigov.us",
    "powerbi.cn",
    "fabric.microsoft.com",
    "fabric.microsoft.us",
    "fabric.microsoft.cn",
    "microsoftonline.com",
    "microsoftonline.us",
    "chinacloudapi.cn",
    "analysis.windows.net",
    // Power Automate / Logic Apps HTTP triggers: the path names the workflow and trigger, the
    // secret is the `sig` query parameter (starred).
    "logic.azure.com",
    "logic.azure.us",
    "logic.azure.cn",
    "api.powerplatform.com",
];

/// True for a URL on one of [`PUBLIC_PATH_HOSTS`]; an IP address or any other name (loopback
/// included) is not known to keep its secrets out of the path.
fn path_is_public(url: &url::Url) -> bool {
    let Some(url::Host::Domain(host)) = url.host() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    PUBLIC_PATH_HOSTS
        .iter()
        .any(|h| host == *h || host.ends_with(&format!(".{h}")))
}

/// Percent-encodes one URL path segment or query value (RFC 3986 unreserved characters stay).
pub(crate) fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// True for an HTTP header name that carries a credential (its value is a secret).
pub(crate) fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || n.contains("key")
        || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("signature")
        || n.contains("auth")
        // The App Service / Container Apps identity endpoint's secret.
        || n == "x-identity-header"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn sas_signature_is_redacted() {
        let url = "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SECRETSIG";
        let shown = redact_url(url);
        assert!(shown.contains("sig=***"), "{shown}");
        assert!(!shown.contains("SECRETSIG"));
        assert!(shown.contains("api-version=2016-06-01"));
    }

    #[test]
    fn webhook_paths_are_hidden_outside_known_api_hosts() {
        let teams = "https://contoso.webhook.office.com/webhookb2/abc@tenant/IncomingWebhook/SECRETPART/xyz";
        assert_eq!(redact_url(teams), "https://contoso.webhook.office.com/***");
        let slack = "https://hooks.slack.com/services/T000/B000/SECRETPART";
        assert_eq!(redact_url(slack), "https://hooks.slack.com/***");
        let api = "https://api.powerbi.com/v1.0/myorg/groups/g/datasets/d/refreshes";
        assert_eq!(redact_url(api), api);
    }

    #[test]
    fn loopback_and_sig_do_not_make_a_path_public() {
        // The simulator's webhook sink and SAS trigger, a local relay: origin only.
        for url in [
            "http://127.0.0.1:8080/hooks/SECRETPATH",
            "http://localhost:8080/hooks/SECRETPATH",
            "http://[::1]:8080/hooks/SECRETPATH",
            "http://127.0.0.1:8080/workflows/SECRETPATH/triggers/manual/paths/invoke?sig=SIG",
            "https://relay.example.com/SECRETPATH?sig=SIG&api-version=1",
            "http://169.254.169.254/SECRETPATH",
        ] {
            let shown = redact_url(url);
            assert!(
                !shown.contains("SECRETPATH") && !shown.contains("SIG"),
                "{shown}"
            );
            assert!(shown.ends_with("/***"), "{shown}");
        }
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hooks/SECRETPATH?sig=SIG"),
            "http://127.0.0.1:8080/***"
        );
        // A Power Automate trigger keeps its path, with `sig` starred.
        let flow = "https://prod-01.usgovtexas.logic.azure.us/workflows/abc/triggers/manual/paths/invoke?sig=SIG";
        assert_eq!(
            redact_url(flow),
            "https://prod-01.usgovtexas.logic.azure.us/workflows/abc/triggers/manual/paths/invoke?sig=***"
        );
        let env_flow = "https://1234.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIG";
        assert!(redact_url(env_flow).ends_with("/paths/invoke?api-version=1&sig=***"));
    }

    #[test]
    fn the_clients_own_api_urls_keep_their_path_on_any_host() {
        assert_eq!(
            redact_api_url("http://127.0.0.1:9/v1.0/myorg/groups/g/datasets/d/refreshes"),
            "http://127.0.0.1:9/v1.0/myorg/groups/g/datasets/d/refreshes"
        );
        assert_eq!(
            redact_api_url(
                "http://127.0.0.1:9/v1/workspaces/w/items?continuationToken=abc&token=T"
            ),
            "http://127.0.0.1:9/v1/workspaces/w/items?continuationToken=abc&token=***"
        );
        assert_eq!(redact_api_url("not a url"), "***");
    }

    #[test]
    fn unparsable_url_is_hidden_whole() {
        assert_eq!(redact_url("not a url sig=abc"), "***");
    }

    #[test]
    fn credential_headers() {
        assert!(is_credential_header("Authorization"));
        assert!(is_credential_header("x-api-key"));
        assert!(!is_credential_header("Content-Type"));
    }
}
