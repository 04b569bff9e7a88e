//! Client errors, and the parsers of the services' error envelopes: Power BI
//! `{"error":{code,message}}` (+ `pbi.error`), Fabric `{errorCode,message,moreDetails}`, the
//! 429 `{"message"}`, Entra `{error,error_description,error_codes}`, and the
//! `serviceExceptionJson` string found in refresh history.

use std::time::Duration;

use serde_json::Value;

/// A failure of one client call. Messages never hold a secret: URLs are redacted and bodies
/// are the service's error text only.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// The service answered with a non-success status.
    #[error("{}", api_message(*.status, .code.as_deref(), .message, .method, .url, .request_id.as_deref()))]
    Api {
        status: u16,
        /// The service's error code (`PowerBIEntityNotFound`, `ItemNotFound`, ...).
        code: Option<String>,
        message: String,
        /// `Retry-After` of the answer, when given.
        retry_after: Option<Duration>,
        /// Boxed, like `request_id`, to keep the error small (clippy's `result_large_err`).
        method: Box<str>,
        /// Redacted.
        url: String,
        /// The service's id of this answer, the one value Microsoft support asks for: Fabric's
        /// `requestId` in the error body, else the `RequestId` header every Power BI answer
        /// carries, else `x-ms-request-id`.
        request_id: Option<Box<str>>,
    },
    /// No answer: connect error, timeout, broken connection (after the retries).
    #[error("{method} {url}: {message}")]
    Transport {
        message: String,
        method: String,
        /// Redacted.
        url: String,
        /// True when the request may have reached the service (anything but a connect
        /// error): a non-idempotent call may have been carried out.
        maybe_sent: bool,
    },
    /// Entra ID (or IMDS) refused to give a token.
    #[error("token request for connection `{connection}` failed: {message}")]
    Auth {
        connection: String,
        message: String,
        /// Entra (or IMDS) answered and said no (a 4xx other than 408 / 429), or the
        /// credentials cannot work at all: asking again gets the same answer. False when the
        /// service could not be reached or answered 5xx.
        refused: bool,
    },
    /// Bad configuration (unknown connection, refused URL, ...).
    #[error("{0}")]
    Config(String),
    /// The answer could not be understood.
    #[error("unexpected answer from {url}: {message}")]
    Decode { url: String, message: String },
    /// A name did not resolve to exactly one item.
    #[error("{0}")]
    Resolve(String),
    /// Local file I/O (export download).
    #[error("{0}")]
    Io(String),
}

fn api_message(
    status: u16,
    code: Option<&str>,
    message: &str,
    method: &str,
    url: &str,
    request_id: Option<&str>,
) -> String {
    let mut out = format!("{method} {url} answered {status}");
    if let Some(code) = code {
        out.push_str(": ");
        out.push_str(code);
    }
    if !message.is_empty() && Some(message) != code {
        out.push_str(if code.is_some() { " - " } else { ": " });
        out.push_str(message);
    }
    if let Some(id) = request_id {
        out.push_str(&format!(" ({REQUEST_ID_LABEL} {id})"));
    }
    out
}

/// How an error message names the service's request id: `(RequestId: 8c1f...)`, the name
/// Power BI's header and Microsoft support use.
const REQUEST_ID_LABEL: &str = "RequestId:";

/// The request id an error message names (see [`ClientError::Api`]), for the report's
/// structured `request_id`: the last `(RequestId: X)` of `text`.
pub(crate) fn request_id_in(text: &str) -> Option<String> {
    let start = text.rfind(&format!("({REQUEST_ID_LABEL} "))? + REQUEST_ID_LABEL.len() + 2;
    let rest = &text[start..];
    let id = &rest[..rest.find(')')?];
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

/// The request id of an error answer: Fabric's `requestId` in the `ErrorResponse` body first
/// (the id Fabric support asks for), then the `RequestId` header of every Power BI answer,
/// then `x-ms-request-id`. A value that is not a plain token (spaces, control characters,
/// over 100 characters) is ignored rather than printed.
pub(crate) fn answer_request_id(
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Option<String> {
    let from_body = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| str_field(&v, "requestId").map(str::to_string));
    from_body
        .or_else(|| {
            ["requestid", "x-ms-request-id"].iter().find_map(|name| {
                headers
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
        })
        .map(|id| id.trim().to_string())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 100
                && id
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '(' && c != ')')
        })
}

