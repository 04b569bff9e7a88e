//! The one kind of DAX the simulator evaluates itself: `EVALUATE ROW("name", constant, ...)`.
//!
//! The service answers such a query on every model it lets the caller query, whatever the
//! model holds, so a profile need not declare it: a query that reads no table is how a
//! caller (`pbibatch auth check --job`) learns whether it may query a model at all. Any
//! other text is left to the profile's `queries:`.

use serde_json::{Map, Number, Value};

/// The row of a constant `EVALUATE ROW(...)` (columns named `[name]`, as the service names
/// a column a query creates), or `None` when `query` is anything else.
pub(super) fn evaluate(query: &str) -> Option<Value> {
    let mut p = Parser {
        rest: query.trim_start(),
    };
    p.keyword("EVALUATE")?;
    p.keyword("ROW")?;
    p.symbol('(')?;
    let mut row = Map::new();
    loop {
        let Value::String(name) = p.literal()? else {
            return None;
        };
        p.symbol(',')?;
        let value = p.literal()?;
        row.insert(format!("[{name}]"), value);
        if p.symbol(',').is_none() {
            break;
        }
    }
    p.symbol(')')?;
    p.rest.trim().is_empty().then_some(Value::Object(row))
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    /// `word` (any case), followed by something that does not continue a name.
    fn keyword(&mut self, word: &str) -> Option<()> {
        let head = self.rest.get(..word.len())?;
        let after = self.rest[word.len()..].chars().next();
        if !head.eq_ignore_ascii_case(word) || after.is_some_and(|c| c.is_alphanumeric()) {
            return None;
        }
        self.rest = self.rest[word.len()..].trim_start();
        Some(())
    }

    fn symbol(&mut self, c: char) -> Option<()> {
        self.rest = self.rest.strip_prefix(c)?.trim_start();
        Some(())
    }

    /// A string (`"..."`, `""` for a quote), a number, `TRUE()`, `FALSE()` or `BLANK()`.
    fn literal(&mut self) -> Option<Value> {
        if let Some(body) = self.rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = body.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c != '"' {
                    text.push(c);
                } else if chars.peek().is_some_and(|(_, n)| *n == '"') {
                    text.push('"');
                    chars.next();
                } else {
                    self.rest = body[i + 1..].trim_start();
                    return Some(Value::String(text));
                }
            }
            return None;
        }
        for (word, value) in [
            ("TRUE", Value::Bool(true)),
            ("FALSE", Value::Bool(false)),
            ("BLANK", Value::Null),
        ] {
            if self.keyword(word).is_some() {
                self.symbol('(')?;
                self.symbol(')')?;
                return Some(value);
            }
        }
        let end = self
            .rest
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
            .map_or(self.rest.len(), |(i, _)| i);
        let number = &self.rest[..end];
        let value = match number.parse::<i64>() {
            Ok(n) => Value::Number(n.into()),
            Err(_) => Value::Number(Number::from_f64(number.parse::<f64>().ok()?)?),
        };
        self.rest = self.rest[end..].trim_start();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn constant_rows_are_answered() {
        assert_eq!(
            evaluate("EVALUATE ROW(\"pbibatch\", 1)"),
            Some(json!({"[pbibatch]": 1}))
        );
        assert_eq!(
            evaluate(
                "evaluate\n  row ( \"a\" , -2.5, \"b\", \"say \"\"hi\"\"\", \"c\", TRUE(), \"d\", BLANK() )  "
            ),
            Some(json!({"[a]": -2.5, "[b]": "say \"hi\"", "[c]": true, "[d]": null}))
        );
    }

    #[test]
    fn anything_that_reads_the_model_is_not() {
        for query in [
            "EVALUATE ROW(\"n\", COUNTROWS('Orders'))",
            "EVALUATE 'Orders'",
            "EVALUATE ROW(\"n\", 1) ORDER BY [n]",
            "EVALUATE ROW(1, 1)",
            "EVALUATE ROW(\"n\")",
            "EVALUATEROW(\"n\", 1)",
            "EVALUATE ROW(\"n\", 1",
            "EVALUATE ROW(\"n, 1)",
        ] {
            assert_eq!(evaluate(query), None, "{query}");
        }
    }
}
