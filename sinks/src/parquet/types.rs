//! Source column types → Arrow types, and buffered [`Value`]s → Arrow arrays.
//!
//! The mapping reads the column's logical type (`ColumnSchema::ty`) only;
//! [`kind_of`] is one table: a new logical type is one match arm.
//!
//! Decisions (also in docs/src/sinks/parquet.md):
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
//!   TIMESTAMP (an instant) → Timestamp(µs, UTC), DATETIME → Timestamp(µs);
//!   TIME (a duration: signed, up to ±838 h) → Duration(µs); UNSIGNED
//!   integers → UInt of the same width (MEDIUMINT's 24 bits → 32); BIT(1)
//!   (a boolean) → Boolean, BIT(n) → Utf8 of '0'/'1' like PostgreSQL bit
//!   strings; GEOMETRY → Binary (the SRID then WKB, as the server stores
//!   it); ENUM/SET → Utf8 labels.
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
use outflow_model::{ColumnSchema, ColumnType, Value};

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

/// The Arrow kind of a source column, from its logical type.
pub fn kind_of(col: &ColumnSchema) -> Kind {
    kind_of_type(&col.ty)
}

fn kind_of_type(ty: &ColumnType) -> Kind {
    match ty {
        ColumnType::Bool => Kind::Bool,
        ColumnType::Int { bits, signed } => {
            let width = match bits {
                0..=8 => 8,
                9..=16 => 16,
                17..=32 => 32,
                _ => 64,
            };
            if *signed {
                Kind::Int(width)
            } else {
                Kind::UInt(width)
            }
        }
        ColumnType::Year => Kind::Int(16),
        ColumnType::Float32 => Kind::Float32,
        ColumnType::Float64 => Kind::Float64,
        ColumnType::Decimal(Some((p, s))) if (1..=76).contains(p) && *s <= *p as i32 && *s >= -127 => {
            Kind::Decimal { precision: *p as u8, scale: *s as i8 }
        }
        ColumnType::Bytes | ColumnType::Geometry => Kind::Binary,
        ColumnType::Date => Kind::Date,
        ColumnType::Time { .. } => Kind::Time,
        ColumnType::Duration { .. } => Kind::Duration,
        ColumnType::Timestamp { .. } => Kind::Timestamp,
        ColumnType::TimestampTz { .. } => Kind::TimestampTz,
        ColumnType::Interval => Kind::Interval,
        ColumnType::Uuid => Kind::Uuid,
        ColumnType::Array(elem) => Kind::List(Box::new(kind_of_type(elem))),
        ColumnType::Decimal(_)
        | ColumnType::Text { .. }
        | ColumnType::TimeTz { .. }
        | ColumnType::Json
        | ColumnType::Xml
        | ColumnType::Enum { .. }
        | ColumnType::Set { .. }
        | ColumnType::Bits { .. }
        | ColumnType::Other => Kind::Utf8,
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
        if self == &Kind::Uuid {
            meta.insert(EXTENSION.to_string(), "arrow.uuid".to_string());
            meta.insert(EXTENSION_META.to_string(), String::new());
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
    if col.ty == ColumnType::Json {
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
        if !frac.trim_end_matches('0').is_empty() || int_part.len() < drop {
            return if int_part.trim_start_matches('0').is_empty() { Some(Some("0".into())) } else { None };
        }
        let (keep, cut) = int_part.split_at(int_part.len() - drop);
        if !cut.trim_end_matches('0').is_empty() {
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
    let secs = if o.is_multiple_of(60) { String::new() } else { format!(":{:02}", o % 60) };
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

    fn kind(ty: ColumnType) -> Kind {
        kind_of(&ColumnSchema {
            name: "c".into(),
            ty,
            type_name: String::new(),
            type_id: 0,
            type_modifier: -1,
            nullable: true,
            key: false,
        })
    }

    #[test]
    fn postgres_and_mysql_types_map_to_arrow() {
        assert_eq!(kind(ColumnType::Decimal(Some((10, 3)))).data_type(), DataType::Decimal128(10, 3));
        assert_eq!(kind(ColumnType::Decimal(Some((50, 2)))).data_type(), DataType::Decimal256(50, 2));
        assert_eq!(kind(ColumnType::Decimal(None)), Kind::Utf8);
        assert_eq!(kind(ColumnType::Decimal(Some((12, 4)))).data_type(), DataType::Decimal128(12, 4));
        assert_eq!(kind(ColumnType::Int { bits: 64, signed: false }).data_type(), DataType::UInt64);
        assert_eq!(kind(ColumnType::Int { bits: 24, signed: false }).data_type(), DataType::UInt32);
        assert_eq!(
            kind(ColumnType::Array(Box::new(ColumnType::TimestampTz { precision: None }))).data_type(),
            DataType::List(Arc::new(Kind::TimestampTz.field("item")))
        );
        assert_eq!(kind(ColumnType::Enum { labels: vec![] }), Kind::Utf8);
        assert_eq!(kind(ColumnType::Duration { precision: Some(3) }), Kind::Duration);
        assert_eq!(kind(ColumnType::Bits { length: Some(1), varying: false }), Kind::Utf8);
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
