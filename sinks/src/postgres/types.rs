//! Source column types → PostgreSQL target column types.
//!
//! A PostgreSQL source ([`Dialect::Postgres`]) names built-in types as
//! `pg_type.typname` (`int4`, `_int4` for arrays, `bpchar`, `char` for the
//! one-byte `"char"`); the target spells them back with the modifiers the
//! logical type carries (`numeric(10,3)`, `varchar(20)`, `timestamptz(3)`,
//! `bit(8)`). User types (OIDs from 16384: enums, domains, composites,
//! extension types) do not exist in the target database and become `text`
//! (`text[]` for arrays of them): their text output is what the source sends.
//!
//! Columns of other sources map from their logical type alone, to the
//! nearest type that holds every value exactly: unsigned integers widen
//! (64-bit unsigned → `numeric(20,0)`), enums and sets → text, instants →
//! timestamptz, durations (MySQL TIME, up to 838 hours) → interval, bytes
//! and geometries (WKB with an SRID prefix) → bytea, JSON → jsonb.

use outflow_model::{ColumnSchema, ColumnType, Dialect};

/// The first OID of a user-defined object (`FirstNormalObjectId`).
const FIRST_USER_OID: u32 = 16384;

/// The target column type (SQL, ready to splice into DDL).
pub fn target_type(dialect: Dialect, col: &ColumnSchema) -> String {
    match dialect {
        Dialect::Postgres => pg_type(&col.type_name, col.type_id, &col.ty),
        Dialect::Mysql => logical_type(&col.ty),
    }
}

