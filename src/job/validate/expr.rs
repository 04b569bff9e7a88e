//! `when:` — CEL expressions are parsed at validation time so a syntax error or a reference
//! to something that will not exist at run time is a located diagnostic, not a run failure.

use std::collections::HashSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::{Checker, cost};
use crate::job::Code;
use crate::job::raw::{RawStep, Sp};

/// Names a `when` expression may start from.
const ROOTS: &[&str] = &["vars", "env", "run", "steps"];
/// `run.<field>` in `when`.
const RUN_FIELDS: &[&str] = &["id", "job", "started_at"];
/// `steps.<id>.<field>` in `when`.
const STEP_FIELDS: &[&str] = &[
    "status",
    "attempts",
    "duration_secs",
    "selected",
    "fresh",
    "overran",
];

/// Longest accepted expression; CEL's parser is recursive, so a bound keeps it cheap.
const MAX_LEN: usize = 4096;

/// Deepest nesting of `(`, `[` and `{` accepted. CEL's generated parser recurses a dozen
/// frames per level: past this, an unoptimised build overflows a 2 MiB thread stack (a
/// crash, not an error), and past 96 levels the parser's own limit answers with a Rust
/// debug dump. Conditions over vars, env and steps never need more.
const MAX_NESTING: usize = 8;

/// Parses the expression, then checks the names it uses.
pub(super) fn check(c: &mut Checker<'_>, when: &Sp<String>, step: &RawStep) {
    let text = when.get();
    if text.trim().is_empty() {
        c.error(
            Code::InvalidWhen,
            when.loc(),
            "`when` is empty",
            "expected a CEL expression",
        );
        return;
    }
    if text.len() > MAX_LEN {
        c.error(
            Code::InvalidWhen,
            when.loc(),
            format!(
                "`when` is too long ({} bytes, at most {MAX_LEN})",
                text.len()
            ),
            "too long",
        );
        return;
    }
    if let Some((depth, at)) = bracket_depth(text)
        && depth > MAX_NESTING
    {
        let message =
            format!("`when` nests brackets too deeply ({depth} levels, at most {MAX_NESTING})");
        match position_in_source(c, when, (1, 1)) {
            Some(start) => c.error_at(Code::InvalidWhen, start + at, 1, message, "too deep", None),
            None => c.error(Code::InvalidWhen, when.loc(), message, "too deep"),
        }
        return;
    }
    let parsed = std::panic::catch_unwind(|| cel::parser::Parser::new().parse(text));
    let expr = match parsed {
        Ok(Ok(expr)) => expr,
        Ok(Err(errs)) => {
            let first = errs.errors.first();
            let msg = first.map_or_else(|| "syntax error".to_string(), |e| tidy(&e.msg));
            let pos = first.map_or((1, 1), |e| e.pos);
            match position_in_source(c, when, pos) {
                Some(off) => c.error_at(
                    Code::InvalidWhen,
                    off,
                    usize::from(off < c.src.len()),
                    format!("invalid `when` expression: {msg}"),
                    "here",
                    None,
                ),
                None => c.error(
                    Code::InvalidWhen,
                    when.loc(),
                    format!("invalid `when` expression: {msg}"),
                    &format!("at line {}, column {} of the expression", pos.0, pos.1),
                ),
            }
            return;
        }
        Err(_) => {
            c.error(
                Code::InvalidWhen,
                when.loc(),
                "invalid `when` expression",
                "cannot be parsed",
            );
            return;
        }
    };
    let deps: HashSet<&str> = step
        .depends_on
        .iter()
        .flat_map(|d| d.get().iter().map(|s| s.get().as_str()))
        .collect();
    let mut problems = Vec::new();
    let mut bound = Vec::new();
    let checker: &Checker<'_> = c;
    walk(&expr, &mut bound, &mut |e, bound| {
        problems.extend(check_node(e, bound, &deps, checker));
    });
    for (msg, label) in problems {
        c.error(Code::InvalidWhen, when.loc(), msg, &label);
    }
    let names = cost::Names {
        vars: c.vars.len(),
        deps: deps.len(),
    };
    let estimate = cost::estimate(&expr, &names);
    if estimate > cost::MAX_COST {
        c.error_help(
            Code::InvalidWhen,
            when.loc(),
            format!(
                "`when` may take too long to evaluate: up to about {} steps (at most {})",
                steps_text(estimate),
                steps_text(cost::MAX_COST)
            ),
            "too costly",
            Some(
                "comprehensions (`all`, `exists`, `map`, `filter`) nested in one another \
                 multiply the lengths of their lists; a condition should be a cheap test over \
                 vars, env, run and steps"
                    .into(),
            ),
        );
    }
}

