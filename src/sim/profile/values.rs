//! Small value types of the profile: durations (fixed or a range) and attempt outcomes.
//!
//! They read from the strings a user would guess (`5s`, `200ms..800ms`, `fail`) and write back
//! the same way, so a profile round-trips through serde unchanged.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A humantime duration (`0s`, `250ms`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e} (examples: `0s`, `250ms`, `10m`)"))
}

fn show_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(d).to_string()
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&show_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A humantime duration, e.g. `0s`, `250ms`, `10m`, `1h 30m`.",
            "minLength": 1
        })
    }
}

/// A duration, fixed (`5s`) or drawn uniformly from a range (`200ms..800ms`) with the
/// profile's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationSpec {
    /// Always this long.
    Fixed(Duration),
    /// Between the two bounds, inclusive.
    Range(Duration, Duration),
}

impl Default for DurationSpec {
    fn default() -> Self {
        DurationSpec::Fixed(Duration::ZERO)
    }
}

impl DurationSpec {
    /// Parses `5s` or `1s..3s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once("..") {
            None => parse_duration(text).map(DurationSpec::Fixed),
            Some((lo, hi)) => {
                let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
                if lo > hi {
                    return Err(format!("invalid range `{text}`: the lower bound is larger"));
                }
                Ok(DurationSpec::Range(lo, hi))
            }
        }
    }

    /// The longest value it can give.
    pub fn max(&self) -> Duration {
        match *self {
            DurationSpec::Fixed(d) | DurationSpec::Range(_, d) => d,
        }
    }

    /// Picks a value; `unit` is a number in [0, 1) from the caller's deterministic source.
    pub(crate) fn pick(&self, unit: f64) -> Duration {
        match *self {
            DurationSpec::Fixed(d) => d,
            DurationSpec::Range(lo, hi) => {
                let span = hi.saturating_sub(lo).as_secs_f64();
                lo + Duration::from_secs_f64((span * unit.clamp(0.0, 1.0)).max(0.0))
            }
        }
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DurationSpec::Fixed(d) => f.write_str(&show_duration(d)),
            DurationSpec::Range(lo, hi) => {
                write!(f, "{}..{}", show_duration(lo), show_duration(hi))
            }
        }
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DurationSpec::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "DurationSpec".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A fixed humantime duration (`5s`) or a range drawn with the profile's seed (`200ms..800ms`).",
            "minLength": 1
        })
    }
}

/// How one attempt (one trigger) of a resource ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutcomeSpec {
    /// Completes successfully.
    #[default]
    Succeed,
    /// Fails, with the resource kind's usual error unless a code or message is given.
    Fail {
        code: Option<String>,
        message: Option<String>,
    },
    /// Runs out of time on the service side (dataset `TimedOut`; a failure elsewhere).
    TimedOut,
    /// Exports: `Failed` with a `Retry-After` (the service is busy, resubmit). Elsewhere the
    /// same as `fail`.
    Busy,
}

/// The map form of a failure: `{fail: {code: X, message: Y}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailDetail {
    /// The error code the service reports (e.g. `ModelRefreshFailed_CredentialsNotSpecified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The human message the service reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Serialize for OutcomeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            OutcomeSpec::Succeed => s.serialize_str("succeed"),
            OutcomeSpec::TimedOut => s.serialize_str("timed_out"),
            OutcomeSpec::Busy => s.serialize_str("busy"),
            OutcomeSpec::Fail {
                code: None,
                message: None,
            } => s.serialize_str("fail"),
            OutcomeSpec::Fail { code, message } => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "fail",
                    &FailDetail {
                        code: code.clone(),
                        message: message.clone(),
                    },
                )?;
                map.end()
            }
        }
    }
}

struct OutcomeVisitor;

impl<'de> Visitor<'de> for OutcomeVisitor {
    type Value = OutcomeSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`succeed`, `fail`, `timed_out`, `busy` or `{fail: {code, message}}`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OutcomeSpec, E> {
        match v {
            "succeed" => Ok(OutcomeSpec::Succeed),
            "fail" => Ok(OutcomeSpec::Fail {
                code: None,
                message: None,
            }),
            "timed_out" => Ok(OutcomeSpec::TimedOut),
            "busy" => Ok(OutcomeSpec::Busy),
            other => Err(E::unknown_variant(
                other,
                &["succeed", "fail", "timed_out", "busy"],
            )),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OutcomeSpec, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("expected `{fail: {code, message}}`"));
        };
        if key != "fail" {
            return Err(de::Error::unknown_field(&key, &["fail"]));
        }
        let detail: FailDetail = map.next_value()?;
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::unknown_field(&extra, &["fail"]));
        }
        Ok(OutcomeSpec::Fail {
            code: detail.code,
            message: detail.message,
        })
    }
}

impl<'de> Deserialize<'de> for OutcomeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OutcomeVisitor)
    }
}

impl JsonSchema for OutcomeSpec {
    fn schema_name() -> Cow<'static, str> {
        "Outcome".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let detail = generator.subschema_for::<FailDetail>();
        json_schema!({
            "description": "How one attempt ends: `succeed`, `fail`, `timed_out`, `busy` (exports: Failed with Retry-After), or `{fail: {code, message}}`.",
            "oneOf": [
                { "type": "string", "enum": ["succeed", "fail", "timed_out", "busy"] },
                {
                    "type": "object",
                    "properties": { "fail": detail },
                    "required": ["fail"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_fixed_and_ranges() {
        assert_eq!(
            DurationSpec::parse("0s").unwrap(),
            DurationSpec::Fixed(Duration::ZERO)
        );
        assert_eq!(
            DurationSpec::parse("200ms..800ms").unwrap(),
            DurationSpec::Range(Duration::from_millis(200), Duration::from_millis(800))
        );
        assert!(DurationSpec::parse("2s..1s").is_err());
        assert!(DurationSpec::parse("soon").is_err());
        let r = DurationSpec::parse("1s..3s").unwrap();
        assert_eq!(r.pick(0.0), Duration::from_secs(1));
        assert_eq!(r.pick(0.5), Duration::from_secs(2));
        assert_eq!(r.to_string(), "1s..3s");
    }

    #[test]
    fn outcomes_read_both_forms() {
        let v: Vec<OutcomeSpec> =
            serde_saphyr::from_str("[fail, succeed, {fail: {code: X, message: boom}}, busy]")
                .unwrap();
        assert_eq!(
            v,
            vec![
                OutcomeSpec::Fail {
                    code: None,
                    message: None
                },
                OutcomeSpec::Succeed,
                OutcomeSpec::Fail {
                    code: Some("X".into()),
                    message: Some("boom".into())
                },
                OutcomeSpec::Busy,
            ]
        );
        assert!(serde_saphyr::from_str::<Vec<OutcomeSpec>>("[explode]").is_err());
        assert!(serde_saphyr::from_str::<Vec<OutcomeSpec>>("[{boom: 1}]").is_err());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!(["fail", "succeed", {"fail": {"code": "X", "message": "boom"}}, "busy"])
        );
    }
}
