//! Values rendered as PostgreSQL text input, escaped for `COPY ... FROM STDIN`
//! in text format (the default: tab-separated columns, newline-terminated
//! rows, `\N` for NULL).
//!
//! Two layers: [`literal`] writes what PostgreSQL's type input function reads
//! (`12.50`, `2024-01-02 03:04:05.123456+00`, `\x01ff`, `{"a","b"}`), and
//! [`write_copy_field`] escapes it for COPY: backslash, tab, newline and
//! carriage return become `\\`, `\t`, `\n`, `\r` (the COPY text format
//! reads every other character literally).
//!
//! Surprises handled: decimals stay the source's exact text; timestamps keep
//! their microseconds and say `+00` so the server's `TimeZone` does not
//! matter; dates before year 1 are written `0044-03-15 BC` (PostgreSQL has
//! no year 0); `Value::Time` may be negative or past 24 hours (MySQL TIME,
//! stored as interval), which interval input reads as hours; arrays quote
//! every element (valid for every element type) and escape `"` and `\`
//! inside; an `Unchanged` value must never reach here (the caller keeps the
//! target's value instead).

use std::fmt::Write as _;

use outflow_model::value::civil_from_days;
use outflow_model::Value;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Appends one COPY field for `v` (`\N` for NULL and `Unchanged`).
pub fn write_copy_field(out: &mut Vec<u8>, v: &Value, scratch: &mut String) {
    match v {
        Value::Null | Value::Unchanged => out.extend_from_slice(b"\\N"),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::UInt(u) => out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes()),
        Value::Decimal(d) => out.extend_from_slice(d.as_bytes()),
        _ => {
            scratch.clear();
            literal(scratch, v);
            escape_copy(out, scratch);
        }
    }
}

/// Escapes `s` for the COPY text format.
pub fn escape_copy(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes `v` as PostgreSQL's text input for its type. NULL (only reached
/// inside arrays) is `NULL`.
pub fn literal(out: &mut String, v: &Value) {
    match v {
        Value::Null | Value::Unchanged => out.push_str("NULL"),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float32(f) => float(out, f64::from(*f), format_args!("{f}")),
        Value::Float64(f) => float(out, *f, format_args!("{f}")),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) | Value::Bits(s) => {
            out.push_str(s)
        }
        Value::Bytes(b) => {
            out.push_str("\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Date(days) => date(out, i64::from(*days)),
        Value::Time(us) => time_of_day(out, *us),
        Value::TimeTz { micros, offset_secs } => {
            time_of_day(out, *micros);
            offset(out, *offset_secs);
        }
        Value::Timestamp(us) => timestamp(out, *us, false),
        Value::TimestampTz(us) => timestamp(out, *us, true),
        Value::Infinity { negative } => out.push_str(if *negative { "-infinity" } else { "infinity" }),
        Value::Interval { months, days, micros } => {
            let _ = write!(out, "{months} mons {days} days ");
            time_of_day(out, *micros);
        }
        Value::Array(items) => array(out, items),
    }
}

fn float(out: &mut String, x: f64, shortest: std::fmt::Arguments<'_>) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x < 0.0 { "-Infinity" } else { "Infinity" });
    } else {
        let _ = out.write_fmt(shortest);
    }
}

/// `YYYY-MM-DD`, with ` BC` for years before 1 (year 0 is 1 BC).
fn date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    let _ = write!(out, "{year:04}-{m:02}-{d:02}");
    if bc {
        out.push_str(" BC");
    }
}

/// `[-]HH:MM:SS.ffffff`; hours may exceed 23 (interval input reads them).
fn time_of_day(out: &mut String, micros: i64) {
    let abs = micros.unsigned_abs();
    let sign = if micros < 0 { "-" } else { "" };
    let (h, m, s, f) = (abs / 3_600_000_000, abs / 60_000_000 % 60, abs / 1_000_000 % 60, abs % 1_000_000);
    let _ = write!(out, "{sign}{h:02}:{m:02}:{s:02}.{f:06}");
}

fn offset(out: &mut String, secs: i32) {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}:{:02}", abs / 3600, abs / 60 % 60, abs % 60);
}

fn timestamp(out: &mut String, micros: i64, utc: bool) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    let _ = write!(out, "{year:04}-{m:02}-{d:02} ");
    time_of_day(out, micros.rem_euclid(MICROS_PER_DAY));
    if utc {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

/// `{"a","b",NULL}`; nested arrays nest.
fn array(out: &mut String, items: &[Value]) {
    out.push('{');
    let mut element = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null | Value::Unchanged => out.push_str("NULL"),
            Value::Array(inner) => array(out, inner),
            other => {
                element.clear();
                literal(&mut element, other);
                out.push('"');
                for c in element.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(v: Value) -> String {
        let mut out = Vec::new();
        write_copy_field(&mut out, &v, &mut String::new());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars_render_as_postgres_input() {
        assert_eq!(copy(Value::Null), "\\N");
        assert_eq!(copy(Value::Text("a\tb\\c\nd".into())), "a\\tb\\\\c\\nd");
        assert_eq!(copy(Value::Bytes(vec![1, 0xff])), "\\\\x01ff");
        assert_eq!(copy(Value::Date(0)), "1970-01-01");
        assert_eq!(copy(Value::Date(-719_163)), "0001-12-31 BC");
        assert_eq!(copy(Value::TimestampTz(1_500_000)), "1970-01-01 00:00:01.500000+00");
        assert_eq!(copy(Value::Timestamp(-1)), "1969-12-31 23:59:59.999999");
        assert_eq!(copy(Value::Time(-(25 * 3_600_000_000 + 1))), "-25:00:00.000001");
        assert_eq!(copy(Value::TimeTz { micros: 0, offset_secs: -19800 }), "00:00:00.000000-05:30:00");
        assert_eq!(copy(Value::Interval { months: 14, days: -3, micros: 1 }), "14 mons -3 days 00:00:00.000001");
        assert_eq!(copy(Value::Float64(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(copy(Value::Float32(0.1)), "0.1");
        assert_eq!(copy(Value::UInt(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn arrays_quote_and_escape_elements() {
        let v = Value::Array(vec![
            Value::Array(vec![Value::Text("a\"b".into()), Value::Null]),
            Value::Array(vec![Value::Bytes(vec![0]), Value::Text("x,y".into())]),
        ]);
        assert_eq!(copy(v), r#"{{"a\\"b",NULL},{"\\\\x00","x,y"}}"#);
    }
}
