//! PostgreSQL type OIDs → what kind of value a column holds ([`PgType`]).
//!
//! pgoutput's Relation message names each column's type only by OID. Built-in
//! types have fixed OIDs (`pg_type.dat`) and are known statically here, with
//! their array types. User types (enums, domains, arrays of them, composites,
//! extension types such as `citext` or PostGIS) have database-specific OIDs:
//! the I/O side of the program asks `pg_type` about any OID that
//! [`TypeRegistry::is_known`] does not know *before* it feeds the Relation
//! message to the decoder, and [`register`](TypeRegistry::register)s it:
//! enums as [`PgType::Enum`], domains as their base type (a domain's text
//! output is its base type's), arrays with their element resolved, anything
//! else as [`PgType::Other`] (so it is not looked up again). An OID nobody
//! registered resolves to `Other`, which is kept as text: never an error.
//!
//! Type *names* (for `ColumnSchema::type_name`) come from the static table for
//! built-ins and from pgoutput's Type message (sent for every non-built-in
//! column type before the Relation that uses it) for user types.
//!
//! [`column_type`] turns a resolved type and the column's typmod into the
//! logical [`ColumnType`] sinks see. A domain is its base type with the
//! column's own typmod (-1: PostgreSQL keeps a domain's modifier on the
//! domain), so a domain over `numeric(12,2)` is an unconstrained decimal.

use std::collections::HashMap;

use outflow_model::ColumnType;

/// What kind of value a PostgreSQL column holds, as far as decoding cares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PgType {
    /// A built-in type, by its OID (e.g. 23 int4, 1700 numeric, 1184 timestamptz).
    Builtin(u32),
    /// A user enum type: values are labels; the type's labels in
    /// `pg_enum` sort order.
    Enum(Vec<String>),
    /// An array whose elements have this type (elem type resolved too;
    /// domains over arrays flatten).
    Array(Box<PgType>),
    /// A type we do not know specifically (composite, range, extension type):
    /// kept as text.
    Other,
}

/// OIDs of the built-in types, as in PostgreSQL's `pg_type.dat` (one table, in `pgtypes`).
pub use crate::pgtypes::oid;

/// Built-in scalar types: (OID, name, OID of its array type).
const BUILTINS: &[(u32, &str, u32)] = &[
    (oid::BOOL, "bool", 1000),
    (oid::BYTEA, "bytea", 1001),
    (oid::CHAR, "char", 1002),
    (oid::NAME, "name", 1003),
    (oid::INT8, "int8", 1016),
    (oid::INT2, "int2", 1005),
    (oid::INT4, "int4", 1007),
    (oid::TEXT, "text", 1009),
    (oid::OID, "oid", 1028),
    (oid::JSON, "json", 199),
    (oid::XML, "xml", 143),
    (oid::CIDR, "cidr", 651),
    (oid::FLOAT4, "float4", 1021),
    (oid::FLOAT8, "float8", 1022),
    (oid::MACADDR8, "macaddr8", 775),
    (oid::MONEY, "money", 791),
    (oid::MACADDR, "macaddr", 1040),
    (oid::INET, "inet", 1041),
    (oid::BPCHAR, "bpchar", 1014),
    (oid::VARCHAR, "varchar", 1015),
    (oid::DATE, "date", 1182),
    (oid::TIME, "time", 1183),
    (oid::TIMESTAMP, "timestamp", 1115),
    (oid::TIMESTAMPTZ, "timestamptz", 1185),
    (oid::INTERVAL, "interval", 1187),
    (oid::TIMETZ, "timetz", 1270),
    (oid::BIT, "bit", 1561),
    (oid::VARBIT, "varbit", 1563),
    (oid::NUMERIC, "numeric", 1231),
    (oid::UUID, "uuid", 2951),
    (oid::JSONB, "jsonb", 3807),
];

