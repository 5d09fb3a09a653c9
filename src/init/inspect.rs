//! What `outflow init` learns about a database (filled in by `pg.rs` and
//! `mysql.rs`), and the short report it prints to stderr: the server, each
//! setting and privilege with its fix, and every user table with its key,
//! estimated rows and size, and whether the config captures it.

use std::fmt::Write as _;

use super::url::Kind;

/// One server setting or privilege: as it should be, or the fix.
#[derive(Debug, Clone)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub fix: String,
}

impl Finding {
    pub fn new(ok: bool, what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { ok, what: what.into(), fix: fix.into() }
    }
}

/// How a table's rows are identified in its change events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A primary key (its columns, in key order).
    Primary(Vec<String>),
    /// PostgreSQL `REPLICA IDENTITY USING INDEX` (the index name).
    IdentityIndex(String),
    /// PostgreSQL `REPLICA IDENTITY FULL` without a primary key.
    IdentityFull,
    None,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    pub key: Key,
    /// Rows (`None`: the server has no estimate yet).
    pub rows: Option<i64>,
    /// `rows` was counted, not estimated.
    pub rows_exact: bool,
    /// Data and index bytes.
    pub bytes: Option<i64>,
    /// The user may SELECT it (snapshots read it).
    pub selectable: bool,
}

impl TableInfo {
    /// `schema.table`, as `[source] tables` names it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Captured unless `--tables` says otherwise: rows can be told apart.
    pub fn captured_by_default(&self) -> bool {
        self.key != Key::None
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Primary(cols) => write!(f, "key ({})", cols.join(", ")),
            Key::IdentityIndex(index) => write!(f, "replica identity index {index}"),
            Key::IdentityFull => f.write_str("no key, replica identity full"),
            Key::None => f.write_str("NO PRIMARY KEY"),
        }
    }
}

/// Everything `init` learned, for the report and the config.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub kind: Kind,
    /// "PostgreSQL 15.10", "MariaDB 11.4.2-MariaDB".
    pub server: String,
    /// `host:port/database`, never the password.
    pub location: String,
    pub user: String,
    /// The database tables were listed from ("" for every MySQL database).
    pub database: String,
    pub findings: Vec<Finding>,
    pub tables: Vec<TableInfo>,
}

