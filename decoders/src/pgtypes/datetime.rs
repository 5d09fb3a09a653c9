//! Dates, times, timestamps and intervals in PostgreSQL's ISO/postgres output
//! styles: `2024-01-02`, `0044-03-15 BC`, `5874897-12-31`, `infinity`,
//! `24:00:00`, `10:11:12.5+05:30`, `2024-01-02 03:04:05.123456+00`,
//! `0001-01-01 00:00:00+00 BC` (the era comes after the zone offset),
//! `1 year 2 mons 3 days 04:05:06.789`, `-1 years -2 mons +3 days -04:05:06`.
//!
//! Calendar arithmetic is the proleptic Gregorian calendar PostgreSQL uses,
//! with astronomical year numbering (1 BC = year 0), done by hand in
//! [`outflow_model::value::days_from_civil`]: no date library is needed, and the
//! common ones cannot represent 4713 BC or switch to the Julian calendar.

use super::clip;
use crate::DecodeError;
use outflow_model::value::days_from_civil;
use outflow_model::Value;

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn bad(what: &'static str, text: &str) -> DecodeError {
    DecodeError::invalid(what, format!("unexpected text {:?}", clip(text)))
}

/// Strips the ` BC` era suffix.
fn split_era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    }
}

/// 1 to 18 ASCII digits (no sign) as a number.
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    s.bytes().try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// `Y-MM-DD` (any number of year digits) → days since 1970-01-01.
fn date_days(text: &str, bc: bool) -> Option<i64> {
    let mut it = text.splitn(3, '-');
    let (y, m, d) = (digits(it.next()?)?, digits(it.next()?)?, digits(it.next()?)?);
    if y == 0 || !(1..=12).contains(&m) || d < 1 || d > days_in_month(if bc { 1 - y } else { y }, m) {
        return None;
    }
    let year = if bc { 1 - y } else { y };
    Some(days_from_civil(year, m as u32, d as u32))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(super) fn parse_date(text: &str) -> Result<Value, DecodeError> {
    match text {
        "infinity" => return Ok(Value::Infinity { negative: false }),
        "-infinity" => return Ok(Value::Infinity { negative: true }),
        _ => {}
    }
    let (t, bc) = split_era(text);
    let days = date_days(t, bc).ok_or_else(|| bad("date", text))?;
    i32::try_from(days).map(Value::Date).map_err(|_| bad("date", text))
}

/// `HH:MM:SS[.ffffff]` → microseconds since midnight; `24:00:00` allowed.
pub(super) fn parse_time(text: &str) -> Result<i64, DecodeError> {
    time_micros(text).ok_or_else(|| bad("time", text))
}

fn time_micros(text: &str) -> Option<i64> {
    let (hms, frac) = match text.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (text, None),
    };
    let mut it = hms.splitn(3, ':');
    let (h, m, s) = (digits(it.next()?)?, digits(it.next()?)?, digits(it.next()?)?);
    let f = match frac {
        Some(f) => fraction_micros(f)?,
        None => 0,
    };
    if h > 24 || m > 59 || s > 59 || (h == 24 && (m, s, f) != (0, 0, 0)) {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + f)
}

/// `5` → 500000, `123456` → 123456; at most 6 digits (PostgreSQL's precision).
fn fraction_micros(f: &str) -> Option<i64> {
    if f.is_empty() || f.len() > 6 {
        return None;
    }
    let v = digits(f)?;
    Some(v * 10_i64.pow(6 - f.len() as u32))
}

/// `+05`, `-05:30`, `+05:30:15` → seconds east of UTC.
fn offset_secs(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut secs = 0;
    let mut n = 0;
    for (i, part) in rest.split(':').enumerate() {
        if i > 2 || part.len() != 2 {
            return None;
        }
        let v = digits(part)?;
        secs += v * [3600, 60, 1][i];
        n += 1;
    }
    if n == 0 || secs > 16 * 3600 {
        return None;
    }
    Some(sign * secs as i32)
}

/// Splits `10:11:12.5+05:30` into the time and the offset.
fn split_offset(text: &str) -> Option<(&str, i32)> {
    let at = text.find(['+', '-'])?;
    Some((&text[..at], offset_secs(&text[at..])?))
}

pub(super) fn parse_timetz(text: &str) -> Result<Value, DecodeError> {
    let (t, offset_secs) = split_offset(text).ok_or_else(|| bad("timetz", text))?;
    let micros = time_micros(t).ok_or_else(|| bad("timetz", text))?;
    Ok(Value::TimeTz { micros, offset_secs })
}

fn infinity(text: &str) -> Option<Value> {
    match text {
        "infinity" => Some(Value::Infinity { negative: false }),
        "-infinity" => Some(Value::Infinity { negative: true }),
        _ => None,
    }
}

