//! The cost bound of a `when:` expression: an upper estimate of the work evaluating it takes,
//! so that an expression that would spin (nested comprehensions over long lists multiply)
//! is refused by `validate`, before anything runs.
//!
//! Each sub-expression gets a *shape*: for a list or map value, the largest number of entries
//! it can hold, then the largest number its entries hold, and so on (a scalar has none). A
//! comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) costs its range's entries
//! times the cost of one step, so nesting multiplies; building or comparing a collection costs
//! its entries. Sizes that validation cannot know are bounded from above: `env` by
//! [`ENV_ENTRIES`], a range whose shape is unknown by [`UNKNOWN_ENTRIES`].

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// The most work a `when:` expression may take, in evaluation steps (one step is roughly one
/// node visited once). A cheap test over `vars`, `env`, `run` and `steps` costs tens of steps;
/// at this bound evaluation takes well under a second.
pub(super) const MAX_COST: f64 = 100_000.0;

/// The largest environment counted on when an expression iterates over `env`.
const ENV_ENTRIES: f64 = 1_000.0;
/// Entries assumed for a range validation cannot size.
const UNKNOWN_ENTRIES: f64 = 1_000.0;
/// Fields of `steps.<id>` and of `run`.
const STEP_FIELDS: f64 = 5.0;
const RUN_FIELDS: f64 = 3.0;

/// What evaluation of one sub-expression costs and yields.
#[derive(Debug, Clone, Default)]
struct Est {
    cost: f64,
    /// Entries per level of nesting; empty for a scalar.
    shape: Vec<f64>,
}

/// What the names of an expression stand for.
pub(super) struct Names {
    /// Entries of `vars`.
    pub vars: usize,
    /// Dependencies of the step (entries of `steps`).
    pub deps: usize,
}

/// Upper estimate of the steps evaluating `expr` takes.
pub(super) fn estimate(expr: &IdedExpr, names: &Names) -> f64 {
    let mut scope = Vec::new();
    est(expr, names, &mut scope).cost
}

/// All entries of a value of this shape, nested ones included (at least 1).
fn entries(shape: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut level = 1.0;
    for n in shape {
        level *= n.max(1.0);
        total += level;
    }
    total.max(1.0)
}

/// The shape that holds both `a` and `b` (level by level maximum).
fn widest(a: &[f64], b: &[f64]) -> Vec<f64> {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0.0)
                .max(b.get(i).copied().unwrap_or(0.0))
        })
        .collect()
}

/// The shape of one entry of a value of shape `shape`.
fn entry_of(shape: &[f64]) -> Vec<f64> {
    shape.get(1..).map(<[f64]>::to_vec).unwrap_or_default()
}

