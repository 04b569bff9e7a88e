//! The OData `$filter` subset `GET /groups` accepts: `name eq '...'`, `contains(name,'...')`,
//! joined by `or` / `and`.

/// The OData subset the service documents for groups.
#[derive(Debug, PartialEq)]
pub(super) enum Filter {
    NameEq(String),
    NameContains(String),
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
}

impl Filter {
    pub(super) fn matches(&self, name: &str) -> bool {
        match self {
            Filter::NameEq(v) => name.eq_ignore_ascii_case(v),
            Filter::NameContains(v) => name.to_lowercase().contains(&v.to_lowercase()),
            Filter::Or(a, b) => a.matches(name) || b.matches(name),
            Filter::And(a, b) => a.matches(name) && b.matches(name),
        }
    }
}

pub(super) fn parse_filter(text: &str) -> Result<Filter, String> {
    let mut p = FilterParser {
        s: text.as_bytes(),
        i: 0,
    };
    let f = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("Invalid $filter '{text}'"));
    }
    Ok(f)
}

struct FilterParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl FilterParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        self.ws();
        let end = self.i + kw.len();
        if end <= self.s.len() && self.s[self.i..end].eq_ignore_ascii_case(kw.as_bytes()) {
            self.i = end;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Filter, String> {
        let mut left = self.term()?;
        loop {
            if self.keyword("or ") {
                left = Filter::Or(Box::new(left), Box::new(self.term()?));
            } else if self.keyword("and ") {
                left = Filter::And(Box::new(left), Box::new(self.term()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self) -> Result<Filter, String> {
        if self.keyword("(") {
            let f = self.expr()?;
            return if self.keyword(")") {
                Ok(f)
            } else {
                Err("Invalid $filter: missing ')'".into())
            };
        }
        if self.keyword("contains(") {
            if !self.keyword("name") || !self.keyword(",") {
                return Err("Invalid $filter: expected contains(name,'...')".into());
            }
            let v = self.quoted()?;
            if !self.keyword(")") {
                return Err("Invalid $filter: missing ')'".into());
            }
            return Ok(Filter::NameContains(v));
        }
        if self.keyword("name") && self.keyword("eq") {
            return Ok(Filter::NameEq(self.quoted()?));
        }
        Err("Invalid $filter: only name eq '...' and contains(name,'...') are supported".into())
    }

    /// A single-quoted OData string; `''` is an escaped quote.
    fn quoted(&mut self) -> Result<String, String> {
        self.ws();
        if self.s.get(self.i) != Some(&b'\'') {
            return Err("Invalid $filter: expected a quoted string".into());
        }
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if c == b'\'' {
                if self.s.get(self.i) == Some(&b'\'') {
                    out.push(b'\'');
                    self.i += 1;
                } else {
                    return String::from_utf8(out).map_err(|_| "Invalid $filter".to_string());
                }
            } else {
                out.push(c);
            }
        }
        Err("Invalid $filter: unterminated string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_documented_forms() {
        let f = parse_filter("name eq 'Data Admin'").unwrap();
        assert!(f.matches("Data Admin") && !f.matches("Data"));
        let f = parse_filter("contains(name,'marketing') or name eq 'contoso'").unwrap();
        assert!(f.matches("EU Marketing") && f.matches("Contoso") && !f.matches("Sales"));
        let f = parse_filter("name eq 'O''Brien'").unwrap();
        assert_eq!(f, Filter::NameEq("O'Brien".into()));
        assert!(parse_filter("name ne 'x'").is_err());
        assert!(parse_filter("name eq 'x").is_err());
        assert!(parse_filter("name eq 'x' junk").is_err());
    }
}