/// The name PostgreSQL gives a built-in scalar or array type (`int4`, `_int4`).
fn builtin(oid: u32) -> Option<(PgType, &'static str)> {
    for &(scalar, name, array) in BUILTINS {
        if oid == scalar {
            return Some((PgType::Builtin(scalar), name));
        }
        if oid == array {
            return Some((PgType::Array(Box::new(PgType::Builtin(scalar))), name));
        }
    }
    None
}

/// OID → [`PgType`] and type name: built-ins statically, user types as registered.
#[derive(Debug, Clone, Default)]
pub struct TypeRegistry {
    user: HashMap<u32, PgType>,
    names: HashMap<u32, String>,
}

impl TypeRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what a user type is (enum, domain as its base type, array of
    /// a resolved element, or `Other`). A later call for the same OID wins.
    pub fn register(&mut self, oid: u32, ty: PgType) {
        self.user.insert(oid, ty);
    }

    /// Records a type's name (from pgoutput's Type message or `pg_type`).
    pub fn register_name(&mut self, oid: u32, name: impl Into<String>) {
        self.names.insert(oid, name.into());
    }

    /// What `oid` is; `Other` when nobody told us.
    pub fn resolve(&self, oid: u32) -> PgType {
        if let Some(ty) = self.user.get(&oid) {
            return ty.clone();
        }
        builtin(oid).map_or(PgType::Other, |(ty, _)| ty)
    }

    /// Whether `oid` is a built-in we know or a registered user type.
    pub fn is_known(&self, oid: u32) -> bool {
        self.user.contains_key(&oid) || builtin(oid).is_some()
    }

    /// The type's name as PostgreSQL spells it in `pg_type.typname`
    /// (`int4`, `_int4`, `mood`); the OID in decimal when no name is known.
    pub fn type_name(&self, oid: u32) -> String {
        if let Some(name) = self.names.get(&oid) {
            return name.clone();
        }
        match builtin(oid) {
            Some((PgType::Array(_), name)) => format!("_{name}"),
            Some((_, name)) => name.to_owned(),
            None => oid.to_string(),
        }
    }
}

/// The logical type of a column of type `ty` with modifier `typmod`
/// (`atttypmod`, -1 for none; for arrays the element's).
pub fn column_type(ty: &PgType, typmod: i32) -> ColumnType {
    match ty {
        PgType::Builtin(oid) => builtin_column_type(*oid, typmod),
        PgType::Enum(labels) => ColumnType::Enum { labels: labels.clone() },
        PgType::Array(elem) => ColumnType::Array(Box::new(column_type(elem, typmod))),
        PgType::Other => ColumnType::Other,
    }
}

