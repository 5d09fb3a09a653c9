//! Rendering one column value as JSON: the way Debezium 3.x emits it for
//! PostgreSQL and MySQL through Kafka's JSON converter
//! (`schemas.enable=false`, `decimal.handling.mode=string`,
//! `time.precision.mode=adaptive` (PostgreSQL) / `adaptive_time_microseconds`
//! (MySQL), `interval.handling.mode=numeric`, `binary.handling.mode=bytes`),
//! and the flat format for people (ISO-8601 text).
//!
//! Debezium facts copied here were checked against the real Debezium
//! (`/work/shared/tools/debezium-ref/pg` and `.../mariadb`, see
//! `tests/golden/README.md` and `tests/golden/mysql_types.sql`):
//! - date → days since epoch; time/timestamp → micros, or millis when the
//!   declared precision is 0..=3; timestamptz → `2024-01-02T03:04:05.123456Z`
//!   with as many fraction digits as the declared precision (6 when none);
//!   timetz → UTC `04:41:12.5Z` with trailing fraction zeros cut;
//!   interval → micros with a month of 30.4375 days;
//!   timestamp `infinity` → pgjdbc's `9223372036825200000` (micros; /1000 for millis).
//! - A duration ([`ColumnType::Duration`], MySQL TIME) → microseconds whatever
//!   its precision (negative and > 24 h kept): Debezium's PostgreSQL and
//!   MySQL renderings of TIME part because the types differ (a time of day,
//!   a span), so the logical type carries the difference.
//! - geometry → `{"wkb": base64 of the WKB, "srid": n}`, srid null when 0.
//! - numeric `NaN`/`Infinity`/`-Infinity` → `"NAN"`, `"POSITIVE_INFINITY"`,
//!   `"NEGATIVE_INFINITY"`; float NaN and infinities → `"NaN"`, `"Infinity"`, `"-Infinity"`;
//!   finite floats print like Java's `Double.toString` / `Float.toString` (`-2.0`, `1.0E300`).
//! - bit(1) → boolean; other bit strings → base64 of the value's
//!   little-endian bytes with high zero bytes dropped (`java.util.BitSet`).
//!   ENUM/SET → label text; YEAR → number.
//! - TOAST placeholders: bytea → base64 of the placeholder's bytes; arrays of
//!   int2/int4/int8/date → the placeholder's bytes as numbers; other arrays →
//!   a one-element list holding the placeholder (rendered like an element).
//! - Deliberate difference: BIGINT UNSIGNED is the exact integer (Debezium's
//!   precise mode emits base64 bytes without a schema to read them by).
//!
//! Rendering depends on the declared type only where Debezium's does; it is
//! read from the column's logical type (`ColumnSchema::ty`), never from the
//! source's type name.
//! Hot path: everything appends to a byte buffer without building a DOM.

use std::io::Write;

use super::scalars::{
    bits_le_bytes, write_date, write_datetime, write_debezium_iso_interval, write_float_flat, write_iso_duration,
    write_java_float, write_time_of_day, MICROS_PER_DAY,
};
use base64::Engine;
use num_bigint::BigInt;
use outflow_model::{ColumnSchema, ColumnType, Value};

/// Rendering options shared by both formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueStyle {
    /// Shown for a TOASTed value the source did not send (`Value::Unchanged`).
    pub unavailable_placeholder: String,
    /// Debezium's converter settings (Debezium format only).
    pub modes: ValueModes,
}

impl Default for ValueStyle {
    fn default() -> Self {
        ValueStyle::new("__debezium_unavailable_value")
    }
}

impl ValueStyle {
    /// The default rendering with this TOAST placeholder.
    pub fn new(unavailable_placeholder: impl Into<String>) -> Self {
        ValueStyle { unavailable_placeholder: unavailable_placeholder.into(), modes: ValueModes::default() }
    }
}

