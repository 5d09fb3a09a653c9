//! Source column types → Arrow types, and buffered [`Value`]s → Arrow arrays.
//!
//! The mapping reads `ColumnSchema::type_name` (the source's own spelling,
//! PostgreSQL's `int4`/`_numeric`/`timestamptz` or MySQL's `bigint unsigned`)
//! and, for decimals, the PostgreSQL type modifier (`numeric(p,s)` is stored
//! as `((p << 16) | s) + 4`) or a `(p,s)` suffix in the name. [`kind_of`] is
//! one table: adding a source type is one match arm.
//!
//! Decisions (also in the README):
//! - `numeric(p,s)` → Decimal128(p,s) up to 38 digits, Decimal256(p,s) up to
//!   76; unconstrained `numeric` (arbitrary precision, NaN, ±Infinity) → Utf8
//!   holding the exact text. NaN in a `numeric(p,s)` column (PostgreSQL
//!   allows it) has no Arrow decimal form and is written as null.
//! - date/timestamp `infinity`/`-infinity` → the type's largest/smallest
//!   value (PostgreSQL's own internal encoding), `time '24:00:00'` →
//!   86 400 000 000 µs.
//! - interval → Struct{months: Int32, days: Int32, micros: Int64}: PostgreSQL
//!   keeps the three apart and Parquet has no lossless interval type for it.
//! - uuid → FixedSizeBinary(16) tagged `arrow.uuid`; json/jsonb → Utf8
//!   tagged `arrow.json` (Arrow's canonical extension types).
//! - timetz → Utf8 `HH:MM:SS[.ffffff]+HH:MM` (Arrow has no zoned time).
//! - arrays → List of the element type; a multi-dimensional value is
//!   flattened in row-major order (the column type cannot say how deep).
//! - anything else (enums, inet, ranges, xml, bit strings, extension types)
//!   → Utf8 with the source's text.
//! - MySQL/MariaDB: DECIMAL(p,s) → Decimal128/256(p,s) like numeric;
//!   TIMESTAMP → Timestamp(µs, UTC) (it is an instant), DATETIME →
//!   Timestamp(µs); TIME → Duration(µs) (signed, up to ±838 h, so not a time
//!   of day); UNSIGNED integers → UInt of the same width; BIT(1) → Boolean
//!   (BIT(n) → Utf8 of '0'/'1', like PostgreSQL bit strings); GEOMETRY → Binary
//!   (the SRID then WKB, as the server stores it); ENUM/SET → Utf8 labels.
//!
//! Every column's field metadata carries `outflow.source_type`, the source's
//! type name, so readers can tell `jsonb` from `json` or `inet` from `text`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, DurationMicrosecondBuilder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use arrow_array::{ArrayRef, ListArray, StructArray};
use arrow_buffer::{i256, NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use outflow_model::{ColumnSchema, Value};

/// What an Arrow column holds; one variant per Arrow type the sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int(u8),
    UInt(u8),
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Utf8,
    Binary,
    Date,
    Time,
    /// A signed span of microseconds (MySQL TIME).
    Duration,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    List(Box<Kind>),
}

/// Metadata key naming the source's type.
pub const SOURCE_TYPE: &str = "outflow.source_type";
const EXTENSION: &str = "ARROW:extension:name";
const EXTENSION_META: &str = "ARROW:extension:metadata";

/// The Arrow kind of a source column. `mysql`: the column comes from
/// MySQL/MariaDB, whose names mean other things than PostgreSQL's: TIMESTAMP
/// is an instant (UTC), TIME a signed duration (up to ±838 h).
pub fn kind_of(col: &ColumnSchema, mysql: bool) -> Kind {
    let name = col.type_name.to_ascii_lowercase();
    if mysql {
        match name.as_str() {
            "timestamp" => return Kind::TimestampTz,
            "time" => return Kind::Duration,
            "geometry" => return Kind::Binary,
            "bit" if col.type_modifier == 1 => return Kind::Bool,
            "decimal unsigned" => return decimal_kind("decimal", col.type_modifier),
            "float unsigned" => return Kind::Float32,
            "double unsigned" => return Kind::Float64,
            _ => {}
        }
    }
    kind_of_name(&name, col.type_modifier)
}