fn builtin_column_type(oid: u32, typmod: i32) -> ColumnType {
    let precision = u8::try_from(typmod).ok().filter(|p| *p <= 6);
    let int = |bits, signed| ColumnType::Int { bits, signed };
    match oid {
        oid::BOOL => ColumnType::Bool,
        oid::BYTEA => ColumnType::Bytes,
        oid::INT2 => int(16, true),
        oid::INT4 => int(32, true),
        oid::INT8 => int(64, true),
        oid::OID => int(32, false),
        oid::FLOAT4 => ColumnType::Float32,
        oid::FLOAT8 => ColumnType::Float64,
        // numeric(p,s) is stored as ((p << 16) | s) + 4, the scale an 11-bit
        // signed field (PostgreSQL 15 allows negative scales).
        oid::NUMERIC if typmod >= 4 => {
            let m = typmod - 4;
            ColumnType::Decimal(Some((((m >> 16) & 0xffff) as u32, ((m & 0x7ff) ^ 0x400) - 0x400)))
        }
        oid::NUMERIC | oid::MONEY => ColumnType::Decimal(None),
        oid::NAME | oid::TEXT => ColumnType::Text { max_chars: None },
        // varchar(n) and char(n) are stored as n + 4.
        oid::BPCHAR | oid::VARCHAR => ColumnType::Text { max_chars: u32::try_from(typmod - 4).ok() },
        oid::DATE => ColumnType::Date,
        oid::TIME => ColumnType::Time { precision },
        oid::TIMETZ => ColumnType::TimeTz { precision },
        oid::TIMESTAMP => ColumnType::Timestamp { precision },
        oid::TIMESTAMPTZ => ColumnType::TimestampTz { precision },
        oid::INTERVAL => ColumnType::Interval,
        oid::UUID => ColumnType::Uuid,
        oid::JSON | oid::JSONB => ColumnType::Json,
        oid::XML => ColumnType::Xml,
        oid::BIT => ColumnType::Bits { length: u32::try_from(typmod).ok(), varying: false },
        oid::VARBIT => ColumnType::Bits { length: u32::try_from(typmod).ok(), varying: true },
        _ => ColumnType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_their_arrays_resolve_with_pg_names() {
        let reg = TypeRegistry::new();
        assert_eq!(reg.resolve(23), PgType::Builtin(23));
        assert_eq!(reg.resolve(1007), PgType::Array(Box::new(PgType::Builtin(23))));
        assert_eq!(reg.resolve(3807), PgType::Array(Box::new(PgType::Builtin(3802))));
        assert_eq!(reg.type_name(1700), "numeric");
        assert_eq!(reg.type_name(1231), "_numeric");
        assert_eq!(reg.type_name(199), "_json");
        assert!(reg.is_known(1185));
    }

    #[test]
    fn user_types_are_other_until_registered() {
        let mut reg = TypeRegistry::new();
        assert!(!reg.is_known(16_385));
        assert_eq!(reg.resolve(16_385), PgType::Other);
        assert_eq!(reg.type_name(16_385), "16385");

        reg.register(16_385, PgType::Enum(Vec::new()));
        reg.register(16_384, PgType::Array(Box::new(PgType::Enum(Vec::new()))));
        reg.register(16_390, PgType::Builtin(oid::TEXT)); // a domain over text
        reg.register_name(16_385, "mood");
        assert!(reg.is_known(16_385));
        assert_eq!(reg.resolve(16_385), PgType::Enum(Vec::new()));
        assert_eq!(reg.resolve(16_384), PgType::Array(Box::new(PgType::Enum(Vec::new()))));
        assert_eq!(reg.resolve(16_390), PgType::Builtin(25));
        assert_eq!(reg.type_name(16_385), "mood");
    }

    #[test]
    fn logical_types_carry_modifiers() {
        let reg = TypeRegistry::new();
        let ty = |oid, typmod| column_type(&reg.resolve(oid), typmod);
        assert_eq!(ty(1700, (10 << 16 | 3) + 4), ColumnType::Decimal(Some((10, 3))));
        assert_eq!(ty(1700, (5 << 16 | 0x7fe) + 4), ColumnType::Decimal(Some((5, -2))));
        assert_eq!(ty(1231, -1), ColumnType::Array(Box::new(ColumnType::Decimal(None))));
        assert_eq!(ty(1043, 24), ColumnType::Text { max_chars: Some(20) });
        assert_eq!(ty(25, -1), ColumnType::Text { max_chars: None });
        assert_eq!(ty(1184, 3), ColumnType::TimestampTz { precision: Some(3) });
        assert_eq!(ty(1083, -1), ColumnType::Time { precision: None });
        assert_eq!(ty(1562, -1), ColumnType::Bits { length: None, varying: true });
        assert_eq!(ty(26, -1), ColumnType::Int { bits: 32, signed: false });
        assert_eq!(ty(869, -1), ColumnType::Other);
        let mood = PgType::Enum(vec!["sad".into(), "ok".into()]);
        assert_eq!(column_type(&mood, -1), ColumnType::Enum { labels: vec!["sad".into(), "ok".into()] });
    }
}
