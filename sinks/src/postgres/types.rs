//! Source column types → PostgreSQL target column types.
//!
//! PostgreSQL sources name built-in types as `pg_type.typname` (`int4`,
//! `_int4` for arrays, `bpchar`, `char` for the one-byte `"char"`) with the
//! column's typmod apart; the target spells them back with their modifier
//! (`numeric(10,3)`, `varchar(20)`, `timestamptz(3)`, `bit(8)`). User types
//! (OIDs from 16384: enums, domains, composites, extension types) do not
//! exist in the target database and become `text` (`text[]` for arrays of
//! them): their text output is what the source sends.
//!
//! MySQL/MariaDB names (see the binlog decoder) map to the nearest type
//! that holds every value exactly: unsigned integers widen (`bigint
//! unsigned` → `numeric(20,0)`), `enum`/`set` → text, `datetime` →
//! timestamp, `timestamp` → timestamptz (MySQL stores it in UTC), `time` →
//! interval (a signed duration up to 838 hours), `year` → smallint,
//! binary strings, blobs and `geometry` (WKB with an SRID prefix) → bytea,
//! `json` → jsonb.

/// The first OID of a user-defined object (`FirstNormalObjectId`).
const FIRST_USER_OID: u32 = 16384;

/// Which naming the source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDialect {
    Postgres,
    Mysql,
}

impl SourceDialect {
    /// From Debezium's connector name in the sink context.
    pub fn from_connector(connector: &str) -> Self {
        if connector == "mysql" {
            SourceDialect::Mysql
        } else {
            SourceDialect::Postgres
        }
    }
}

/// The target column type (SQL, ready to splice into DDL).
pub fn target_type(dialect: SourceDialect, type_name: &str, type_id: u32, typmod: i32) -> String {
    match dialect {
        SourceDialect::Postgres => pg_type(type_name, type_id, typmod),
        SourceDialect::Mysql => mysql_type(type_name, typmod),
    }
}

fn pg_type(name: &str, type_id: u32, typmod: i32) -> String {
    if let Some(elem) = name.strip_prefix('_') {
        return format!("{}[]", pg_type(elem, type_id, typmod));
    }
    if type_id >= FIRST_USER_OID || type_id == 0 {
        return "text".into();
    }
    let base = match name {
        // `char` in SQL is bpchar(1); the one-byte type must be quoted.
        "char" => return "\"char\"".into(),
        "bpchar" => "char",
        "varbit" => "bit varying",
        other if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => other,
        _ => return "text".into(),
    };
    match (name, typmod) {
        ("numeric", m) if m >= 4 => {
            let m = m - 4;
            let precision = (m >> 16) & 0xffff;
            // PostgreSQL 15 allows negative scales: 11-bit two's complement.
            let scale = ((m & 0x7ff) ^ 0x400) - 0x400;
            format!("numeric({precision},{scale})")
        }
        ("varchar" | "bpchar", m) if m >= 4 => format!("{base}({})", m - 4),
        ("bit" | "varbit", m) if m >= 0 => format!("{base}({m})"),
        ("time" | "timetz" | "timestamp" | "timestamptz", m) if (0..=6).contains(&m) => format!("{base}({m})"),
        _ => base.to_string(),
    }
}

fn mysql_type(name: &str, typmod: i32) -> String {
    let (base, unsigned) = match name.strip_suffix(" unsigned") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let fsp = |t: &str| if (0..=6).contains(&typmod) { format!("{t}({typmod})") } else { t.to_string() };
    match (base, unsigned) {
        ("tinyint", _) | ("smallint", false) | ("year", _) => "smallint".into(),
        ("smallint", true) | ("mediumint", _) | ("int", false) => "integer".into(),
        ("int", true) | ("bigint", false) => "bigint".into(),
        ("bigint", true) => "numeric(20,0)".into(),
        ("float", _) => "real".into(),
        ("double", _) => "double precision".into(),
        ("decimal", _) => pg_type("numeric", 1700, typmod),
        ("date", _) => "date".into(),
        ("time", _) => "interval".into(),
        ("datetime", _) => fsp("timestamp"),
        ("timestamp", _) => fsp("timestamptz"),
        ("bit", _) if typmod > 0 => format!("bit({typmod})"),
        ("binary" | "varbinary" | "blob" | "geometry", _) => "bytea".into(),
        ("json", _) => "jsonb".into(),
        _ => "text".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_model::numeric_typmod;

    #[test]
    fn postgres_types_keep_their_modifiers() {
        let pg = |n: &str, id: u32, m: i32| target_type(SourceDialect::Postgres, n, id, m);
        assert_eq!(pg("numeric", 1700, numeric_typmod(10, 3)), "numeric(10,3)");
        assert_eq!(pg("numeric", 1700, -1), "numeric");
        assert_eq!(pg("varchar", 1043, 24), "varchar(20)");
        assert_eq!(pg("bpchar", 1042, 9), "char(5)");
        assert_eq!(pg("char", 18, -1), "\"char\"");
        assert_eq!(pg("timestamptz", 1184, 3), "timestamptz(3)");
        assert_eq!(pg("_int4", 1007, -1), "int4[]");
        assert_eq!(pg("_numeric", 1231, numeric_typmod(5, 2)), "numeric(5,2)[]");
        assert_eq!(pg("mood", 16390, -1), "text");
        assert_eq!(pg("_mood", 16389, -1), "text[]");
        assert_eq!(pg("varbit", 1562, -1), "bit varying");
    }

    #[test]
    fn mysql_types_hold_every_value() {
        let my = |n: &str, m: i32| target_type(SourceDialect::Mysql, n, 0, m);
        assert_eq!(my("bigint unsigned", -1), "numeric(20,0)");
        assert_eq!(my("int unsigned", -1), "bigint");
        assert_eq!(my("decimal", numeric_typmod(12, 4)), "numeric(12,4)");
        assert_eq!(my("decimal unsigned", numeric_typmod(5, 0)), "numeric(5,0)");
        assert_eq!(my("enum", -1), "text");
        assert_eq!(my("time", 3), "interval");
        assert_eq!(my("datetime", 6), "timestamp(6)");
        assert_eq!(my("timestamp", 0), "timestamptz(0)");
        assert_eq!(my("bit", 5), "bit(5)");
        assert_eq!(my("geometry", -1), "bytea");
    }
}