impl Inspection {
    /// The report; `captured`: the tables the config lists (`None` when
    /// none could be chosen, e.g. `--tables` named an unknown one).
    pub fn report(&self, captured: Option<&[String]>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} at {}, as user {:?}", self.server, self.location, self.user);
        for f in &self.findings {
            match f.ok {
                true => {
                    let _ = writeln!(out, "  ✓ {}", f.what);
                }
                false => {
                    let _ = writeln!(out, "  ✗ {}\n      fix: {}", f.what, f.fix);
                }
            }
        }
        let place = match self.database.as_str() {
            "" => "the server's databases".to_string(),
            db => format!("database {db}"),
        };
        if self.tables.is_empty() {
            let _ = writeln!(out, "no tables in {place}");
            return out;
        }
        let _ = writeln!(out, "{} table(s) in {place} (~: the server's estimate):", self.tables.len());
        let keys: Vec<String> = self.tables.iter().map(|t| t.key.to_string()).collect();
        let width = self.tables.iter().map(|t| t.qualified().chars().count()).max().unwrap_or(0);
        let key_width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
        for (t, key) in self.tables.iter().zip(&keys) {
            let name = t.qualified();
            let rows = match (t.rows, t.rows_exact) {
                (None, _) => "rows unknown".to_string(),
                (Some(n), true) => format!("{} rows", thousands(n)),
                (Some(n), false) => format!("~{} rows", thousands(n)),
            };
            let size = t.bytes.map_or("-".to_string(), human_bytes);
            let captured = captured.map(|c| c.contains(&name));
            let what = match captured {
                Some(true) => "  captured",
                Some(false) => "  left out",
                None => "",
            };
            let _ = writeln!(out, "  {name:<width$}  {key:<key_width$}  {rows:>14} {size:>9}{what}");
            if !t.selectable {
                let _ =
                    writeln!(out, "      the user may not SELECT it: snapshots of it fail ({})", self.grant_select(t));
            }
            if let Some(note) = self.key_note(t, captured == Some(true)) {
                let _ = writeln!(out, "      {note}");
            }
        }
        out
    }

    /// What a table's missing key means, and what to do about it.
    fn key_note(&self, t: &TableInfo, captured: bool) -> Option<String> {
        let name = t.qualified();
        match (&t.key, self.kind, captured) {
            (Key::Primary(_) | Key::IdentityIndex(_), _, _) => None,
            (Key::IdentityFull, _, _) => Some(
                "its events carry no key, and its snapshot rows are not deduplicated against concurrent changes"
                    .to_string(),
            ),
            (Key::None, Kind::Postgres, false) => Some(format!(
                "PostgreSQL refuses UPDATE and DELETE on a published table without a replica identity. \
                 To capture it: add a primary key, or ALTER TABLE {name} REPLICA IDENTITY FULL; (whole old rows in \
                 the WAL), then add it to [source] tables"
            )),
            (Key::None, Kind::Postgres, true) => Some(format!(
                "listed by --tables, but once it is in the publication PostgreSQL refuses UPDATE and DELETE on it: \
                 add a primary key, or ALTER TABLE {name} REPLICA IDENTITY FULL; before `outflow run`"
            )),
            (Key::None, Kind::Mysql, false) => Some(format!(
                "its changes would carry no key (no message key, no upserts) and its snapshot rows could not be \
                 deduplicated against concurrent changes. To capture it: ALTER TABLE {name} ADD PRIMARY KEY (...); \
                 then add it to [source] tables"
            )),
            (Key::None, Kind::Mysql, true) => Some(format!(
                "listed by --tables: its changes carry no key and its snapshot rows are not deduplicated; \
                 `outflow check` flags it until ALTER TABLE {name} ADD PRIMARY KEY (...);"
            )),
        }
    }

    fn grant_select(&self, t: &TableInfo) -> String {
        match self.kind {
            Kind::Postgres => format!(
                "GRANT SELECT ON {}.{} TO {};",
                crate::pg::sql::ident(&t.schema),
                crate::pg::sql::ident(&t.name),
                crate::pg::sql::ident(&self.user)
            ),
            Kind::Mysql => format!("GRANT SELECT ON `{}`.* TO '{}'@'%';", t.schema, self.user),
        }
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// 1536 → "1.5 kB"; powers of 1024 with the usual short names.
pub fn human_bytes(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if value < 10.0 => format!("{value:.1} {}", units[unit]),
        _ => format!("{value:.0} {}", units[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 kB");
        assert_eq!(human_bytes(350 << 20), "350 MB");
    }

    #[test]
    fn a_keyless_table_is_left_out_with_the_fix() {
        let table = |name: &str, key| TableInfo {
            schema: "public".into(),
            name: name.into(),
            key,
            rows: Some(3),
            rows_exact: false,
            bytes: Some(8192),
            selectable: true,
        };
        let inspection = Inspection {
            kind: Kind::Postgres,
            server: "PostgreSQL 15".into(),
            location: "h:5432/app".into(),
            user: "cdc".into(),
            database: "app".into(),
            findings: vec![Finding::new(false, "wal_level = replica", "ALTER SYSTEM SET wal_level = logical;")],
            tables: vec![table("orders", Key::Primary(vec!["id".into()])), table("log", Key::None)],
        };
        assert!(inspection.tables[0].captured_by_default() && !inspection.tables[1].captured_by_default());
        let report = inspection.report(Some(&["public.orders".to_string()]));
        assert!(report.contains("✗ wal_level = replica\n      fix: ALTER SYSTEM"), "{report}");
        assert!(report.contains("public.orders  key (id)               ~3 rows    8.0 kB  captured"), "{report}");
        assert!(report.contains("public.log     NO PRIMARY KEY         ~3 rows    8.0 kB  left out"), "{report}");
        assert!(report.contains("REPLICA IDENTITY FULL"), "{report}");
        let unchosen = inspection.report(None);
        assert!(!unchosen.contains("captured") && !unchosen.contains("left out"), "{unchosen}");
    }
}