/// Local date-time → microseconds since the epoch. PostgreSQL's range ends in
/// 294276 AD, a little past i64 microseconds since 1970 (294247 AD): such
/// values saturate at `i64::MAX`.
fn datetime_micros(date_time: &str, bc: bool) -> Option<i64> {
    let (d, t) = date_time.split_once(' ')?;
    let days = date_days(d, bc)?;
    let micros = time_micros(t)?;
    let total = days as i128 * MICROS_PER_DAY as i128 + micros as i128;
    Some(total.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// The common form `YYYY-MM-DD HH:MM:SS[.f]` (a four-digit AD year, up to
/// six fraction digits) read by position: microseconds since the epoch and
/// the rest of the text. None for anything else, which the general parser
/// reads (it gives the same value for this form; it is about five times slower,
/// and timestamps are the commonest non-trivial column).
fn canonical_datetime(text: &str) -> Option<(i64, &str)> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y == 0 || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let (mut end, mut frac) = (19, 0);
    if b.get(19) == Some(&b'.') {
        let n = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        frac = num(20..20 + n)? * 10_i64.pow(6 - n as u32);
        end = 20 + n;
    }
    let micros = days_from_civil(y, m as u32, d as u32) * MICROS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1_000_000 + frac;
    Some((micros, &text[end..]))
}

pub(super) fn parse_timestamp(text: &str) -> Result<Value, DecodeError> {
    if let Some((micros, "")) = canonical_datetime(text) {
        return Ok(Value::Timestamp(micros));
    }
    general_timestamp(text)
}

fn general_timestamp(text: &str) -> Result<Value, DecodeError> {
    if let Some(v) = infinity(text) {
        return Ok(v);
    }
    let (t, bc) = split_era(text);
    datetime_micros(t, bc).map(Value::Timestamp).ok_or_else(|| bad("timestamp", text))
}

pub(super) fn parse_timestamptz(text: &str) -> Result<Value, DecodeError> {
    if let Some((local, offset)) = canonical_datetime(text).and_then(|(l, rest)| Some((l, offset_secs(rest)?))) {
        return Ok(Value::TimestampTz(local - offset as i64 * 1_000_000));
    }
    general_timestamptz(text)
}

fn general_timestamptz(text: &str) -> Result<Value, DecodeError> {
    if let Some(v) = infinity(text) {
        return Ok(v);
    }
    let (t, bc) = split_era(text);
    let parsed = (|| {
        let sp = t.find(' ')?;
        let (local, offset) = split_offset(&t[sp + 1..])?;
        let local = datetime_micros(&t[..sp + 1 + local.len()], bc)?;
        Some(local.saturating_sub(offset as i64 * 1_000_000))
    })();
    parsed.map(Value::TimestampTz).ok_or_else(|| bad("timestamptz", text))
}

/// IntervalStyle `postgres`: `[N year[s]] [N mon[s]] [N day[s]] [[+-]H:MM:SS[.f]]`,
/// each part signed on its own; `00:00:00` for zero.
pub(super) fn parse_interval(text: &str) -> Result<Value, DecodeError> {
    interval(text).ok_or_else(|| bad("interval", text))
}

fn signed(s: &str) -> Option<i64> {
    match s.as_bytes().first()? {
        b'-' => digits(&s[1..]).map(|v| -v),
        b'+' => digits(&s[1..]),
        _ => digits(s),
    }
}

fn interval(text: &str) -> Option<Value> {
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut tokens = text.split(' ');
    let mut seen_any = false;
    while let Some(tok) = tokens.next() {
        seen_any = true;
        if tok.contains(':') {
            let (neg, t) = match tok.as_bytes().first()? {
                b'-' => (true, &tok[1..]),
                b'+' => (false, &tok[1..]),
                _ => (false, tok),
            };
            let (hms, frac) = match t.split_once('.') {
                Some((a, f)) => (a, fraction_micros(f)?),
                None => (t, 0),
            };
            let mut it = hms.splitn(3, ':');
            let (h, m, s) = (digits(it.next()?)?, digits(it.next()?)?, digits(it.next()?)?);
            if m > 59 || s > 59 {
                return None;
            }
            let v = h.checked_mul(3_600_000_000)?.checked_add((m * 60 + s) * 1_000_000 + frac)?;
            micros = micros.checked_add(if neg { -v } else { v })?;
            continue;
        }
        let n = signed(tok)?;
        match tokens.next()? {
            "year" | "years" => months = months.checked_add(n.checked_mul(12)?)?,
            "mon" | "mons" => months = months.checked_add(n)?,
            "day" | "days" => days = days.checked_add(n)?,
            _ => return None,
        }
    }
    if !seen_any {
        return None;
    }
    Some(Value::Interval { months: i32::try_from(months).ok()?, days: i32::try_from(days).ok()?, micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positional reading gives what the general parser gives, and
    /// leaves every other form to it.
    #[test]
    fn canonical_timestamps_read_like_the_general_parser() {
        let texts = [
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.5",
            "2024-02-29 23:59:59.999999",
            "1969-12-31 23:59:59.000001",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.123",
        ];
        for text in texts {
            assert!(canonical_datetime(text).is_some(), "{text}");
            assert_eq!(parse_timestamp(text).unwrap(), general_timestamp(text).unwrap(), "{text}");
            for zone in ["+00", "-05", "+05:30", "-03:30:15", "+14"] {
                let tz = format!("{text}{zone}");
                assert_eq!(parse_timestamptz(&tz).unwrap(), general_timestamptz(&tz).unwrap(), "{tz}");
            }
        }
        for other in [
            "0044-03-15 12:00:00 BC",
            "0001-01-01 00:00:00+00 BC",
            "12024-01-02 03:04:05",
            "2023-02-29 00:00:00",
            "2024-01-02 24:00:00",
            "2024-01-02 03:04:05.1234567",
            "2024-01-02 03:04:05.",
            "infinity",
        ] {
            let fast = canonical_datetime(other).filter(|(_, rest)| rest.is_empty() || offset_secs(rest).is_some());
            assert!(fast.is_none(), "{other} is left to the general parser");
            assert_eq!(parse_timestamp(other).ok(), general_timestamp(other).ok(), "{other}");
            assert_eq!(parse_timestamptz(other).ok(), general_timestamptz(other).ok(), "{other}");
        }
    }
}