/// Debezium's converter settings, each defaulting to outflow's rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueModes {
    pub decimal: DecimalMode,
    pub binary: BinaryMode,
    pub time: TimeMode,
    pub interval: IntervalMode,
    pub unsigned: UnsignedMode,
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// The exact decimal as a string (outflow's default).
    #[default]
    String,
    /// Base64 of the unscaled value's two's-complement big-endian bytes at
    /// the declared scale; `{"scale", "value"}` (`VariableScaleDecimal`)
    /// without one; NaN and infinities null (Debezium's default).
    Precise,
    /// A JSON number (may lose digits).
    Double,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// `bytes` (Debezium's default): Connect bytes, which the JSON converter
    /// writes as standard base64.
    #[default]
    Bytes,
    /// `base64`: a string of standard base64 (the same JSON as `bytes`;
    /// only the schema differs).
    Base64,
    Base64UrlSafe,
    /// Lowercase hex.
    Hex,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeMode {
    /// Millis for precision 0..=3, micros above (MySQL TIME: always micros).
    #[default]
    Adaptive,
    /// As adaptive, but times of day always in micros.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's types: times of day and timestamps in millis; a MySQL
    /// TIME outside 00:00..24:00 is null.
    Connect,
}

/// `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalMode {
    /// Microseconds, a month being 30.4375 days.
    #[default]
    Numeric,
    /// `P<y>Y<m>M<d>DT<h>H<m>M<s>S`, every field present.
    String,
}

/// `bigint.unsigned.handling.mode` (BIGINT UNSIGNED only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsignedMode {
    /// The exact integer (outflow's default).
    #[default]
    Exact,
    /// The 64 bits as a signed long (values above 2^63-1 wrap negative).
    Long,
    /// Base64 of the big-endian two's-complement bytes (a decimal of scale 0).
    Precise,
}

/// pgjdbc's `PGStatement.DATE_POSITIVE_INFINITY` / `DATE_NEGATIVE_INFINITY`,
/// which Debezium emits unchanged in a micro-timestamp field.
const TS_POS_INFINITY: i64 = 9_223_372_036_825_200_000;
const TS_NEG_INFINITY: i64 = -9_223_372_036_832_400_000;

/// The declared type, as far as rendering depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    Timestamp,
    Bytea,
    VarBit,
    /// Signed integers of 16 to 64 bits: with dates, the element types
    /// whose arrays Debezium fills with the placeholder's bytes.
    IntLike,
    /// A span of time (MySQL TIME): microseconds whatever its precision.
    Duration,
    Geometry,
    /// A decimal of fixed scale (declared, or money's 2).
    FixedDecimal(i32),
    /// A decimal without a declared scale (PostgreSQL `numeric`).
    VariableDecimal,
    /// BIGINT UNSIGNED.
    UInt64,
    Other,
}

struct ColType {
    kind: Kind,
    is_array: bool,
    /// Declared fractional-second precision, `None` when not declared.
    precision: Option<u32>,
}

fn col_type(col: &ColumnSchema) -> ColType {
    let kind = match col.ty.element() {
        ColumnType::Date => Kind::Date,
        ColumnType::Timestamp { .. } => Kind::Timestamp,
        ColumnType::Bytes => Kind::Bytea,
        ColumnType::Bits { varying: true, .. } => Kind::VarBit,
        ColumnType::Int { bits: 16.., signed: true } => Kind::IntLike,
        ColumnType::Duration { .. } => Kind::Duration,
        ColumnType::Geometry => Kind::Geometry,
        ColumnType::Decimal(Some((_, scale))) => Kind::FixedDecimal(*scale),
        // money: Debezium's `money.fraction.digits` default.
        ColumnType::Decimal(None) if col.type_name == "money" => Kind::FixedDecimal(2),
        ColumnType::Decimal(None) => Kind::VariableDecimal,
        ColumnType::Int { bits: 64, signed: false } => Kind::UInt64,
        _ => Kind::Other,
    };
    let is_array = matches!(col.ty, ColumnType::Array(_));
    ColType { kind, is_array, precision: col.ty.precision().map(u32::from) }
}

impl ColType {
    /// Debezium's adaptive mode: precision 0..=3 → milliseconds; spans
    /// (MySQL TIME) always in microseconds.
    fn millis(&self) -> bool {
        self.kind != Kind::Duration && self.precision.is_some_and(|p| p <= 3)
    }

    /// Whether a time of day (`time`) or timestamp renders in millis.
    fn millis_in(&self, mode: TimeMode, timestamp: bool) -> bool {
        match mode {
            TimeMode::Adaptive => self.millis(),
            TimeMode::AdaptiveTimeMicroseconds => timestamp && self.millis(),
            TimeMode::Connect => true,
        }
    }
}

