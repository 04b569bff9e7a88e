//! `${...}` references in string values.
//!
//! - `${vars.NAME}` is replaced when the job is loaded;
//! - `${env.NAME}` stays in the model until [`crate::job::resolve_env`] before a run;
//! - `${run.FIELD}` and `${steps.ID.FIELD}` (webhook bodies only) stay until the webhook
//!   executor fills them in at run time;
//! - `${each.key}` and `${each.value}` (steps with `for_each` only) are replaced in each
//!   expansion of the step when the job is loaded (or, for a `for_each` over what discovery
//!   finds, when the run has found it);
//! - `$${` is a literal `${` (unescaped by `resolve_env`).

/// A reference found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ref {
    /// `${env.NAME}`.
    Env(String),
    /// `${vars.NAME}`.
    Var(String),
    /// `${run.FIELD}` (webhook body).
    Run(String),
    /// `${steps.ID.FIELD}` (webhook body).
    Step(String, String),
    /// `${each.FIELD}` (a step with `for_each`).
    Each(String),
}

/// A piece of a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Plain text.
    Text(&'a str),
    /// `$${`: a literal `${`.
    Escape,
    /// A reference; `start..end` is the byte range of `${...}` in the string.
    Ref { r: Ref, start: usize, end: usize },
}

/// A malformed reference; `start..end` is its byte range in the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

/// `${run.FIELD}` fields a webhook body may use (what the webhook executor fills in).
pub(crate) const RUN_FIELDS: &[&str] = &["id", "job", "status", "summary", "started_at"];
/// `${steps.ID.FIELD}` fields a webhook body may use.
pub(crate) const STEP_FIELDS: &[&str] = &["status", "attempts", "duration_secs"];
/// `${each.FIELD}` fields of a step with `for_each`: the expansion's key (as in its id,
/// `step[key]`) and its value.
pub(crate) const EACH_FIELDS: &[&str] = &["key", "value"];

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits a string into text, escapes and references. Fails on the first malformed
/// reference.
pub(crate) fn scan(s: &str) -> Result<Vec<Piece<'_>>, RefError> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && s[i..].starts_with("$${") {
            if text_start < i {
                out.push(Piece::Text(&s[text_start..i]));
            }
            out.push(Piece::Escape);
            i += 3;
            text_start = i;
        } else if bytes[i] == b'$' && s[i..].starts_with("${") {
            if text_start < i {
                out.push(Piece::Text(&s[text_start..i]));
            }
            let Some(close) = s[i + 2..].find('}') else {
                return Err(RefError {
                    start: i,
                    end: s.len(),
                    message: "unterminated `${` (a literal `${` is written `$${`)".into(),
                });
            };
            let end = i + 2 + close + 1;
            let inner = &s[i + 2..end - 1];
            let r = parse_ref(inner).map_err(|message| RefError {
                start: i,
                end,
                message,
            })?;
            out.push(Piece::Ref { r, start: i, end });
            i = end;
            text_start = i;
        } else {
            i += 1;
        }
    }
    if text_start < s.len() {
        out.push(Piece::Text(&s[text_start..]));
    }
    Ok(out)
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let parts: Vec<&str> = inner.split('.').collect();
    let bad = || {
        format!(
            "bad reference `${{{inner}}}`: expected `${{env.NAME}}`, `${{vars.NAME}}`, \
             `${{run.FIELD}}`, `${{steps.ID.FIELD}}` or `${{each.key}}` / `${{each.value}}`"
        )
    };
    match parts.as_slice() {
        ["env", name] if is_name(name) => Ok(Ref::Env((*name).to_string())),
        ["vars", name] if is_name(name) => Ok(Ref::Var((*name).to_string())),
        ["run", field] => {
            if RUN_FIELDS.contains(field) {
                Ok(Ref::Run((*field).to_string()))
            } else {
                Err(format!(
                    "unknown run field `{field}` in `${{{inner}}}` (expected one of {})",
                    RUN_FIELDS.join(", ")
                ))
            }
        }
        ["each", field] => {
            if EACH_FIELDS.contains(field) {
                Ok(Ref::Each((*field).to_string()))
            } else {
                Err(format!(
                    "unknown `each` field `{field}` in `${{{inner}}}` (expected one of {})",
                    EACH_FIELDS.join(", ")
                ))
            }
        }
        ["steps", id, field] if is_step_id(id) => {
            if STEP_FIELDS.contains(field) {
                Ok(Ref::Step((*id).to_string(), (*field).to_string()))
            } else {
                Err(format!(
                    "unknown step field `{field}` in `${{{inner}}}` (expected one of {})",
                    STEP_FIELDS.join(", ")
                ))
            }
        }
        _ => Err(bad()),
    }
}

