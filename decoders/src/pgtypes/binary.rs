//! PostgreSQL binary send format → [`Value`], for pgoutput's `binary`
//! option: the same values [`parse_text`](super::parse_text) gives for the
//! text output, for the types listed by [`supported`]. pgoutput sends every
//! column whose type has a send function in binary, so a stream may use the
//! option only while every captured column's type is supported here (the
//! source falls back to text otherwise).
//!
//! Formats (all big-endian), as the types' `*send` functions write them:
//! - `numeric`: ndigits, weight, sign (0x4000 negative, 0xC000 NaN, 0xD000
//!   +Infinity, 0xF000 -Infinity), display scale, then base-10000 digits;
//!   printed exactly as `numeric_out` does (scale kept, no float);
//! - `date`: days, timestamps: microseconds, both since 2000-01-01, the
//!   type's extreme values meaning ±infinity; `timetz`: microseconds and
//!   the zone in seconds *west* of UTC;
//! - `interval`: microseconds, days, months;
//! - `bit`/`varbit`: the length in bits, then the bits, most significant first;
//! - `jsonb`: a version byte (1), then the text;
//! - arrays: dimensions, a has-nulls flag, the element type, each
//!   dimension's length and lower bound, then each element with its length
//!   (-1: NULL), nested per dimension like the text form.
//!
//! Every function returns `Err(DecodeError)` on malformed input and never
//! panics.

use outflow_model::Value;

use super::oid;
use crate::pg_type_registry::PgType;
use crate::DecodeError;

/// Days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds between the two epochs.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Whether values of `ty` can be decoded from their binary form.
pub fn supported(ty: &PgType) -> bool {
    use oid::*;
    match ty {
        PgType::Builtin(o) => match array_element(*o) {
            Some(elem) => supported(&PgType::Builtin(elem)),
            None => matches!(
                *o,
                BOOL | INT2
                    | INT4
                    | INT8
                    | OID
                    | FLOAT4
                    | FLOAT8
                    | NUMERIC
                    | BYTEA
                    | DATE
                    | TIME
                    | TIMETZ
                    | TIMESTAMP
                    | TIMESTAMPTZ
                    | INTERVAL
                    | UUID
                    | JSON
                    | JSONB
                    | TEXT
                    | VARCHAR
                    | BPCHAR
                    | NAME
                    | BIT
                    | VARBIT
            ),
        },
        PgType::Enum(_) => true,
        PgType::Array(elem) => supported(elem),
        PgType::Other => false,
    }
}

/// Decodes one value in binary send format for a column of type `ty`
/// (see [`supported`]).
pub fn parse_binary(ty: &PgType, bytes: &[u8]) -> Result<Value, DecodeError> {
    match ty {
        PgType::Builtin(o) => match oid::array_element(*o) {
            Some(elem) => parse_array(&PgType::Builtin(elem), bytes),
            None => parse_builtin(*o, bytes),
        },
        PgType::Enum(_) => Ok(Value::Enum(utf8("enum", bytes)?.to_owned())),
        PgType::Array(elem) => parse_array(elem, bytes),
        PgType::Other => Err(DecodeError::invalid("binary value", "a type outflow cannot decode in binary form")),
    }
}

fn parse_builtin(type_oid: u32, b: &[u8]) -> Result<Value, DecodeError> {
    use oid::*;
    Ok(match type_oid {
        BOOL => Value::Bool(fixed::<1>("bool", b)?[0] != 0),
        INT2 => Value::Int(i16::from_be_bytes(fixed("int2", b)?) as i64),
        INT4 => Value::Int(i32::from_be_bytes(fixed("int4", b)?) as i64),
        INT8 => Value::Int(i64::from_be_bytes(fixed("int8", b)?)),
        OID => Value::Int(u32::from_be_bytes(fixed("oid", b)?) as i64),
        FLOAT4 => Value::Float32(f32::from_be_bytes(fixed("float4", b)?)),
        FLOAT8 => Value::Float64(f64::from_be_bytes(fixed("float8", b)?)),
        NUMERIC => Value::Decimal(numeric(b)?),
        BYTEA => Value::Bytes(b.to_vec()),
        DATE => match i32::from_be_bytes(fixed("date", b)?) {
            i32::MAX => Value::Infinity { negative: false },
            i32::MIN => Value::Infinity { negative: true },
            days => Value::Date(days.saturating_add(EPOCH_DAYS)),
        },
        TIME => Value::Time(i64::from_be_bytes(fixed("time", b)?)),
        TIMETZ => {
            let (micros, zone) = b.split_at_checked(8).ok_or_else(|| short("timetz"))?;
            Value::TimeTz {
                micros: i64::from_be_bytes(fixed("timetz", micros)?),
                offset_secs: -i32::from_be_bytes(fixed("timetz", zone)?),
            }
        }
        TIMESTAMP | TIMESTAMPTZ => match i64::from_be_bytes(fixed("timestamp", b)?) {
            i64::MAX => Value::Infinity { negative: false },
            i64::MIN => Value::Infinity { negative: true },
            micros if type_oid == TIMESTAMP => Value::Timestamp(micros.saturating_add(EPOCH_MICROS)),
            micros => Value::TimestampTz(micros.saturating_add(EPOCH_MICROS)),
        },
        INTERVAL => {
            let raw: [u8; 16] = fixed("interval", b)?;
            let (micros, rest) = raw.split_at(8);
            let (days, months) = rest.split_at(4);
            Value::Interval {
                micros: i64::from_be_bytes(fixed("interval", micros)?),
                days: i32::from_be_bytes(fixed("interval", days)?),
                months: i32::from_be_bytes(fixed("interval", months)?),
            }
        }
        UUID => Value::Uuid(uuid(fixed("uuid", b)?)),
        JSON => Value::Json(utf8("json", b)?.to_owned()),
        JSONB => match b.split_first() {
            Some((1, text)) => Value::Json(utf8("jsonb", text)?.to_owned()),
            _ => return Err(DecodeError::invalid("jsonb", "not jsonb version 1")),
        },
        BIT | VARBIT => Value::Bits(bits(b)?),
        TEXT | VARCHAR | BPCHAR | NAME => Value::Text(utf8("text", b)?.to_owned()),
        other => {
            return Err(DecodeError::invalid("binary value", format!("type {other} has no binary decoding in outflow")))
        }
    })
}