/// Appends the Debezium JSON for `v` to `out`.
pub fn write_debezium_value(out: &mut Vec<u8>, v: &Value, col: &ColumnSchema, style: &ValueStyle) {
    if matches!(v, Value::Null) && !col.nullable {
        if let Some(zero) = fallback(&col.ty) {
            return write_debezium_value(out, &zero, col, style);
        }
    }
    // The commonest values render the same whatever the declared type.
    let ct = match v {
        Value::Decimal(_) if style.modes.decimal != DecimalMode::String => col_type(col),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Decimal(_) | Value::Text(_) => UNTYPED,
        _ => col_type(col),
    };
    debezium(out, v, &ct, style);
}

/// A NOT NULL column without a value is one the source did not send (a
/// PostgreSQL delete under `REPLICA IDENTITY DEFAULT` carries the key
/// columns only). Debezium's value converters write their fallback there,
/// the type's zero (checked with debezium-ref: `""`, `0`, `0.0`, `false`,
/// `[]`, `"0.00"` for numeric(10,2), epoch dates and times,
/// `"1970-01-01T00:00:00Z"`); `None` leaves null where no fallback was checked.
fn fallback(ty: &ColumnType) -> Option<Value> {
    Some(match ty {
        ColumnType::Bool => Value::Bool(false),
        ColumnType::Int { signed: false, .. } => Value::UInt(0),
        ColumnType::Int { .. } | ColumnType::Year => Value::Int(0),
        ColumnType::Float32 => Value::Float32(0.0),
        ColumnType::Float64 => Value::Float64(0.0),
        ColumnType::Decimal(Some((_, scale))) if *scale > 0 => {
            Value::Decimal(format!("0.{}", "0".repeat(*scale as usize)))
        }
        ColumnType::Decimal(_) => Value::Decimal("0".into()),
        ColumnType::Text { .. } | ColumnType::Xml | ColumnType::Json | ColumnType::Uuid => Value::Text(String::new()),
        ColumnType::Bytes => Value::Bytes(Vec::new()),
        ColumnType::Date => Value::Date(0),
        ColumnType::Time { .. } => Value::Time(0),
        ColumnType::Timestamp { .. } => Value::Timestamp(0),
        // Debezium's fixed fallback string, not the column's rendering of the epoch.
        ColumnType::TimestampTz { .. } => Value::Text("1970-01-01T00:00:00Z".into()),
        ColumnType::Array(_) => Value::Array(Vec::new()),
        _ => return None,
    })
}

const UNTYPED: ColType = ColType { kind: Kind::Other, is_array: false, precision: None };

