//! Logical column types: what a column holds, independent of which database
//! declared it.
//!
//! Sources translate their own types (PostgreSQL OID and typmod, a MySQL
//! TableMap's column type and metadata, `information_schema.COLUMNS`) into
//! one [`ColumnType`]; sinks map `ColumnType`s to their own types and never
//! parse a source's type name. Where two databases spell the same thing
//! differently (MySQL `BIGINT UNSIGNED`, PostgreSQL `oid`), they meet here
//! (`Int { bits: 64, signed: false }`, `Int { bits: 32, signed: false }`);
//! where the same spelling means different things (`TIMESTAMP` is an instant
//! in MySQL and a wall-clock time in PostgreSQL; `TIME` is a signed duration
//! in MySQL and a time of day in PostgreSQL) they part here
//! ([`ColumnType::TimestampTz`] vs [`ColumnType::Timestamp`],
//! [`ColumnType::Duration`] vs [`ColumnType::Time`]).
//!
//! Which [`Value`](crate::Value) variants a column of each type holds is
//! listed on each variant; `Null`, and PostgreSQL's `Unchanged` TOAST
//! placeholder, may appear in any column.
//!
//! The source's own type name stays on the column (`ColumnSchema::type_name`)
//! for display, and [`Dialect`] says which SQL spells it, so a sink writing
//! DDL for a database of the same kind may copy it.

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `Value::Bool`. PostgreSQL boolean. MySQL `BIT(1)` (Debezium's MySQL
    /// connector reads it as a boolean too) holds `Value::Bits` of one digit.
    Bool,
    /// An integer of `bits` bits (8, 16, 24, 32 or 64): `Value::Int`, or
    /// `Value::UInt` when not `signed`. PostgreSQL int2/int4/int8 and `oid`
    /// (32 bits, unsigned); MySQL TINYINT..BIGINT with their signedness,
    /// MEDIUMINT being 24 bits.
    Int { bits: u8, signed: bool },
    /// A calendar year, `Value::Int` (MySQL YEAR: 1901..=2155, 1900 for the
    /// zero year): stored like a small integer, described as a year
    /// (Debezium's `io.debezium.time.Year`).
    Year,
    /// `Value::Float32`: PostgreSQL float4, MySQL FLOAT.
    Float32,
    /// `Value::Float64`: PostgreSQL float8, MySQL DOUBLE.
    Float64,
    /// An exact decimal, `Value::Decimal`: `Some((precision, scale))` when
    /// declared (PostgreSQL 15 allows a negative scale), `None` for
    /// PostgreSQL's unconstrained `numeric` (which also holds `NaN` and
    /// `±Infinity`) and `money`.
    Decimal(Option<(u32, i32)>),
    /// Character data, `Value::Text`. `max_chars`: the declared length when
    /// the source states it in characters (PostgreSQL `varchar(n)`,
    /// `char(n)`); MySQL's binlog gives only a byte length, so MySQL columns
    /// leave it `None`.
    Text { max_chars: Option<u32> },
    /// Binary data, `Value::Bytes`: PostgreSQL bytea, MySQL BINARY,
    /// VARBINARY and BLOBs.
    Bytes,
    /// `Value::Date`, or `Value::Infinity` (PostgreSQL).
    Date,
    /// A time of day, `Value::Time` (0 to 24:00:00). `precision`: declared
    /// fractional-second digits (PostgreSQL `time(p)`), `None` when not declared.
    Time { precision: Option<u8> },
    /// A time of day with a UTC offset, `Value::TimeTz` (PostgreSQL timetz).
    TimeTz { precision: Option<u8> },
    /// A signed span of time, `Value::Time` in microseconds (MySQL TIME:
    /// -838:59:59 to 838:59:59, not a time of day).
    Duration { precision: Option<u8> },
    /// A wall-clock date and time without zone, `Value::Timestamp` or
    /// `Value::Infinity`: PostgreSQL timestamp, MySQL DATETIME.
    Timestamp { precision: Option<u8> },
    /// An instant, `Value::TimestampTz` or `Value::Infinity`: PostgreSQL
    /// timestamptz, MySQL TIMESTAMP (stored in UTC).
    TimestampTz { precision: Option<u8> },
    /// PostgreSQL interval, `Value::Interval` (months, days and microseconds apart).
    Interval,
    /// `Value::Uuid`.
    Uuid,
    /// A JSON document, `Value::Json` (PostgreSQL json/jsonb, MySQL JSON).
    Json,
    /// An XML document as text, `Value::Text` (PostgreSQL xml).
    Xml,
    /// An enum label, `Value::Enum` (PostgreSQL enums, MySQL ENUM).
    /// `labels`: the type's labels in declaration order (PostgreSQL's
    /// `pg_enum` sort order; MySQL's column definition), empty when the
    /// source could not tell.
    Enum { labels: Vec<String> },
    /// MySQL SET: the chosen labels joined by commas, `Value::Text`.
    /// `labels`: the labels the column allows, in declaration order.
    Set { labels: Vec<String> },
    /// A bit string, `Value::Bits`: PostgreSQL `bit(n)` (`length` n) and
    /// `varbit` (`varying`, `length` the maximum if declared); MySQL `BIT(n)`
    /// for n > 1.
    Bits { length: Option<u32>, varying: bool },
    /// A spatial value as the server stores it, `Value::Bytes`: a 4-byte
    /// little-endian SRID, then WKB (MySQL GEOMETRY and its subtypes).
    Geometry,
    /// An array of this element type, `Value::Array` (n-dimensional arrays nest).
    Array(Box<ColumnType>),
    /// Any other type, kept in its source text form (`Value::Text` mostly):
    /// PostgreSQL inet, cidr, macaddr, ranges, geometric, composite and
    /// extension types, the one-byte `"char"`.
    Other,
}

impl ColumnType {
    /// The type of an array's elements; the type itself when not an array.
    pub fn element(&self) -> &ColumnType {
        match self {
            ColumnType::Array(elem) => elem.element(),
            other => other,
        }
    }

    /// The declared fractional-second precision of a temporal type (of an
    /// array's elements), `None` when not declared or not temporal.
    pub fn precision(&self) -> Option<u8> {
        match self.element() {
            ColumnType::Time { precision }
            | ColumnType::TimeTz { precision }
            | ColumnType::Duration { precision }
            | ColumnType::Timestamp { precision }
            | ColumnType::TimestampTz { precision } => *precision,
            _ => None,
        }
    }
}

/// Which kind of database a pipeline reads. Sinks decide values from
/// [`ColumnType`]s; the dialect serves two things only: the Debezium
/// connector whose `source` block the envelope writes, and whether a sink
/// that writes DDL may copy the source's spelling of a type name
/// (`ColumnSchema::type_name`: a PostgreSQL target copying a PostgreSQL
/// source's `varchar(20)` or `inet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}