fn fixed<const N: usize>(what: &'static str, b: &[u8]) -> Result<[u8; N], DecodeError> {
    b.try_into().map_err(|_| DecodeError::invalid(what, format!("{} bytes, expected {N}", b.len())))
}

fn short(what: &'static str) -> DecodeError {
    DecodeError::invalid(what, "value too short")
}

fn utf8<'a>(what: &'static str, b: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b).map_err(|e| DecodeError::invalid(what, format!("not UTF-8: {e}")))
}

/// A big-endian cursor.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or_else(|| short(what))?;
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(fixed(what, self.take(2, what)?)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(fixed(what, self.take(4, what)?)?))
    }
}

/// `numeric_send`'s form, printed as `numeric_out` prints it.
fn numeric(b: &[u8]) -> Result<String, DecodeError> {
    let mut c = Cursor(b);
    let ndigits = c.i16("numeric")?;
    let weight = c.i16("numeric")? as i32;
    let sign = c.i16("numeric")? as u16;
    let dscale = c.i16("numeric")?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        other => return Err(DecodeError::invalid("numeric", format!("unknown sign {other:#x}"))),
    }
    if !(0..=1000).contains(&ndigits) || !(0..=1000).contains(&dscale) {
        return Err(DecodeError::invalid("numeric", "digit count or scale out of range"));
    }
    let mut digits = Vec::with_capacity(ndigits as usize);
    for _ in 0..ndigits {
        let d = c.i16("numeric digit")?;
        if !(0..10_000).contains(&d) {
            return Err(DecodeError::invalid("numeric", format!("digit {d} is not base 10000")));
        }
        digits.push(d as u32);
    }
    if !(-1000..=1000).contains(&weight) {
        return Err(DecodeError::invalid("numeric", "weight out of range"));
    }
    let digit = |i: i32| if i >= 0 && (i as usize) < digits.len() { digits[i as usize] } else { 0 };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(0).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale as usize {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale as usize);
        out.push_str(&frac);
    }
    Ok(out)
}