fn debezium(out: &mut Vec<u8>, v: &Value, ct: &ColType, style: &ValueStyle) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => match (style.modes.unsigned, ct.kind) {
            (UnsignedMode::Long, Kind::UInt64) => write_int(out, *u as i64),
            (UnsignedMode::Precise, Kind::UInt64) => {
                write_bytes(out, &BigInt::from(*u).to_signed_bytes_be(), BinaryMode::Bytes)
            }
            _ => out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes()),
        },
        Value::Float32(f) => write_java_float(out, *f as f64, true),
        Value::Float64(f) => write_java_float(out, *f, false),
        Value::Decimal(d) => match style.modes.decimal {
            DecimalMode::String => write_json_str(
                out,
                match d.as_str() {
                    "NaN" => "NAN",
                    "Infinity" => "POSITIVE_INFINITY",
                    "-Infinity" => "NEGATIVE_INFINITY",
                    s => s,
                },
            ),
            DecimalMode::Double => match d.parse::<f64>() {
                Ok(x) => write_java_float(out, x, false),
                Err(_) => out.extend_from_slice(b"null"),
            },
            DecimalMode::Precise => write_precise_decimal(out, d, ct.kind),
        },
        Value::Text(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) => write_json_str(out, s),
        Value::Bytes(b) if ct.kind == Kind::Geometry && b.len() >= 4 => write_geometry(out, b),
        Value::Bytes(b) => write_bytes(out, b, style.modes.binary),
        Value::Date(d) => write_int(out, *d as i64),
        Value::Time(us) if ct.kind == Kind::Duration && style.modes.time == TimeMode::Connect => {
            if (0..MICROS_PER_DAY).contains(us) {
                write_int(out, us.div_euclid(1000));
            } else {
                out.extend_from_slice(b"null");
            }
        }
        Value::Time(us) => {
            write_int(out, if ct.millis_in(style.modes.time, false) { us.div_euclid(1000) } else { *us })
        }
        Value::TimeTz { micros, offset_secs } => {
            out.push(b'"');
            let utc = (micros - *offset_secs as i64 * 1_000_000).rem_euclid(MICROS_PER_DAY);
            write_time_of_day(out, utc, None);
            out.extend_from_slice(b"Z\"");
        }
        Value::Timestamp(us) => {
            write_int(out, if ct.millis_in(style.modes.time, true) { us.div_euclid(1000) } else { *us })
        }
        Value::TimestampTz(us) => {
            out.push(b'"');
            write_datetime(out, *us, Some(ct.precision.unwrap_or(6)));
            out.extend_from_slice(b"Z\"");
        }
        Value::Infinity { negative } => match ct.kind {
            Kind::Date => write_int(out, if *negative { i32::MIN } else { i32::MAX } as i64),
            Kind::Timestamp => {
                let us = if *negative { TS_NEG_INFINITY } else { TS_POS_INFINITY };
                write_int(out, if ct.millis_in(style.modes.time, true) { us / 1000 } else { us });
            }
            _ => write_json_str(out, if *negative { "-infinity" } else { "infinity" }),
        },
        Value::Interval { months, days, micros } if style.modes.interval == IntervalMode::String => {
            write_debezium_iso_interval(out, *months, *days, *micros)
        }
        Value::Interval { months, days, micros } => {
            let total = *months as i128 * 2_629_800_000_000 + *days as i128 * MICROS_PER_DAY as i128 + *micros as i128;
            write_int(out, total.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
        }
        Value::Bits(bits) => {
            if bits.len() == 1 && ct.kind != Kind::VarBit {
                out.extend_from_slice(if bits == "1" { b"true" } else { b"false" });
            } else {
                write_base64(out, &bits_le_bytes(bits));
            }
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                debezium(out, item, ct, style);
            }
            out.push(b']');
        }
        Value::Unchanged => {
            let p = style.unavailable_placeholder.as_str();
            match (ct.is_array, ct.kind) {
                (false, Kind::Bytea) => write_bytes(out, p.as_bytes(), style.modes.binary),
                (false, _) => write_json_str(out, p),
                (true, Kind::IntLike | Kind::Date) => {
                    out.push(b'[');
                    for (i, b) in p.bytes().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_int(out, b as i64);
                    }
                    out.push(b']');
                }
                (true, Kind::Bytea) => {
                    out.push(b'[');
                    write_base64(out, p.as_bytes());
                    out.push(b']');
                }
                (true, _) => {
                    out.push(b'[');
                    write_json_str(out, p);
                    out.push(b']');
                }
            }
        }
    }
}

/// Appends the flat-JSON rendering of `v`: ISO-8601 dates, times and
/// timestamps, decimals as strings, bytes as base64, intervals as ISO-8601
/// durations, bit strings as `"0101"`, `infinity` as a string.
pub fn write_flat_value(out: &mut Vec<u8>, v: &Value, col: &ColumnSchema, style: &ValueStyle) {
    flat(out, v, &col_type(col), style);
}

fn flat(out: &mut Vec<u8>, v: &Value, ct: &ColType, style: &ValueStyle) {
    match v {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Bytes(_) => debezium(out, v, ct, style),
        Value::Float32(f) => write_float_flat(out, *f as f64, format_args!("{f:?}")),
        Value::Float64(f) => write_float_flat(out, *f, format_args!("{f:?}")),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) | Value::Bits(s) => {
            write_json_str(out, s)
        }
        Value::Date(d) => {
            out.push(b'"');
            write_date(out, *d as i64);
            out.push(b'"');
        }
        Value::Time(us) => {
            out.push(b'"');
            write_time_of_day(out, *us, None);
            out.push(b'"');
        }
        Value::TimeTz { micros, offset_secs } => {
            out.push(b'"');
            write_time_of_day(out, *micros, None);
            let o = offset_secs.unsigned_abs();
            let _ = write!(out, "{}{:02}:{:02}", if *offset_secs < 0 { '-' } else { '+' }, o / 3600, o / 60 % 60);
            if o % 60 != 0 {
                let _ = write!(out, ":{:02}", o % 60);
            }
            out.push(b'"');
        }
        Value::Timestamp(us) => {
            out.push(b'"');
            write_datetime(out, *us, None);
            out.push(b'"');
        }
        Value::TimestampTz(us) => {
            out.push(b'"');
            write_datetime(out, *us, None);
            out.extend_from_slice(b"Z\"");
        }
        Value::Infinity { negative } => write_json_str(out, if *negative { "-infinity" } else { "infinity" }),
        Value::Interval { months, days, micros } => {
            out.push(b'"');
            write_iso_duration(out, *months, *days, *micros);
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                flat(out, item, ct, style);
            }
            out.push(b']');
        }
        Value::Unchanged => write_json_str(out, &style.unavailable_placeholder),
    }
}

