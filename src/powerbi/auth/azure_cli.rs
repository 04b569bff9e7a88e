//! The Azure CLI login: `az account get-access-token --resource R --output json`, as
//! Microsoft's AzureCliCredential does. Its output holds a token, so it is parsed and never
//! logged; a failure is described from its exit status and the kind of error it printed.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::job::model::Connection;
use crate::powerbi::errors::ClientError;
use crate::secret::Secret;

/// How long `az` may take (it may refresh its own token over the network first).
const AZ_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) async fn fetch(
    conn: &Connection,
    resource: &str,
    tenant_id: Option<&str>,
) -> Result<(Secret, Duration), ClientError> {
    let err = |message: String, refused: bool| ClientError::Auth {
        connection: conn.name.clone(),
        message,
        refused,
    };
    // On Windows `az` is a batch file (`az.cmd`), which only a shell runs.
    let mut cmd = if cfg!(windows) {
        let mut c = tokio::process::Command::new("cmd");
        c.args(["/C", "az"]);
        c
    } else {
        tokio::process::Command::new("az")
    };
    cmd.args([
        "account",
        "get-access-token",
        "--output",
        "json",
        "--resource",
    ])
    .arg(resource);
    if let Some(tenant) = tenant_id {
        cmd.args(["--tenant", tenant]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(AZ_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(err(
                format!(
                    "the Azure CLI did not answer within {}s",
                    AZ_TIMEOUT.as_secs()
                ),
                false,
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(
                "the Azure CLI (`az`) is not installed or not on PATH: install it \
                 (https://aka.ms/azure-cli) and run `az login`, or use other credentials"
                    .into(),
                true,
            ));
        }
        Ok(Err(e)) => return Err(err(format!("cannot run the Azure CLI (`az`): {e}"), true)),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(err(describe_failure(&stderr, output.status.code()), true));
    }
    parse_output(&output.stdout, chrono::Utc::now()).map_err(|m| err(m, false))
}

/// A failed `az` in plain words. Only recognised situations are described; `az`'s own text
/// is not repeated (it is not ours to know what it may contain).
fn describe_failure(stderr: &str, code: Option<i32>) -> String {
    let lower = stderr.to_ascii_lowercase();
    let status = code.map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
    if lower.contains("az login") || lower.contains("not logged in") {
        "the Azure CLI is not logged in (or its login expired): run `az login` (add \
         `--tenant TENANT` for another tenant)"
            .into()
    } else if lower.contains("aadsts") {
        // Entra's own refusal, relayed by az: the code is what `auth check` can explain.
        let code: String = lower
            .split("aadsts")
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        format!(
            "Entra ID refused the Azure CLI's request (AADSTS{code}); run `az login` again, \
             or check the tenant"
        )
    } else {
        format!(
            "the Azure CLI failed with {status}: run `az account get-access-token --resource \
             https://analysis.windows.net/powerbi/api` to see why"
        )
    }
}

/// Reads `accessToken` and its expiry: `expires_on` (Unix seconds, az 2.54+) or `expiresOn`
/// (local time `YYYY-MM-DD HH:MM:SS.ffffff`, older az).
fn parse_output(
    stdout: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Secret, Duration), String> {
    let v: Value = serde_json::from_slice(stdout)
        .map_err(|_| "the Azure CLI's answer is not JSON".to_string())?;
    let token = v
        .get("accessToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the Azure CLI's answer has no accessToken".to_string())?;
    let epoch = match v.get("expires_on") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .or_else(|| {
        let text = v.get("expiresOn")?.as_str()?;
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
        naive
            .and_local_timezone(chrono::Local)
            .earliest()
            .map(|t| t.timestamp())
    });
    let left = epoch
        .map(|e| e - now.timestamp())
        .filter(|s| *s > 0)
        // Unknown expiry: renew soon rather than send an expired token.
        .unwrap_or(300);
    Ok((Secret::new(token), Duration::from_secs(left as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_expiry_fields_are_read() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (t, d) = parse_output(
            br#"{"accessToken":"tok","expiresOn":"2023-11-14 23:13:20.000000","expires_on":1700003600,"tokenType":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expose(), "tok");
        assert_eq!(d, Duration::from_secs(3600));
        let local = chrono::DateTime::from_timestamp(1_700_001_800, 0)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
        let old = format!(r#"{{"accessToken":"tok","expiresOn":"{local}"}}"#);
        let (_, d) = parse_output(old.as_bytes(), now).unwrap();
        assert_eq!(d, Duration::from_secs(1800));
        assert!(parse_output(b"not json", now).is_err());
        assert!(parse_output(br#"{"tokenType":"Bearer"}"#, now).is_err());
    }

    #[test]
    fn failures_are_described_without_repeating_az() {
        let m = describe_failure("ERROR: Please run 'az login' to setup account.\n", Some(1));
        assert!(m.contains("not logged in"), "{m}");
        let m = describe_failure(
            "ERROR: AADSTS700082: The refresh token has expired due to inactivity. secretstuff",
            Some(1),
        );
        assert!(
            m.contains("AADSTS700082") && !m.contains("secretstuff"),
            "{m}"
        );
        let m = describe_failure("ERROR: something else entirely", Some(2));
        assert!(
            m.contains("status 2") && !m.contains("something else"),
            "{m}"
        );
    }
}