fn kind_of_name(name: &str, typmod: i32) -> Kind {
    if let Some(elem) = name.strip_prefix('_') {
        return Kind::List(Box::new(kind_of_name(elem, typmod)));
    }
    if let Some(elem) = name.strip_suffix("[]") {
        return Kind::List(Box::new(kind_of_name(elem, typmod)));
    }
    let base = name.split('(').next().unwrap_or(name).trim();
    match base {
        "bool" | "boolean" => Kind::Bool,
        "tinyint" => Kind::Int(8),
        "int2" | "smallint" | "year" => Kind::Int(16),
        "int4" | "integer" | "int" | "mediumint" => Kind::Int(32),
        "int8" | "bigint" => Kind::Int(64),
        "tinyint unsigned" => Kind::UInt(8),
        "smallint unsigned" => Kind::UInt(16),
        "oid" | "mediumint unsigned" | "int unsigned" | "integer unsigned" => Kind::UInt(32),
        "bigint unsigned" => Kind::UInt(64),
        "float4" | "real" | "float" => Kind::Float32,
        "float8" | "double precision" | "double" => Kind::Float64,
        "numeric" | "decimal" => decimal_kind(name, typmod),
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => Kind::Binary,
        "date" => Kind::Date,
        "time" => Kind::Time,
        "timestamp" | "datetime" => Kind::Timestamp,
        "timestamptz" => Kind::TimestampTz,
        "interval" => Kind::Interval,
        "uuid" => Kind::Uuid,
        _ => Kind::Utf8,
    }
}

/// Precision and scale from PostgreSQL's typmod or a `(p,s)` name suffix;
/// Utf8 when unconstrained or beyond what Arrow decimals hold.
fn decimal_kind(name: &str, typmod: i32) -> Kind {
    let ps = if typmod >= 4 {
        let t = typmod - 4;
        // The scale is an 11-bit signed field (PostgreSQL 15 allows negative scales).
        let scale = ((t & 0x7ff) ^ 0x400) - 0x400;
        Some(((t >> 16) & 0xffff, scale))
    } else {
        name.split_once('(').and_then(|(_, rest)| {
            let inner = rest.strip_suffix(')')?;
            let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
            Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
        })
    };
    match ps {
        Some((p, s)) if (1..=76).contains(&p) && s <= p && s >= -127 => {
            Kind::Decimal { precision: p as u8, scale: s as i8 }
        }
        _ => Kind::Utf8,
    }
}

impl Kind {
    pub fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int(8) => DataType::Int8,
            Kind::Int(16) => DataType::Int16,
            Kind::Int(32) => DataType::Int32,
            Kind::Int(_) => DataType::Int64,
            Kind::UInt(8) => DataType::UInt8,
            Kind::UInt(16) => DataType::UInt16,
            Kind::UInt(32) => DataType::UInt32,
            Kind::UInt(_) => DataType::UInt64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal { precision, scale } if *precision <= 38 => DataType::Decimal128(*precision, *scale),
            Kind::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Duration => DataType::Duration(TimeUnit::Microsecond),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Interval => DataType::Struct(interval_fields()),
            Kind::Uuid => DataType::FixedSizeBinary(16),
            Kind::List(elem) => DataType::List(Arc::new(elem.field("item"))),
        }
    }

    /// A nullable field of this kind, with the extension tag where Arrow has one.
    fn field(&self, name: &str) -> Field {
        let mut meta = HashMap::new();
        match self {
            Kind::Uuid => {
                meta.insert(EXTENSION.to_string(), "arrow.uuid".to_string());
                meta.insert(EXTENSION_META.to_string(), String::new());
            }
            _ => {}
        }
        Field::new(name, self.data_type(), true).with_metadata(meta)
    }
}

fn interval_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("micros", DataType::Int64, false),
    ])
}

