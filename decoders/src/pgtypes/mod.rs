//! PostgreSQL text output → [`Value`].
//!
//! pgoutput (text mode) and `COPY`/simple-query snapshots deliver every column
//! as the type's text output function prints it. This module parses that text
//! for the session settings the replication connection pins: `TimeZone=UTC`,
//! `DateStyle=ISO`, `IntervalStyle=postgres`, `extra_float_digits=3`, and
//! `lc_monetary=C` for money.
//!
//! Surprises handled here:
//! - `numeric` keeps its exact text (`NaN`, `Infinity`, `-Infinity` since PG14,
//!   any precision); it never goes through a float.
//! - dates and timestamps may be `infinity`/`-infinity`, carry a ` BC` suffix
//!   (after the zone offset for timestamptz), have years beyond 9999, and
//!   `time` may be `24:00:00`. Civil-date arithmetic is hand-written
//!   ([`datetime`]) because PostgreSQL uses the proleptic Gregorian calendar
//!   from 4713 BC to 5874897 AD and common date libraries either stop at year
//!   1 / 9999 or switch to the Julian calendar before 1582.
//! - `money` prints with a currency symbol and group separators (`-$1,234.56`);
//!   it becomes an exact decimal.
//! - arrays may carry dimension decorations (`[0:1]={1,2}`), nest, quote and
//!   backslash-escape elements, and spell NULL unquoted (`"NULL"` is text).
//!
//! Every function returns `Err(DecodeError)` on malformed input and never
//! panics; nesting depth is bounded, so the parser is safe to fuzz.

mod array;
pub mod binary;
pub mod datetime;
pub mod oid;

use crate::pg_type_registry::PgType;
use crate::DecodeError;
use outflow_model::Value;

/// Parses one value in PostgreSQL text output format for a column of type `ty`.
///
/// Domains must already be resolved to their base type. Unknown types
/// (`PgType::Other`, composite, range, extension types, and built-ins this
/// module does not model, such as inet or xml) become `Value::Text`.
pub fn parse_text(ty: &PgType, text: &str) -> Result<Value, DecodeError> {
    match ty {
        PgType::Builtin(o) => match oid::array_element(*o) {
            Some(elem) => array::parse(&PgType::Builtin(elem), text),
            None => parse_builtin(*o, text),
        },
        PgType::Enum(_) => Ok(Value::Enum(text.to_owned())),
        PgType::Array(elem) => array::parse(elem, text),
        PgType::Other => Ok(Value::Text(text.to_owned())),
    }
}

fn parse_builtin(type_oid: u32, text: &str) -> Result<Value, DecodeError> {
    use oid::*;
    Ok(match type_oid {
        BOOL => parse_bool(text)?,
        INT2 => Value::Int(parse_int::<i16>("int2", text)? as i64),
        INT4 => Value::Int(parse_int::<i32>("int4", text)? as i64),
        INT8 => Value::Int(parse_int::<i64>("int8", text)?),
        OID | XID | CID => Value::Int(parse_int::<u32>("oid", text)? as i64),
        NUMERIC => Value::Decimal(parse_numeric(text)?),
        FLOAT4 => Value::Float32(parse_float::<f32>("float4", text)?),
        FLOAT8 => Value::Float64(parse_float::<f64>("float8", text)?),
        MONEY => Value::Decimal(parse_money(text)?),
        BYTEA => Value::Bytes(parse_bytea(text)?),
        DATE => datetime::parse_date(text)?,
        TIME => Value::Time(datetime::parse_time(text)?),
        TIMETZ => datetime::parse_timetz(text)?,
        TIMESTAMP => datetime::parse_timestamp(text)?,
        TIMESTAMPTZ => datetime::parse_timestamptz(text)?,
        INTERVAL => datetime::parse_interval(text)?,
        UUID => Value::Uuid(parse_uuid(text)?),
        JSON | JSONB => Value::Json(text.to_owned()),
        BIT | VARBIT => Value::Bits(parse_bits(text)?),
        _ => Value::Text(text.to_owned()),
    })
}