fn uuid(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn bits(b: &[u8]) -> Result<String, DecodeError> {
    let mut c = Cursor(b);
    let len = c.i32("bit length")?;
    let len = usize::try_from(len).map_err(|_| DecodeError::invalid("bit", "negative length"))?;
    let bytes = c.0;
    if bytes.len() != len.div_ceil(8) {
        return Err(DecodeError::invalid("bit", format!("{} bytes for {len} bits", bytes.len())));
    }
    Ok((0..len).map(|i| if bytes[i / 8] & (0x80 >> (i % 8)) != 0 { '1' } else { '0' }).collect())
}

/// Arrays nest at most this deep (PostgreSQL's MAXDIM).
const MAX_DIMS: i32 = 6;

fn parse_array(elem: &PgType, b: &[u8]) -> Result<Value, DecodeError> {
    let mut c = Cursor(b);
    let ndim = c.i32("array dimensions")?;
    let _has_nulls = c.i32("array flags")?;
    let _elem_oid = c.i32("array element type")?;
    if !(0..=MAX_DIMS).contains(&ndim) {
        return Err(DecodeError::invalid("array", format!("{ndim} dimensions")));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        let len = c.i32("array dimension")?;
        let _lower = c.i32("array lower bound")?;
        dims.push(usize::try_from(len).map_err(|_| DecodeError::invalid("array", "negative dimension"))?);
    }
    if dims.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    // Each element takes at least its length field: bound the total first.
    let total = dims.iter().try_fold(1usize, |n, d| n.checked_mul(*d)).filter(|n| *n <= c.0.len() / 4);
    let Some(total) = total else { return Err(DecodeError::invalid("array", "more elements than bytes")) };
    let mut flat = Vec::with_capacity(total);
    for _ in 0..total {
        let len = c.i32("array element length")?;
        flat.push(match len {
            -1 => Value::Null,
            n if n < 0 => return Err(DecodeError::invalid("array", "negative element length")),
            n => parse_binary(elem, c.take(n as usize, "array element")?)?,
        });
    }
    if !c.0.is_empty() {
        return Err(DecodeError::invalid("array", "bytes after the last element"));
    }
    Ok(nest(&dims, &mut flat.into_iter()))
}

/// Rebuilds the dimensions as nested arrays, like the text form's braces.
fn nest(dims: &[usize], flat: &mut impl Iterator<Item = Value>) -> Value {
    match dims.split_first() {
        Some((n, [])) => Value::Array(flat.take(*n).collect()),
        Some((n, rest)) => Value::Array((0..*n).map(|_| nest(rest, flat)).collect()),
        None => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgtypes::parse_text;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ndigits, weight, sign as i16, dscale] {
            b.extend(v.to_be_bytes());
        }
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_print_as_numeric_out_does() {
        // 12345.6700 = digits [1, 2345, 6700], weight 1, scale 4.
        assert_eq!(numeric(&numeric_bytes(3, 1, 0, 4, &[1, 2345, 6700])).unwrap(), "12345.6700");
        assert_eq!(numeric(&numeric_bytes(1, -1, 0x4000, 3, &[50])).unwrap(), "-0.005");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(numeric(&numeric_bytes(1, 2, 0, 0, &[7])).unwrap(), "700000000");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0xF000, 0, &[])).unwrap(), "-Infinity");
        assert!(numeric(&numeric_bytes(1, 0, 0, 0, &[10_000])).is_err());
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn binary_values_equal_their_text_form() {
        let int = |o: u32| PgType::Builtin(o);
        let cases: Vec<(PgType, Vec<u8>, &str)> = vec![
            (int(oid::INT4), (-7i32).to_be_bytes().to_vec(), "-7"),
            (int(oid::DATE), (-10_957i32 + 1).to_be_bytes().to_vec(), "1970-01-02"),
            (int(oid::DATE), i32::MAX.to_be_bytes().to_vec(), "infinity"),
            (int(oid::TIMESTAMPTZ), 0i64.to_be_bytes().to_vec(), "2000-01-01 00:00:00+00"),
            (int(oid::TIMESTAMP), 1_500_000i64.to_be_bytes().to_vec(), "2000-01-01 00:00:01.5"),
            (int(oid::UUID), (0u8..16).collect(), "00010203-0405-0607-0809-0a0b0c0d0e0f"),
            (int(oid::VARBIT), [0, 0, 0, 5, 0b1011_0000].to_vec(), "10110"),
            (int(oid::JSONB), b"\x01{\"a\": 1}".to_vec(), "{\"a\": 1}"),
        ];
        for (ty, bytes, text) in cases {
            assert_eq!(parse_binary(&ty, &bytes).unwrap(), parse_text(&ty, text).unwrap(), "{text}");
        }
        let mut timetz = 3_600_000_000i64.to_be_bytes().to_vec();
        timetz.extend((-7200i32).to_be_bytes());
        assert_eq!(
            parse_binary(&int(oid::TIMETZ), &timetz).unwrap(),
            parse_text(&int(oid::TIMETZ), "01:00:00+02").unwrap()
        );
    }

    #[test]
    fn arrays_nest_like_their_text_form() {
        let mut b = Vec::new();
        for v in [2i32, 1, oid::INT4 as i32, 2, 1, 2, 1] {
            b.extend(v.to_be_bytes());
        }
        for v in [Some(1i32), None, Some(3), Some(4)] {
            match v {
                Some(v) => {
                    b.extend(4i32.to_be_bytes());
                    b.extend(v.to_be_bytes());
                }
                None => b.extend((-1i32).to_be_bytes()),
            }
        }
        let ty = PgType::Array(Box::new(PgType::Builtin(oid::INT4)));
        assert_eq!(parse_binary(&ty, &b).unwrap(), parse_text(&ty, "{{1,NULL},{3,4}}").unwrap());
        assert!(parse_binary(&ty, &b[..b.len() - 1]).is_err());
        let mut huge = Vec::new();
        for v in [1i32, 0, 23, i32::MAX, 1] {
            huge.extend(v.to_be_bytes());
        }
        assert!(parse_binary(&ty, &huge).is_err(), "no allocation from a length field");
    }
}