/// Debezium's geometry struct: `{"wkb": base64 of the WKB, "srid": n}`,
/// srid null when 0; `b` is the SRID (4 bytes, little-endian) then the WKB.
fn write_geometry(out: &mut Vec<u8>, b: &[u8]) {
    let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    out.extend_from_slice(b"{\"wkb\":");
    write_base64(out, &b[4..]);
    out.extend_from_slice(b",\"srid\":");
    if srid == 0 {
        out.extend_from_slice(b"null");
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(srid).as_bytes());
    }
    out.push(b'}');
}

/// Appends a JSON string literal. Escapes like Jackson (Debezium's JSON
/// converter): `\"`, `\\`, `\b \t \n \f \r`, other control characters as
/// `\u00XX`; everything else, DEL and non-ASCII included, as UTF-8.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Bytes that need an escape: controls, '"' and '\\' (a table lookup per
    // byte; this loop is the hottest of JSON rendering).
    const ESCAPE: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 0x20 {
            t[i] = true;
            i += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t
    };
    out.reserve(s.len() + 2);
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !ESCAPE[c as usize] {
            continue;
        }
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => &[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]],
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// `n` (0..=99) as two digits.

fn write_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let engine = &base64::engine::general_purpose::STANDARD;
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
    let n = engine.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

/// Bytes as `binary.handling.mode` says: base64 (standard or URL-safe,
/// padded, as Java's encoders) or lowercase hex, in a JSON string.
fn write_bytes(out: &mut Vec<u8>, bytes: &[u8], mode: BinaryMode) {
    match mode {
        BinaryMode::Bytes | BinaryMode::Base64 => write_base64(out, bytes),
        BinaryMode::Base64UrlSafe => {
            out.push(b'"');
            out.extend_from_slice(base64::engine::general_purpose::URL_SAFE.encode(bytes).as_bytes());
            out.push(b'"');
        }
        BinaryMode::Hex => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(b'"');
            for b in bytes {
                out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            out.push(b'"');
        }
    }
}

/// `decimal.handling.mode=precise`: the unscaled value's two's-complement
/// big-endian bytes in base64, at the declared scale (`FixedDecimal`), or
/// `{"scale", "value"}` with the value's own scale, trailing fraction
/// zeros dropped (`VariableDecimal`, Debezium's `VariableScaleDecimal`).
/// NaN and the infinities have no such form: null, as in Debezium.
fn write_precise_decimal(out: &mut Vec<u8>, text: &str, kind: Kind) {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac.is_empty() || !int_part.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        out.extend_from_slice(b"null");
        return;
    }
    let (scale, frac) = match kind {
        Kind::FixedDecimal(scale) => (scale, frac),
        _ => {
            let kept = frac.trim_end_matches('0');
            (kept.len() as i32, kept)
        }
    };
    // The unscaled integer's digits at `scale` (pad or cut the fraction;
    // a negative scale drops integer digits, as numeric(p, -s) stores them).
    let mut unscaled = String::with_capacity(int_part.len() + frac.len() + 1);
    unscaled.push_str(int_part);
    if scale >= 0 {
        let scale = scale as usize;
        unscaled.push_str(&frac[..frac.len().min(scale)]);
        unscaled.extend(std::iter::repeat_n('0', scale.saturating_sub(frac.len())));
    } else {
        unscaled.truncate(unscaled.len().saturating_sub(scale.unsigned_abs() as usize));
    }
    let mut value: BigInt = unscaled.parse().unwrap_or_default();
    if negative {
        value = -value;
    }
    let bytes = value.to_signed_bytes_be();
    match kind {
        Kind::FixedDecimal(_) => write_base64(out, &bytes),
        _ => {
            out.extend_from_slice(b"{\"scale\":");
            write_int(out, scale as i64);
            out.extend_from_slice(b",\"value\":");
            write_base64(out, &bytes);
            out.push(b'}');
        }
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