fn parse_bool(text: &str) -> Result<Value, DecodeError> {
    match text {
        "t" | "true" => Ok(Value::Bool(true)),
        "f" | "false" => Ok(Value::Bool(false)),
        _ => Err(DecodeError::invalid("bool", format!("expected t or f, got {:?}", clip(text)))),
    }
}

fn parse_int<T: std::str::FromStr>(what: &'static str, text: &str) -> Result<T, DecodeError> {
    text.parse::<T>().map_err(|_| DecodeError::invalid(what, format!("not an integer: {:?}", clip(text))))
}

fn parse_float<T: std::str::FromStr>(what: &'static str, text: &str) -> Result<T, DecodeError> {
    // Rust accepts exactly the spellings PostgreSQL prints: digits with an
    // optional exponent, `NaN`, `Infinity`, `-Infinity`.
    text.parse::<T>().map_err(|_| DecodeError::invalid(what, format!("not a number: {:?}", clip(text))))
}

/// Validates numeric output (`-12.340`, `NaN`, `Infinity`, `-Infinity`) and returns it unchanged.
fn parse_numeric(text: &str) -> Result<String, DecodeError> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") || is_plain_decimal(text) {
        Ok(text.to_owned())
    } else {
        Err(DecodeError::invalid("numeric", format!("not a decimal: {:?}", clip(text))))
    }
}

/// `-?digits(.digits)?` — the only shape numeric_out and money (after
/// stripping) produce.
fn is_plain_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// money with `lc_monetary=C` prints `$1,234.56`, `-$1.00`; some locales
/// print `($1.00)` for negatives. Keeps the digits and the decimal point.
fn parse_money(text: &str) -> Result<String, DecodeError> {
    let negative = text.starts_with('-') || text.starts_with('(');
    let mut out = String::with_capacity(text.len());
    if negative {
        out.push('-');
    }
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => out.push(c),
            '$' | ',' | ' ' | '-' | '(' | ')' => {}
            _ => return Err(DecodeError::invalid("money", format!("unexpected {c:?} in {:?}", clip(text)))),
        }
    }
    if is_plain_decimal(&out) {
        Ok(out)
    } else {
        Err(DecodeError::invalid("money", format!("not an amount: {:?}", clip(text))))
    }
}

/// bytea: hex format `\x0102ff` (the default since 9.0), or the escape format
/// (`\\` for a backslash, `\ooo` octal, other bytes as themselves).
fn parse_bytea(text: &str) -> Result<Vec<u8>, DecodeError> {
    let b = text.as_bytes();
    if let Some(hex) = text.strip_prefix("\\x") {
        let h = hex.as_bytes();
        if h.len() % 2 != 0 {
            return Err(DecodeError::invalid("bytea", "odd number of hex digits"));
        }
        return h
            .chunks_exact(2)
            .map(|p| match (hex_val(p[0]), hex_val(p[1])) {
                (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                _ => Err(DecodeError::invalid("bytea", "bad hex digit")),
            })
            .collect();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = b.get(i + 1..i + 4).ok_or_else(|| DecodeError::invalid("bytea", "truncated escape"))?;
            if !(b'0'..=b'3').contains(&oct[0]) || !oct[1..].iter().all(|c| (b'0'..=b'7').contains(c)) {
                return Err(DecodeError::invalid("bytea", "bad octal escape"));
            }
            out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// uuid_out prints lowercase 8-4-4-4-12; validated and kept as text.
fn parse_uuid(text: &str) -> Result<String, DecodeError> {
    let ok =
        text.len() == 36
            && text.bytes().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(DecodeError::invalid("uuid", format!("not a uuid: {:?}", clip(text))))
    }
}

fn parse_bits(text: &str) -> Result<String, DecodeError> {
    if text.bytes().all(|c| c == b'0' || c == b'1') {
        Ok(text.to_owned())
    } else {
        Err(DecodeError::invalid("bit string", format!("expected 0 and 1, got {:?}", clip(text))))
    }
}

/// At most 40 characters of untrusted input, for error messages.
pub(crate) fn clip(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests;