/// The Arrow field for a source column: nullable (a delete's `before` may
/// hold only the key, and unchanged TOAST values are null), tagged with the
/// source type.
pub fn column_field(col: &ColumnSchema, kind: &Kind) -> Field {
    let field = kind.field(&col.name);
    let mut meta = field.metadata().clone();
    meta.insert(SOURCE_TYPE.to_string(), col.type_name.clone());
    let t = col.type_name.to_ascii_lowercase();
    if matches!(t.as_str(), "json" | "jsonb") {
        meta.insert(EXTENSION.to_string(), "arrow.json".to_string());
        meta.insert(EXTENSION_META.to_string(), String::new());
    }
    field.with_metadata(meta)
}

/// A value that does not fit its column's Arrow type (a mapping bug or a
/// source type change the schema did not announce).
#[derive(Debug)]
pub struct Mismatch {
    pub kind: Kind,
    pub value: String,
}

/// Builds one Arrow array of `kind` from buffered values (null and
/// `Unchanged` both become null).
pub fn build_array(kind: &Kind, values: &[&Value]) -> Result<ArrayRef, Mismatch> {
    let bad = |v: &Value| Mismatch { kind: kind.clone(), value: format!("{v:?}") };
    macro_rules! prim {
        ($builder:expr, |$v:ident| $conv:expr) => {{
            let mut b = $builder;
            for &$v in values {
                match $v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    _ => b.append_option({ $conv }.ok_or_else(|| bad($v))?),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        }};
    }
    let n = values.len();
    match kind {
        Kind::Bool => prim!(BooleanBuilder::with_capacity(n), |v| match v {
            Value::Bool(b) => Some(Some(*b)),
            Value::Bits(s) if s.len() == 1 => Some(Some(s == "1")),
            _ => None,
        }),
        Kind::Int(8) => prim!(Int8Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::Int(16) => prim!(Int16Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::Int(32) => prim!(Int32Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::Int(_) => prim!(Int64Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::UInt(8) => prim!(UInt8Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::UInt(16) => prim!(UInt16Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::UInt(32) => prim!(UInt32Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::UInt(_) => prim!(UInt64Builder::with_capacity(n), |v| int(v).and_then(|i| i.try_into().ok()).map(Some)),
        Kind::Float32 => prim!(Float32Builder::with_capacity(n), |v| match v {
            Value::Float32(f) => Some(Some(*f)),
            Value::Float64(f) => Some(Some(*f as f32)),
            _ => None,
        }),
        Kind::Float64 => prim!(Float64Builder::with_capacity(n), |v| match v {
            Value::Float64(f) => Some(Some(*f)),
            Value::Float32(f) => Some(Some(f64::from(*f))),
            _ => None,
        }),
        Kind::Decimal { precision, scale } if *precision <= 38 => {
            let b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| Mismatch { kind: kind.clone(), value: e.to_string() })?;
            prim!(b, |v| decimal(v, *scale).map(|d| d.and_then(|s| s.parse::<i128>().ok())))
        }
        Kind::Decimal { precision, scale } => {
            let b = Decimal256Builder::with_capacity(n)
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| Mismatch { kind: kind.clone(), value: e.to_string() })?;
            prim!(b, |v| decimal(v, *scale).map(|d| d.and_then(|s| i256::from_string(&s))))
        }
        Kind::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for &v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    other => b.append_value(text(other)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        Kind::Binary => prim!(BinaryBuilder::with_capacity(n, n * 16), |v| match v {
            Value::Bytes(b) => Some(Some(b.as_slice())),
            _ => None,
        }),
        Kind::Date => prim!(Date32Builder::with_capacity(n), |v| match v {
            Value::Date(d) => Some(Some(*d)),
            Value::Infinity { negative } => Some(Some(if *negative { i32::MIN } else { i32::MAX })),
            _ => None,
        }),
        Kind::Time => prim!(Time64MicrosecondBuilder::with_capacity(n), |v| match v {
            Value::Time(t) => Some(Some(*t)),
            _ => None,
        }),
        Kind::Duration => prim!(DurationMicrosecondBuilder::with_capacity(n), |v| match v {
            Value::Time(t) => Some(Some(*t)),
            _ => None,
        }),
        Kind::Timestamp | Kind::TimestampTz => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            if *kind == Kind::TimestampTz {
                b = b.with_timezone("UTC");
            }
            prim!(b, |v| match v {
                Value::Timestamp(t) | Value::TimestampTz(t) => Some(Some(*t)),
                Value::Infinity { negative } => Some(Some(if *negative { i64::MIN } else { i64::MAX })),
                _ => None,
            })
        }
        Kind::Uuid => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(n, 16);
            for &v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Uuid(s) => {
                        let bytes = uuid_bytes(s).ok_or_else(|| bad(v))?;
                        b.append_value(bytes).map_err(|_| bad(v))?;
                    }
                    _ => return Err(bad(v)),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        Kind::Interval => {
            let (mut months, mut days, mut micros) =
                (Int32Builder::with_capacity(n), Int32Builder::with_capacity(n), Int64Builder::with_capacity(n));
            let mut valid = Vec::with_capacity(n);
            for &v in values {
                let (m, d, us, ok) = match v {
                    Value::Interval { months, days, micros } => (*months, *days, *micros, true),
                    Value::Null | Value::Unchanged => (0, 0, 0, false),
                    _ => return Err(bad(v)),
                };
                months.append_value(m);
                days.append_value(d);
                micros.append_value(us);
                valid.push(ok);
            }
            let arrays: Vec<ArrayRef> =
                vec![Arc::new(months.finish()), Arc::new(days.finish()), Arc::new(micros.finish())];
            let array = StructArray::try_new(interval_fields(), arrays, Some(NullBuffer::from(valid)))
                .map_err(|e| Mismatch { kind: kind.clone(), value: e.to_string() })?;
            Ok(Arc::new(array))
        }
        Kind::List(elem) => {
            let mut offsets = Vec::with_capacity(n + 1);
            let mut valid = Vec::with_capacity(n);
            let mut items: Vec<&Value> = Vec::new();
            offsets.push(0i32);
            for &v in values {
                match v {
                    Value::Array(a) => {
                        flatten(a, &mut items);
                        valid.push(true);
                    }
                    Value::Null | Value::Unchanged => valid.push(false),
                    _ => return Err(bad(v)),
                }
                offsets.push(items.len() as i32);
            }
            let child = build_array(elem, &items)?;
            let field = Arc::new(elem.field("item"));
            let array =
                ListArray::try_new(field, OffsetBuffer::new(offsets.into()), child, Some(NullBuffer::from(valid)))
                    .map_err(|e| Mismatch { kind: kind.clone(), value: e.to_string() })?;
            Ok(Arc::new(array))
        }
    }
}

fn flatten<'a>(values: &'a [Value], out: &mut Vec<&'a Value>) {
    for v in values {
        match v {
            Value::Array(inner) => flatten(inner, out),
            other => out.push(other),
        }
    }
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    }
}

/// The unscaled integer digits of an exact decimal text at `scale`:
/// `Some(None)` for NaN/±Infinity (no decimal form), `None` when the value
/// is not a decimal or has more fraction digits than the column allows.
fn decimal(v: &Value, scale: i8) -> Option<Option<String>> {
    let Value::Decimal(s) = v else { return None };
    if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") {
        return Some(None);
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int_part.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 4);
    if neg {
        out.push('-');
    }
    if scale >= 0 {
        let scale = scale as usize;
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > scale {
            return None;
        }
        out.push_str(int_part);
        out.push_str(frac);
        for _ in frac.len()..scale {
            out.push('0');
        }
        if frac.len() > scale {
            out.truncate(out.len() - (frac.len() - scale));
        }
    } else {
        // Negative scale: the value is a multiple of 10^-scale.
        let drop = (-scale) as usize;
        if frac.trim_end_matches('0').len() > 0 || int_part.len() < drop {
            return if int_part.trim_start_matches('0').is_empty() { Some(Some("0".into())) } else { None };
        }
        let (keep, cut) = int_part.split_at(int_part.len() - drop);
        if cut.trim_end_matches('0').len() > 0 {
            return None;
        }
        out.push_str(if keep.is_empty() { "0" } else { keep });
    }
    Some(Some(out))
}

fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A value's text for a Utf8 column: the source's own text for text-like
/// values, decimal digits for numbers.
pub fn text(v: &Value) -> String {
    match v {
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) | Value::Bits(s) => {
            s.clone()
        }
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float32(f) => f.to_string(),
        Value::Float64(f) => f.to_string(),
        Value::TimeTz { micros, offset_secs } => timetz(*micros, *offset_secs),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        other => format!("{other:?}"),
    }
}

fn timetz(micros: i64, offset_secs: i32) -> String {
    let (h, m, s, us) = (micros / 3_600_000_000, micros / 60_000_000 % 60, micros / 1_000_000 % 60, micros % 1_000_000);
    let o = offset_secs.unsigned_abs();
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let frac = if us == 0 { String::new() } else { format!(".{us:06}").trim_end_matches('0').to_string() };
    let secs = if o % 60 == 0 { String::new() } else { format!(":{:02}", o % 60) };
    format!("{h:02}:{m:02}:{s:02}{frac}{sign}{:02}:{:02}{secs}", o / 3600, o / 60 % 60)
}

/// Rough heap + inline bytes a buffered value holds (for the memory budget).
pub fn value_size(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) | Value::Bits(s) => {
                s.capacity()
            }
            Value::Bytes(b) => b.capacity(),
            Value::Array(a) => a.iter().map(value_size).sum(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of_pg(col: &ColumnSchema) -> Kind {
        kind_of(col, false)
    }

    fn col(type_name: &str, typmod: i32) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            type_name: type_name.into(),
            type_id: 0,
            type_modifier: typmod,
            nullable: true,
            key: false,
        }
    }

    #[test]
    fn postgres_and_mysql_types_map_to_arrow() {
        assert_eq!(kind_of_pg(&col("numeric", (10 << 16 | 3) + 4)).data_type(), DataType::Decimal128(10, 3));
        assert_eq!(kind_of_pg(&col("numeric", (50 << 16 | 2) + 4)).data_type(), DataType::Decimal256(50, 2));
        assert_eq!(kind_of_pg(&col("numeric", -1)), Kind::Utf8);
        assert_eq!(kind_of_pg(&col("decimal(12,4)", -1)).data_type(), DataType::Decimal128(12, 4));
        assert_eq!(kind_of_pg(&col("bigint unsigned", -1)).data_type(), DataType::UInt64);
        assert_eq!(
            kind_of_pg(&col("_timestamptz", -1)).data_type(),
            DataType::List(Arc::new(Kind::TimestampTz.field("item")))
        );
        assert_eq!(kind_of_pg(&col("mood", -1)), Kind::Utf8);
    }

    #[test]
    fn decimals_scale_exactly() {
        let d = |s: &str, scale| decimal(&Value::Decimal(s.into()), scale).unwrap();
        assert_eq!(d("12.5", 3), Some("12500".into()));
        assert_eq!(d("-1234567.891", 3), Some("-1234567891".into()));
        assert_eq!(d("3.140", 3), Some("3140".into()));
        assert_eq!(d("NaN", 2), None);
        assert_eq!(d("1200", -2), Some("12".into()));
        assert!(decimal(&Value::Decimal("1.2345".into()), 2).is_none());
    }

    #[test]
    fn mismatched_values_are_errors_not_nulls() {
        assert!(build_array(&Kind::Int(32), &[&Value::Text("x".into())]).is_err());
        assert!(build_array(&Kind::Int(16), &[&Value::Int(70_000)]).is_err());
        let a = build_array(&Kind::UInt(64), &[&Value::UInt(u64::MAX), &Value::Unchanged]).unwrap();
        assert_eq!(a.null_count(), 1);
    }

    #[test]
    fn timetz_prints_offsets() {
        assert_eq!(timetz(37_872_500_000, 19_800), "10:31:12.5+05:30");
        assert_eq!(timetz(0, -45_240), "00:00:00-12:34");
    }
}