/// A PostgreSQL source's type, spelled by its name: the same type in the target.
fn pg_type(name: &str, type_id: u32, ty: &ColumnType) -> String {
    if let Some(elem) = name.strip_prefix('_') {
        let elem_ty = match ty {
            ColumnType::Array(e) => e,
            other => other,
        };
        return format!("{}[]", pg_type(elem, type_id, elem_ty));
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
    match (name, ty) {
        ("numeric", ColumnType::Decimal(Some((p, s)))) => format!("numeric({p},{s})"),
        ("varchar" | "bpchar", ColumnType::Text { max_chars: Some(n) }) => format!("{base}({n})"),
        ("bit" | "varbit", ColumnType::Bits { length: Some(n), .. }) => format!("{base}({n})"),
        ("time" | "timetz" | "timestamp" | "timestamptz", _) => with_precision(base, ty.precision()),
        _ => base.to_string(),
    }
}

/// The PostgreSQL type holding every value of a logical type.
fn logical_type(ty: &ColumnType) -> String {
    let name = match ty {
        ColumnType::Bool => "boolean",
        ColumnType::Int { bits, signed: true } => match bits {
            ..=16 => "smallint",
            17..=32 => "integer",
            _ => "bigint",
        },
        ColumnType::Int { bits, signed: false } => match bits {
            ..=8 => "smallint",
            9..=24 => "integer",
            25..=32 => "bigint",
            _ => "numeric(20,0)",
        },
        ColumnType::Year => "smallint",
        ColumnType::Float32 => "real",
        ColumnType::Float64 => "double precision",
        ColumnType::Decimal(Some((p, s))) => return format!("numeric({p},{s})"),
        ColumnType::Decimal(None) => "numeric",
        ColumnType::Date => "date",
        ColumnType::Time { precision } => return with_precision("time", *precision),
        ColumnType::TimeTz { precision } => return with_precision("timetz", *precision),
        ColumnType::Timestamp { precision } => return with_precision("timestamp", *precision),
        ColumnType::TimestampTz { precision } => return with_precision("timestamptz", *precision),
        ColumnType::Duration { .. } | ColumnType::Interval => "interval",
        ColumnType::Bits { length: Some(n), varying } if *n > 0 => {
            return format!("{}({n})", if *varying { "bit varying" } else { "bit" })
        }
        ColumnType::Bytes | ColumnType::Geometry => "bytea",
        ColumnType::Json => "jsonb",
        ColumnType::Uuid => "uuid",
        ColumnType::Xml => "xml",
        ColumnType::Array(elem) => return format!("{}[]", logical_type(elem)),
        ColumnType::Text { .. } | ColumnType::Enum { .. } | ColumnType::Set { .. } | ColumnType::Bits { .. } | ColumnType::Other => {
            "text"
        }
    };
    name.to_string()
}

fn with_precision(base: &str, precision: Option<u8>) -> String {
    match precision {
        Some(p) => format!("{base}({p})"),
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_name: &str, type_id: u32, ty: ColumnType) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            ty,
            type_name: type_name.into(),
            type_id,
            type_modifier: -1,
            nullable: true,
            key: false,
        }
    }

    #[test]
    fn postgres_types_keep_their_modifiers() {
        let pg = |n: &str, id: u32, ty: ColumnType| target_type(Dialect::Postgres, &col(n, id, ty));
        let text = |n| ColumnType::Text { max_chars: n };
        let arr = |t| ColumnType::Array(Box::new(t));
        assert_eq!(pg("numeric", 1700, ColumnType::Decimal(Some((10, 3)))), "numeric(10,3)");
        assert_eq!(pg("numeric", 1700, ColumnType::Decimal(None)), "numeric");
        assert_eq!(pg("varchar", 1043, text(Some(20))), "varchar(20)");
        assert_eq!(pg("bpchar", 1042, text(Some(5))), "char(5)");
        assert_eq!(pg("char", 18, ColumnType::Other), "\"char\"");
        assert_eq!(pg("timestamptz", 1184, ColumnType::TimestampTz { precision: Some(3) }), "timestamptz(3)");
        assert_eq!(pg("_int4", 1007, arr(ColumnType::Int { bits: 32, signed: true })), "int4[]");
        assert_eq!(pg("_numeric", 1231, arr(ColumnType::Decimal(Some((5, 2))))), "numeric(5,2)[]");
        assert_eq!(pg("mood", 16390, ColumnType::Enum { labels: vec![] }), "text");
        assert_eq!(pg("_mood", 16389, arr(ColumnType::Enum { labels: vec![] })), "text[]");
        assert_eq!(pg("varbit", 1562, ColumnType::Bits { length: None, varying: true }), "bit varying");
        assert_eq!(pg("money", 790, ColumnType::Decimal(None)), "money");
        assert_eq!(pg("oid", 26, ColumnType::Int { bits: 32, signed: false }), "oid");
    }

    #[test]
    fn mysql_types_hold_every_value() {
        let my = |n: &str, ty: ColumnType| target_type(Dialect::Mysql, &col(n, 0, ty));
        let int = |bits, signed| ColumnType::Int { bits, signed };
        assert_eq!(my("bigint unsigned", int(64, false)), "numeric(20,0)");
        assert_eq!(my("int unsigned", int(32, false)), "bigint");
        assert_eq!(my("mediumint unsigned", int(24, false)), "integer");
        assert_eq!(my("tinyint", int(8, true)), "smallint");
        assert_eq!(my("decimal", ColumnType::Decimal(Some((12, 4)))), "numeric(12,4)");
        assert_eq!(my("decimal unsigned", ColumnType::Decimal(Some((5, 0)))), "numeric(5,0)");
        assert_eq!(my("enum", ColumnType::Enum { labels: vec![] }), "text");
        assert_eq!(my("time", ColumnType::Duration { precision: Some(3) }), "interval");
        assert_eq!(my("datetime", ColumnType::Timestamp { precision: Some(6) }), "timestamp(6)");
        assert_eq!(my("timestamp", ColumnType::TimestampTz { precision: Some(0) }), "timestamptz(0)");
        assert_eq!(my("bit", ColumnType::Bits { length: Some(5), varying: false }), "bit(5)");
        assert_eq!(my("geometry", ColumnType::Geometry), "bytea");
        assert_eq!(my("json", ColumnType::Json), "jsonb");
        assert_eq!(my("varchar", ColumnType::Text { max_chars: None }), "text");
    }
}
