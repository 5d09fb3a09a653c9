//! Which tables a pattern list selects: `[source] tables` and
//! `exclude_tables`, and the `tables` of a `[[transform]]`.
//!
//! A pattern is a glob over `schema.table` (`*` any run of characters and
//! `?` one character, neither crossing the dot: `public.*`, `app.order_?`,
//! `*.audit`), or a regular expression after `re:` matched against the
//! whole `schema.table` (`re:^public\.tmp_\d+$`; anchored either way, as
//! Debezium's include lists are).

use regex::Regex;

/// One pattern, as written and compiled.
#[derive(Debug, Clone)]
pub struct TablePattern {
    text: String,
    regex: Regex,
}

impl TablePattern {
    /// Parses one pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let source = match text.strip_prefix("re:") {
            Some(re) => format!("^(?:{re})$"),
            None => {
                let Some((schema, table)) = text.split_once('.') else {
                    return Err(format!("{text:?} is not of the form schema.table"));
                };
                if schema.is_empty() || table.is_empty() || table.contains('.') {
                    return Err(format!("{text:?} is not of the form schema.table"));
                }
                let glob = |part: &str| {
                    part.chars()
                        .map(|c| match c {
                            '*' => "[^.]*".to_string(),
                            '?' => "[^.]".to_string(),
                            c => regex::escape(c.encode_utf8(&mut [0; 4])),
                        })
                        .collect::<String>()
                };
                format!("^{}\\.{}$", glob(schema), glob(table))
            }
        };
        let regex = Regex::new(&source).map_err(|e| {
            // The parser's message draws the place over several lines: keep its last, the reason.
            let message = e.to_string();
            let why = message.lines().last().unwrap_or_default().trim_start_matches("error: ").to_string();
            format!("{text:?} is not a valid regular expression: {why}")
        })?;
        Ok(TablePattern { text: text.to_string(), regex })
    }

    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.regex.is_match(&format!("{schema}.{table}"))
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Tables matching any `include` pattern and no `exclude` pattern.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
}

impl TableFilter {
    /// Parses both lists; the error names the first bad pattern.
    pub fn new(include: &[String], exclude: &[String]) -> Result<TableFilter, String> {
        let parse = |list: &[String]| list.iter().map(|p| TablePattern::parse(p)).collect::<Result<Vec<_>, _>>();
        Ok(TableFilter { include: parse(include)?, exclude: parse(exclude)? })
    }

    /// This filter with more include patterns (tables added while running).
    pub fn including(&self, more: &[String]) -> Result<TableFilter, String> {
        let mut include = self.include.clone();
        for p in more {
            include.push(TablePattern::parse(p)?);
        }
        Ok(TableFilter { include, exclude: self.exclude.clone() })
    }

    /// Every table (for tests and the fuzz target).
    pub fn all() -> Self {
        TableFilter::new(&["*.*".into()], &[]).expect("a valid pattern")
    }

    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.include.iter().any(|p| p.matches(schema, table)) && !self.exclude.iter().any(|p| p.matches(schema, table))
    }

    /// The include patterns that match none of `tables` (`(schema, table)`),
    /// exclusions not counted: what a source reports as missing tables.
    pub fn unmatched<'a>(&'a self, tables: &[(String, String)]) -> Vec<&'a str> {
        self.include.iter().filter(|p| !tables.iter().any(|(s, t)| p.matches(s, t))).map(|p| p.text()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TableFilter::new(&own(include), &own(exclude)).unwrap()
    }

    #[test]
    fn globs_match_within_a_part_and_prefixes_as_before() {
        let f = filter(&["app.orders", "app.customer*", "*.audit", "public.t?"], &[]);
        assert!(f.matches("app", "orders"));
        assert!(f.matches("app", "customers"));
        assert!(f.matches("app", "customer"));
        assert!(!f.matches("app", "order"));
        assert!(!f.matches("other", "orders"));
        assert!(f.matches("anything", "audit"));
        assert!(f.matches("public", "t1"));
        assert!(!f.matches("public", "t12"));
        // Dots and regex characters in a glob are literal.
        assert!(!filter(&["a.b+"], &[]).matches("a", "bb"));
        assert!(filter(&["a.b+"], &[]).matches("a", "b+"));
        assert!(TableFilter::all().matches("x", "y"));
    }

    #[test]
    fn regexes_are_anchored_and_exclusions_win() {
        let f = filter(&["public.*", r"re:app\.tmp_\d+"], &["public.audit_*", r"re:^public\.tmp_\d+$"]);
        assert!(f.matches("public", "orders"));
        assert!(!f.matches("public", "audit_log"));
        assert!(!f.matches("public", "tmp_12"));
        assert!(f.matches("public", "tmp_x"));
        assert!(f.matches("app", "tmp_7"));
        assert!(!f.matches("app", "tmp_7x"));
        assert!(!f.matches("xapp", "tmp_7"));
    }

    #[test]
    fn bad_patterns_and_unmatched_includes_are_named() {
        let err = TableFilter::new(&["orders".into()], &[]).unwrap_err();
        assert_eq!(err, "\"orders\" is not of the form schema.table");
        let err = TableFilter::new(&["re:(".into()], &[]).unwrap_err();
        assert_eq!(err, "\"re:(\" is not a valid regular expression: unclosed group");
        let f = filter(&["public.a", "public.b*"], &["public.a"]);
        assert_eq!(f.unmatched(&[("public".into(), "a".into())]), vec!["public.b*"]);
    }
}