fn est(e: &IdedExpr, names: &Names, scope: &mut Vec<(String, Vec<f64>)>) -> Est {
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => Est {
            cost: 1.0,
            shape: Vec::new(),
        },
        Expr::Ident(name) => {
            let shape = match scope.iter().rev().find(|(n, _)| n == name) {
                Some((_, shape)) => shape.clone(),
                None => match name.as_str() {
                    "vars" => vec![names.vars as f64],
                    "env" => vec![ENV_ENTRIES],
                    "steps" => vec![names.deps as f64, STEP_FIELDS],
                    "run" => vec![RUN_FIELDS],
                    _ => Vec::new(),
                },
            };
            Est { cost: 1.0, shape }
        }
        Expr::Select(sel) => {
            let operand = est(&sel.operand, names, scope);
            Est {
                cost: operand.cost + 1.0,
                shape: if sel.test {
                    Vec::new()
                } else {
                    entry_of(&operand.shape)
                },
            }
        }
        Expr::List(list) => {
            let mut cost = 1.0;
            let mut inner = Vec::new();
            for el in &list.elements {
                let x = est(el, names, scope);
                cost += x.cost;
                inner = widest(&inner, &x.shape);
            }
            let mut shape = vec![list.elements.len() as f64];
            shape.extend(inner);
            Est { cost, shape }
        }
        Expr::Map(map) => {
            let mut cost = 1.0;
            let mut inner = Vec::new();
            for entry in &map.entries {
                if let EntryExpr::MapEntry(m) = &entry.expr {
                    cost += est(&m.key, names, scope).cost;
                    let v = est(&m.value, names, scope);
                    cost += v.cost;
                    inner = widest(&inner, &v.shape);
                }
            }
            let mut shape = vec![map.entries.len() as f64];
            shape.extend(inner);
            Est { cost, shape }
        }
        Expr::Struct(s) => {
            let mut cost = 1.0;
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => cost += est(&f.value, names, scope).cost,
                    EntryExpr::MapEntry(m) => {
                        cost += est(&m.key, names, scope).cost + est(&m.value, names, scope).cost;
                    }
                }
            }
            Est {
                cost,
                shape: Vec::new(),
            }
        }
        Expr::Call(call) => {
            let args: Vec<Est> = call
                .target
                .iter()
                .map(|t| t.as_ref())
                .chain(call.args.iter())
                .map(|a| est(a, names, scope))
                .collect();
            let own: f64 = args.iter().map(|a| a.cost).sum::<f64>() + 1.0;
            match (call.func_name.as_str(), args.as_slice()) {
                ("_[_]", [container, _]) => Est {
                    cost: own,
                    shape: entry_of(&container.shape),
                },
                ("_+_", [a, b]) if !a.shape.is_empty() || !b.shape.is_empty() => {
                    // List concatenation copies both lists.
                    let mut shape = vec![
                        a.shape.first().copied().unwrap_or(0.0)
                            + b.shape.first().copied().unwrap_or(0.0),
                    ];
                    shape.extend(widest(&entry_of(&a.shape), &entry_of(&b.shape)));
                    Est {
                        cost: own + entries(&a.shape) + entries(&b.shape),
                        shape,
                    }
                }
                // Every other standard function returns a scalar; comparing or searching a
                // collection visits its entries.
                _ => Est {
                    cost: own
                        + args
                            .iter()
                            .filter(|a| !a.shape.is_empty())
                            .map(|a| entries(&a.shape))
                            .sum::<f64>(),
                    shape: Vec::new(),
                },
            }
        }
        Expr::Comprehension(comp) => {
            let range = est(&comp.iter_range, names, scope);
            let n = range.shape.first().copied().unwrap_or(UNKNOWN_ENTRIES);
            let init = est(&comp.accu_init, names, scope);
            let before = scope.len();
            scope.push((comp.iter_var.clone(), entry_of(&range.shape)));
            if let Some(v) = &comp.iter_var2 {
                scope.push((v.clone(), entry_of(&range.shape)));
            }
            // The accumulator of `map` / `filter` grows by one entry per step: size it from
            // what one step appends to the initial value.
            scope.push((comp.accu_var.clone(), init.shape.clone()));
            let first = est(&comp.loop_step, names, scope);
            let accu = if first.shape.is_empty() {
                first.shape
            } else {
                let mut grown = vec![n];
                grown.extend(entry_of(&first.shape));
                grown
            };
            if let Some(last) = scope.last_mut() {
                last.1 = accu;
            }
            let cond = est(&comp.loop_cond, names, scope);
            let step = est(&comp.loop_step, names, scope);
            let result = est(&comp.result, names, scope);
            scope.truncate(before);
            Est {
                cost: range.cost + init.cost + n.max(1.0) * (cond.cost + step.cost) + result.cost,
                shape: result.shape,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(text: &str) -> f64 {
        let expr = cel::parser::Parser::new().parse(text).unwrap();
        estimate(&expr, &Names { vars: 3, deps: 2 })
    }

    #[test]
    fn plain_tests_are_cheap() {
        for text in [
            "vars.export == 'yes'",
            "steps.a.status == 'succeeded' && steps.a.attempts < 3",
            "steps.a.status in ['succeeded', 'skipped']",
            "['a', 'b'].all(s, steps[s].status == 'succeeded')",
            "env.exists(k, k.startsWith('STAGE'))",
        ] {
            assert!(cost(text) < 10_000.0, "{text}: {}", cost(text));
        }
    }

    #[test]
    fn nesting_multiplies() {
        let list = format!(
            "[{}]",
            (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        let one = cost(&format!("{list}.all(a, a >= 0)"));
        let two = cost(&format!("{list}.all(a, {list}.all(b, a + b >= 0))"));
        let three = cost(&format!(
            "{list}.all(a, {list}.all(b, {list}.all(c, a + b + c >= 0)))"
        ));
        assert!(one < 200.0, "{one}");
        assert!(two > 20.0 * one * 0.5, "{two}");
        assert!(three > 20.0 * two * 0.5, "{three}");
        assert!(three < MAX_COST, "{three}");
        let four = cost(&format!(
            "{list}.all(a, {list}.all(b, {list}.all(c, {list}.all(d, a + b + c + d >= 0))))"
        ));
        assert!(four > MAX_COST, "{four}");
    }

    #[test]
    fn lists_built_by_map_are_sized() {
        // `map` of a map builds 20 * 20 lists of 20: iterating them all is 8000 steps each.
        let list = format!(
            "[{}]",
            (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        );
        let built = format!("{list}.map(a, {list}.map(b, {list}))");
        let walked = cost(&format!(
            "{built}.all(x, x.all(y, y.all(z, z.all(w, w >= 0))))"
        ));
        assert!(walked > MAX_COST, "{walked}");
        // Comparing two such values visits every entry.
        assert!(cost(&format!("{built} == {built}")) > 16_000.0);
    }
}