/// Rebuilds a string with `${vars.NAME}` replaced (`vars` must hold every name: the
/// validator checked them), and `${each.key}` / `${each.value}` from `each` (key, value)
/// when given (a `for_each` expansion); everything else is kept as written.
pub(crate) fn substitute_vars(
    s: &str,
    pieces: &[Piece<'_>],
    vars: &dyn Fn(&str) -> Option<String>,
    each: Option<(&str, &str)>,
) -> String {
    if !pieces.iter().any(|p| {
        matches!(p, Piece::Ref { r: Ref::Var(_), .. })
            || (each.is_some()
                && matches!(
                    p,
                    Piece::Ref {
                        r: Ref::Each(_),
                        ..
                    }
                ))
    }) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Escape => out.push_str("$${"),
            Piece::Ref {
                r: Ref::Var(name),
                start,
                end,
            } => match vars(name) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&s[*start..*end]),
            },
            Piece::Ref {
                r: Ref::Each(field),
                start,
                end,
            } => match each {
                Some((key, _)) if field == "key" => out.push_str(key),
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&s[*start..*end]),
            },
            Piece::Ref { start, end, .. } => out.push_str(&s[*start..*end]),
        }
    }
    out
}

/// Replaces `${env.NAME}` through `lookup` and `$${` by `${`; `${run.*}` / `${steps.*}` stay.
/// Names `lookup` does not know are pushed to `missing` (and left as written).
pub(crate) fn substitute_env(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let Ok(pieces) = scan(s) else {
        // Validation rejected malformed references already; keep the text as is.
        return s.to_string();
    };
    let mut out = String::with_capacity(s.len());
    for p in &pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Escape => out.push_str("${"),
            Piece::Ref {
                r: Ref::Env(name),
                start,
                end,
            } => match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    missing.push(name.clone());
                    out.push_str(&s[*start..*end]);
                }
            },
            Piece::Ref { start, end, .. } => out.push_str(&s[*start..*end]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_references_and_escapes() {
        let p = scan("a ${env.X} $${b} ${vars.y}").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("a "),
                Piece::Ref {
                    r: Ref::Env("X".into()),
                    start: 2,
                    end: 10
                },
                Piece::Text(" "),
                Piece::Escape,
                Piece::Text("b} "),
                Piece::Ref {
                    r: Ref::Var("y".into()),
                    start: 17,
                    end: 26
                },
            ]
        );
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(scan("${env}").is_err());
        assert!(scan("${foo.bar}").is_err());
        assert!(scan("x ${env.A").is_err());
        assert!(scan("${run.nope}").is_err());
        assert!(scan("${steps.a.b.c}").is_err());
        assert_eq!(
            scan("${steps.a-1.status}").unwrap()[0],
            Piece::Ref {
                r: Ref::Step("a-1".into(), "status".into()),
                start: 0,
                end: 19
            }
        );
    }

    #[test]
    fn substitutes_vars_then_env() {
        let s = "${vars.ws}/${env.T} $${x} ${run.id}";
        let pieces = scan(s).unwrap();
        let v = substitute_vars(
            s,
            &pieces,
            &|n| (n == "ws").then(|| "Data Admin".to_string()),
            None,
        );
        assert_eq!(v, "Data Admin/${env.T} $${x} ${run.id}");
        let mut missing = Vec::new();
        let e = substitute_env(&v, &|_| None, &mut missing);
        assert_eq!(e, "Data Admin/${env.T} ${x} ${run.id}");
        assert_eq!(missing, vec!["T".to_string()]);
        let e = substitute_env(&v, &|_| Some("tok".into()), &mut missing);
        assert_eq!(e, "Data Admin/tok ${x} ${run.id}");
    }
}