impl ClientError {
    /// The HTTP status of an `Api` error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's error code of an `Api` error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// True for the answer a service gives when the same refresh/job is already running:
    /// 400 or 409 with a code or message that says so.
    pub(crate) fn is_already_running(&self) -> bool {
        let ClientError::Api {
            status,
            code,
            message,
            ..
        } = self
        else {
            return false;
        };
        if *status != 400 && *status != 409 {
            return false;
        }
        let text = format!("{} {}", code.as_deref().unwrap_or(""), message).to_ascii_lowercase();
        let already = text.contains("already")
            && (text.contains("running")
                || text.contains("executing")
                || text.contains("progress"));
        already
            || text.contains("alreadyrunning")
            || text.contains("in progress")
            || text.contains("inprogress")
            || text.contains("another refresh")
            || text.contains("refreshinprogress")
            || text.contains("currently running")
            || *status == 409
    }

    /// True for an expired/invalid token answer (401, or 403 `TokenExpired`).
    pub(crate) fn is_token_expired(&self) -> bool {
        match self {
            ClientError::Api { status: 401, .. } => true,
            ClientError::Api {
                status: 403, code, ..
            } => code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("TokenExpired")),
            _ => false,
        }
    }
}

/// What an error body says: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ErrorInfo {
    pub code: Option<String>,
    pub message: String,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Parses any of the three API envelopes (and falls back to a short text excerpt).
