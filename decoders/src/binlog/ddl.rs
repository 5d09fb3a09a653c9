//! Which table a DDL statement from the binlog changes, read from its first
//! words, so the statement can go with the table's next shape (the binlog's
//! table maps say what a table looks like, not which statement made it so).
//!
//! Only the statements that give a table a new shape are recognised:
//! `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] t`, `ALTER
//! [ONLINE] [IGNORE] TABLE [IF EXISTS] t` and `RENAME TABLE a TO t` (the
//! first pair). Anything else (`DROP`, `CREATE INDEX`, `GRANT`…) names no
//! table. Hand-written: no SQL parser crate reads MariaDB's DDL dialect, and
//! a table name is all that is needed.

use outflow_model::TableId;

/// The table `sql` (run with `db` as the default database) gives a new shape.
pub fn changed_table(sql: &str, db: &str) -> Option<TableId> {
    let mut words = Words { rest: sql };
    let first = words.keyword()?;
    let name = match first.as_str() {
        "CREATE" => {
            words.skip_all(&["OR", "REPLACE", "TEMPORARY"]);
            words.expect("TABLE")?;
            words.skip_all(&["IF", "NOT", "EXISTS"]);
            words.name()?
        }
        "ALTER" => {
            words.skip_all(&["ONLINE", "IGNORE"]);
            words.expect("TABLE")?;
            words.skip_all(&["IF", "EXISTS"]);
            words.name()?
        }
        "RENAME" => {
            words.expect("TABLE")?;
            words.name()?;
            words.expect("TO")?;
            words.name()?
        }
        _ => return None,
    };
    Some(match name {
        (Some(schema), table) => TableId::new(schema, table),
        (None, table) => TableId::new(db, table),
    })
}

/// A cursor over the statement's words.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    /// Skips white space and `/* … */` comments.
    fn skip_blank(&mut self) {
        loop {
            self.rest = self.rest.trim_start();
            match self.rest.strip_prefix("/*").and_then(|r| r.find("*/").map(|end| &r[end + 2..])) {
                Some(after) => self.rest = after,
                None => return,
            }
        }
    }

    /// The next bare word, upper-cased.
    fn keyword(&mut self) -> Option<String> {
        self.skip_blank();
        let end = self.rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let word = self.rest[..end].to_ascii_uppercase();
        self.rest = &self.rest[end..];
        Some(word)
    }

    fn peek_keyword(&self) -> Option<String> {
        Words { rest: self.rest }.keyword()
    }

    fn expect(&mut self, word: &str) -> Option<()> {
        (self.keyword()? == word).then_some(())
    }

    /// Skips any of `words`, in any order.
    fn skip_all(&mut self, words: &[&str]) {
        while self.peek_keyword().is_some_and(|w| words.contains(&w.as_str())) {
            self.keyword();
        }
    }

    /// One identifier, backquoted or bare.
    fn ident(&mut self) -> Option<String> {
        self.skip_blank();
        if let Some(quoted) = self.rest.strip_prefix('`') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '`' {
                    if quoted[i + 1..].starts_with('`') {
                        out.push('`');
                        chars.next();
                        continue;
                    }
                    self.rest = &quoted[i + 1..];
                    return Some(out);
                }
                out.push(c);
            }
            return None;
        }
        let end = self.rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(self.rest.len());
        (end > 0).then(|| {
            let word = self.rest[..end].to_string();
            self.rest = &self.rest[end..];
            word
        })
    }

    /// `table` or `db.table`.
    fn name(&mut self) -> Option<(Option<String>, String)> {
        let first = self.ident()?;
        match self.rest.strip_prefix('.') {
            Some(after) => {
                self.rest = after;
                Some((Some(first), self.ident()?))
            }
            None => Some((None, first)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str) -> Option<String> {
        changed_table(sql, "app").map(|t| t.to_string())
    }

    #[test]
    fn names_the_table_a_statement_reshapes() {
        assert_eq!(t("ALTER TABLE orders ADD COLUMN x INT").as_deref(), Some("app.orders"));
        assert_eq!(t("alter online ignore table `shop`.`or``ders` add y int").as_deref(), Some("shop.or`ders"));
        assert_eq!(t("/* c */ CREATE OR REPLACE TABLE IF NOT EXISTS t1 (id int)").as_deref(), Some("app.t1"));
        assert_eq!(t("CREATE TEMPORARY TABLE tmp(id int)").as_deref(), Some("app.tmp"));
        assert_eq!(t("CREATE TABLE `db`.t2 LIKE t1").as_deref(), Some("db.t2"));
        assert_eq!(t("RENAME TABLE old TO new_one, a TO b").as_deref(), Some("app.new_one"));
        assert_eq!(t("ALTER TABLE IF EXISTS s.t DROP c").as_deref(), Some("s.t"));
        assert_eq!(t("DROP TABLE `app`.`t` /* generated by server */"), None);
        assert_eq!(t("CREATE INDEX i ON t (c)"), None);
        assert_eq!(t("GRANT SELECT ON *.* TO u"), None);
        assert_eq!(t(""), None);
    }
}