/// `123456` as `123,456`; huge values in scientific notation.
fn steps_text(n: f64) -> String {
    if !n.is_finite() || n >= 1e15 {
        return format!("{n:.1e}");
    }
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// CEL's parser messages without the token list ANTLR appends.
fn tidy(msg: &str) -> String {
    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
    // The parser's own limits come back as a Rust debug dump (`OtherError(ParseError { ..
    // msg: "Recursion limit of 96 exceeded" .. })`): keep only the readable part.
    if msg.contains("Recursion limit") {
        return "the expression is nested too deeply".into();
    }
    if let Some((_, rest)) = msg.split_once("msg: \"")
        && let Some((inner, _)) = rest.split_once('"')
    {
        return inner.to_string();
    }
    if msg.starts_with("mismatched input '<EOF>'") {
        return "the expression ends too early".into();
    }
    let msg = msg.split(" expecting {").next().unwrap_or(msg);
    msg.to_string()
}

/// The deepest bracket nesting of `text` (outside string literals) and the byte offset of
/// the first bracket that goes past [`MAX_NESTING`] (of the deepest one when none does).
fn bracket_depth(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut at: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, ch) in text.char_indices() {
        if let Some(q) = quote {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if ch == q => quote = None,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' | '\'' => quote = Some(ch),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest <= MAX_NESTING + 1 {
                        at = Some(i);
                    }
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    at.map(|at| (deepest, at))
}

/// Byte offset in the job file of CEL's (1-based line, 1-based column), when the YAML
/// scalar holds the expression verbatim (plain, or quoted without escapes).
fn position_in_source(c: &Checker<'_>, when: &Sp<String>, pos: (isize, isize)) -> Option<usize> {
    let text = when.get();
    let (off, len) = c.span(when.loc());
    let slice = c.src.get(off..off.checked_add(len)?)?;
    let base = if slice == text {
        off
    } else if slice.len() >= 2
        && (slice.starts_with('"') || slice.starts_with('\''))
        && slice.get(1..slice.len() - 1) == Some(text.as_str())
    {
        off + 1
    } else {
        return None;
    };
    let line = usize::try_from(pos.0).ok()?.checked_sub(1)?;
    let col = usize::try_from(pos.1).ok()?.checked_sub(1)?;
    let line_start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    let line_text = text.get(line_start..)?.split('\n').next()?;
    let in_line = line_text
        .char_indices()
        .nth(col)
        .map_or(line_text.len(), |(i, _)| i);
    Some(base + line_start + in_line)
}

/// A problem with one node of the expression, if any.
fn check_node(
    e: &IdedExpr,
    bound: &[String],
    deps: &HashSet<&str>,
    c: &Checker<'_>,
) -> Option<(String, String)> {
    match &e.expr {
        Expr::Ident(name) if !ROOTS.contains(&name.as_str()) && !bound.contains(name) => Some((
            format!("unknown name `{name}` in `when`"),
            "expected vars, env, run or steps".into(),
        )),
        Expr::Select(sel) => match &sel.operand.expr {
            Expr::Ident(root) if root == "vars" && !bound.contains(root) => {
                (!c.vars.contains_key(&sel.field)).then(|| {
                    (
                        format!("unknown variable `{}` in `when`", sel.field),
                        "not declared under `vars:`".into(),
                    )
                })
            }
            Expr::Ident(root) if root == "run" && !bound.contains(root) => {
                (!RUN_FIELDS.contains(&sel.field.as_str())).then(|| {
                    (
                        format!("unknown field `run.{}` in `when`", sel.field),
                        format!("expected one of {}", RUN_FIELDS.join(", ")),
                    )
                })
            }
            Expr::Ident(root)
                if root == "steps"
                    && !bound.contains(root)
                    && c.fan_out_ids.contains(&sel.field) =>
            {
                Some((
                    format!(
                        "`when` uses `steps.{}`, a step with `for_each`, whose expansions have statuses of their own",
                        sel.field
                    ),
                    "a fan-out".into(),
                ))
            }
            Expr::Ident(root) if root == "steps" && !bound.contains(root) => {
                (!deps.contains(sel.field.as_str())).then(|| {
                    (
                        format!(
                            "`when` uses `steps.{}`, which is not a dependency of this step",
                            sel.field
                        ),
                        "add it to `depends_on`".into(),
                    )
                })
            }
            Expr::Select(inner) => match &inner.operand.expr {
                Expr::Ident(root) if root == "steps" && !bound.contains(root) => {
                    (!STEP_FIELDS.contains(&sel.field.as_str())).then(|| {
                        (
                            format!(
                                "unknown field `steps.{}.{}` in `when`",
                                inner.field, sel.field
                            ),
                            format!("expected one of {}", STEP_FIELDS.join(", ")),
                        )
                    })
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Visits every node; `bound` holds the comprehension variables in scope.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, f: &mut dyn FnMut(&IdedExpr, &[String])) {
    f(e, bound);
    match &e.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                walk(t, bound, f);
            }
            for a in &call.args {
                walk(a, bound, f);
            }
        }
        Expr::Comprehension(comp) => {
            walk(&comp.iter_range, bound, f);
            walk(&comp.accu_init, bound, f);
            let before = bound.len();
            bound.push(comp.iter_var.clone());
            if let Some(v) = &comp.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(comp.accu_var.clone());
            walk(&comp.loop_cond, bound, f);
            walk(&comp.loop_step, bound, f);
            walk(&comp.result, bound, f);
            bound.truncate(before);
        }
        Expr::List(list) => {
            for el in &list.elements {
                walk(el, bound, f);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(m) = &entry.expr {
                    walk(&m.key, bound, f);
                    walk(&m.value, bound, f);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(field) => walk(&field.value, bound, f),
                    EntryExpr::MapEntry(m) => {
                        walk(&m.key, bound, f);
                        walk(&m.value, bound, f);
                    }
                }
            }
        }
        Expr::Select(sel) => walk(&sel.operand, bound, f),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsers_debug_dumps_become_text() {
        let dump = "Syntax error: OtherError(ParseError { source: None, pos: (96, -1), msg: \"Recursion limit of 96 exceeded\", expr_id: 0, source_info: None })";
        assert_eq!(tidy(dump), "the expression is nested too deeply");
        let other =
            "Syntax error: OtherError(ParseError { source: None, msg: \"bad thing\", expr_id: 0 })";
        assert_eq!(tidy(other), "bad thing");
    }

    #[test]
    fn brackets_in_string_literals_do_not_nest() {
        assert_eq!(bracket_depth("a == '((((('"), None);
        assert_eq!(bracket_depth("f((x)) && [1]"), Some((2, 2)));
        let deep = format!("{}1{}", "(".repeat(12), ")".repeat(12));
        assert_eq!(bracket_depth(&deep), Some((12, MAX_NESTING)));
    }
}