pub(crate) fn parse_error_body(body: &str) -> ErrorInfo {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return ErrorInfo {
            code: None,
            message: excerpt(body),
        };
    };
    // Power BI: {"error":{"code","message","pbi.error":{...}}}
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        let mut code = str_field(err, "code").map(str::to_string);
        let mut message = str_field(err, "message").map(str::to_string);
        if let Some(pbi) = err.get("pbi.error") {
            if code.is_none() {
                code = str_field(pbi, "code").map(str::to_string);
            }
            let details: Vec<String> = pbi
                .get("details")
                .and_then(Value::as_array)
                .map(|ds| {
                    ds.iter()
                        .filter_map(|d| {
                            d.get("detail")
                                .and_then(|x| str_field(x, "value"))
                                .or_else(|| str_field(d, "message"))
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if message.is_none() && !details.is_empty() {
                message = Some(details.join("; "));
            }
        }
        return ErrorInfo {
            message: message.or_else(|| code.clone()).unwrap_or_default(),
            code,
        };
    }
    // Entra: {"error":"invalid_client","error_description":"AADSTS...","error_codes":[...]}
    if let Some(error) = str_field(&v, "error") {
        return parse_entra(&v, error);
    }
    // Fabric: {"errorCode","message","moreDetails":[{errorCode,message}]}
    if let Some(code) = str_field(&v, "errorCode") {
        let mut message = str_field(&v, "message").unwrap_or(code).to_string();
        if let Some(more) = v.get("moreDetails").and_then(Value::as_array) {
            for d in more {
                if let Some(m) = str_field(d, "message") {
                    message.push_str("; ");
                    message.push_str(m);
                }
            }
        }
        return ErrorInfo {
            code: Some(code.to_string()),
            message,
        };
    }
    // 429 from Power BI: {"message": "...Retry in N seconds."}
    if let Some(m) = str_field(&v, "message").or_else(|| str_field(&v, "Message")) {
        return ErrorInfo {
            code: None,
            message: m.to_string(),
        };
    }
    ErrorInfo {
        code: None,
        message: excerpt(body),
    }
}

fn parse_entra(v: &Value, error: &str) -> ErrorInfo {
    let first_code = v
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_u64);
    // The description's first line holds "AADSTSnnnn: text"; the rest is trace ids.
    let description = str_field(v, "error_description")
        .map(|d| {
            let first = d.lines().next().unwrap_or("");
            first
                .split("Trace ID:")
                .next()
                .unwrap_or(first)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let hint = match first_code {
        Some(7000215) => Some("invalid client secret: use the secret's value, not its id"),
        Some(7000222) => Some("the client secret has expired"),
        Some(700016) => Some("the application was not found in the tenant"),
        Some(90002) => Some("the tenant was not found"),
        Some(500011) => Some("the resource principal was not found"),
        Some(7000229) => Some("the application has no service principal in this tenant"),
        Some(53003) => Some("blocked by conditional access"),
        _ => None,
    };
    let mut message = error.to_string();
    if let Some(code) = first_code {
        message.push_str(&format!(" (AADSTS{code})"));
    }
    if let Some(h) = hint {
        message.push_str(": ");
        message.push_str(h);
    } else if !description.is_empty() {
        message.push_str(": ");
        message.push_str(&description);
    }
    ErrorInfo {
        code: Some(error.to_string()),
        message,
    }
}

/// Parses an Entra/IMDS token error body into one clear line.
pub(crate) fn parse_token_error(status: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => match str_field(&v, "error") {
            Some(error) => parse_entra(&v, error).message,
            None => format!("status {status}: {}", parse_error_body(body).message),
        },
        Err(_) => format!("status {status}: {}", excerpt(body)),
    }
}

/// Parses a `serviceExceptionJson` value (JSON inside a JSON string) into a message such as
/// `ModelRefreshFailed_CredentialsNotSpecified: ...`.
pub(crate) fn parse_service_exception(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return Some(excerpt(raw));
    };
    let code = str_field(&v, "errorCode").or_else(|| str_field(&v, "code"));
    let desc = str_field(&v, "errorDescription")
        .or_else(|| str_field(&v, "message"))
        .or_else(|| str_field(&v, "description"));
    match (code, desc) {
        (Some(c), Some(d)) => Some(format!("{c}: {d}")),
        (Some(c), None) => Some(c.to_string()),
        (None, Some(d)) => Some(d.to_string()),
        (None, None) => Some(excerpt(raw)),
    }
}

/// At most 300 characters of a body, on one line.
pub(crate) fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one_line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_bi_envelope() {
        let info = parse_error_body(
            r#"{"error":{"code":"TokenExpired","message":"Access token has expired, resubmit with a new access token"}}"#,
        );
        assert_eq!(info.code.as_deref(), Some("TokenExpired"));
        assert!(info.message.starts_with("Access token has expired"));
        let info = parse_error_body(
            r#"{"error":{"code":"PowerBIEntityNotFound","pbi.error":{"code":"PowerBIEntityNotFound","parameters":{},"details":[],"exceptionCulprit":1}}}"#,
        );
        assert_eq!(info.code.as_deref(), Some("PowerBIEntityNotFound"));
        assert_eq!(info.message, "PowerBIEntityNotFound");
    }

    #[test]
    fn fabric_envelope_with_details() {
        let info = parse_error_body(
            r#"{"errorCode":"ItemNotFound","message":"The item was not found","requestId":"x","moreDetails":[{"errorCode":"A","message":"more"}]}"#,
        );
        assert_eq!(info.code.as_deref(), Some("ItemNotFound"));
        assert_eq!(info.message, "The item was not found; more");
    }

    #[test]
    fn api_errors_name_the_request_id_microsoft_support_asks_for() {
        let e = ClientError::Api {
            status: 404,
            code: Some("ItemNotFound".into()),
            message: "The item was not found".into(),
            retry_after: None,
            method: "GET".into(),
            url: "https://api.fabric.microsoft.com/v1/workspaces/w/items/i".into(),
            request_id: Some("0b6e5c1a-2f2d-4a3e-9d7c-1e2f3a4b5c6d".into()),
        };
        let text = e.to_string();
        assert_eq!(
            text,
            "GET https://api.fabric.microsoft.com/v1/workspaces/w/items/i answered 404: \
             ItemNotFound - The item was not found (RequestId: 0b6e5c1a-2f2d-4a3e-9d7c-1e2f3a4b5c6d)"
        );
        assert_eq!(
            request_id_in(&format!("attempt failed: {text}")).as_deref(),
            Some("0b6e5c1a-2f2d-4a3e-9d7c-1e2f3a4b5c6d")
        );
        assert_eq!(request_id_in("no id here (RequestId: )"), None);
        assert_eq!(request_id_in("plain"), None);
    }

    #[test]
    fn request_id_comes_from_the_fabric_body_then_the_headers() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        headers.insert("requestid", HeaderValue::from_static("from-header"));
        headers.insert("x-ms-request-id", HeaderValue::from_static("from-x-ms"));
        let fabric = r#"{"errorCode":"ItemNotFound","message":"m","requestId":"from-body"}"#;
        assert_eq!(
            answer_request_id(&headers, fabric).as_deref(),
            Some("from-body")
        );
        let pbi = r#"{"error":{"code":"PowerBIEntityNotFound"}}"#;
        assert_eq!(
            answer_request_id(&headers, pbi).as_deref(),
            Some("from-header")
        );
        headers.remove("requestid");
        assert_eq!(
            answer_request_id(&headers, "not json").as_deref(),
            Some("from-x-ms")
        );
        headers.insert("x-ms-request-id", HeaderValue::from_static("two words"));
        assert_eq!(answer_request_id(&headers, ""), None);
    }

    #[test]
    fn throttling_message() {
        let info = parse_error_body(
            r#"{"message":"You have exceeded the amount of requests. Retry in 3 seconds."}"#,
        );
        assert_eq!(info.code, None);
        assert!(info.message.contains("Retry in 3 seconds"));
    }

    #[test]
    fn entra_error_is_explained() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let m = parse_token_error(401, body);
        assert!(m.contains("invalid_client"), "{m}");
        assert!(m.contains("AADSTS7000215"), "{m}");
        assert!(m.contains("secret's value"), "{m}");
        assert!(!m.contains("Trace ID"));
    }

    #[test]
    fn service_exception_json_is_parsed_twice() {
        let history = r#"{"serviceExceptionJson":"{\"errorCode\":\"ModelRefreshFailed_CredentialsNotSpecified\"}"}"#;
        let v: Value = serde_json::from_str(history).unwrap();
        let inner = v["serviceExceptionJson"].as_str().unwrap();
        assert_eq!(
            parse_service_exception(inner).as_deref(),
            Some("ModelRefreshFailed_CredentialsNotSpecified")
        );
    }

    #[test]
    fn already_running_detection() {
        let e = ClientError::Api {
            status: 400,
            code: Some("RefreshAlreadyInProgress".into()),
            message: "x".into(),
            retry_after: None,
            method: "POST".into(),
            url: "u".into(),
            request_id: None,
        };
        assert!(e.is_already_running());
        let e = ClientError::Api {
            status: 400,
            code: Some("InvalidRequest".into()),
            message: "bad body".into(),
            retry_after: None,
            method: "POST".into(),
            url: "u".into(),
            request_id: None,
        };
        assert!(!e.is_already_running());
        let e = ClientError::Api {
            status: 400,
            code: Some("InvalidRequest".into()),
            message:
                "Invalid dataset refresh request. Another refresh request is already executing"
                    .into(),
            retry_after: None,
            method: "POST".into(),
            url: "u".into(),
            request_id: None,
        };
        assert!(e.is_already_running());
    }
}
