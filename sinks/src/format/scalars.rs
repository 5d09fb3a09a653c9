//! Byte-level writers behind `values`: Java's float layout, dates, times
//! of day, date-times and ISO-8601 durations, appended without allocating.

use std::io::Write;

use outflow_model::value::civil_from_days;

pub(super) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `interval.handling.mode=string`: Debezium's `P<y>Y<m>M<d>DT<h>H<m>M<s>S`
/// with every field, each carrying its own sign, seconds with their
/// fraction (`P-1Y-2M3DT-4H-5M-6.000007S`, `P0Y0M0DT0H0M-1S`).
pub(super) fn write_debezium_iso_interval(out: &mut Vec<u8>, months: i32, days: i32, micros: i64) {
    let (h, m) = (micros / 3_600_000_000, micros / 60_000_000 % 60);
    let sec_micros = micros % 60_000_000;
    let _ = write!(out, "\"P{}Y{}M{}DT{h}H{m}M", months / 12, months % 12, days);
    if sec_micros < 0 {
        out.push(b'-');
    }
    let abs = sec_micros.unsigned_abs();
    let _ = write!(out, "{}", abs / 1_000_000);
    let mut frac = abs % 1_000_000;
    if frac != 0 {
        let mut width = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        let _ = write!(out, ".{frac:0width$}");
    }
    out.extend_from_slice(b"S\"");
}

/// A bit string's value as little-endian bytes without high zero bytes, as
/// `java.util.BitSet::toByteArray` gives it (`00000001 00000010` → `[2, 1]`).
pub(super) fn bits_le_bytes(bits: &str) -> Vec<u8> {
    let n = bits.len();
    let mut bytes = vec![0u8; n.div_ceil(8)];
    for (i, c) in bits.bytes().enumerate() {
        if c == b'1' {
            let pos = n - 1 - i; // bit index from the least significant end
            bytes[pos / 8] |= 1 << (pos % 8);
        }
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// Java's `Double.toString` / `Float.toString` layout of the shortest digits
/// that round-trip: plain between 1e-3 and 1e7 (`2.25`, `-2.0`, `0.001`),
/// computerized scientific notation outside (`1.0E300`, `1.0E-4`).
/// NaN and the infinities become JSON strings, as Jackson writes them.
pub(super) fn write_java_float(out: &mut Vec<u8>, x: f64, single: bool) {
    if x.is_nan() {
        return out.extend_from_slice(b"\"NaN\"");
    }
    if x.is_infinite() {
        return out.extend_from_slice(if x > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    }
    if x == 0.0 {
        return out.extend_from_slice(if x.is_sign_negative() { b"-0.0" } else { b"0.0" });
    }
    // Shortest round-trip digits: `{:e}` gives `d.ddde±x` for the type's own precision.
    let mut buf = [0u8; 40];
    let len = {
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        let _ = if single { write!(cur, "{:e}", x.abs() as f32) } else { write!(cur, "{:e}", x.abs()) };
        cur.position() as usize
    };
    let sci = &buf[..len];
    let epos = sci.iter().position(|&c| c == b'e').unwrap_or(len);
    let exp: i32 = std::str::from_utf8(&sci[epos + 1..]).ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &c in &sci[..epos] {
        if c.is_ascii_digit() && nd < digits.len() {
            digits[nd] = c;
            nd += 1;
        }
    }
    let digits = &digits[..nd.max(1)];
    if x < 0.0 {
        out.push(b'-');
    }
    if (-3..7).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        }
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        let _ = write!(out, "E{exp}");
    }
}

pub(super) fn write_float_flat(out: &mut Vec<u8>, x: f64, repr: std::fmt::Arguments<'_>) {
    if x.is_finite() {
        let _ = out.write_fmt(repr);
    } else {
        write_java_float(out, x, false);
    }
}

/// ISO-8601 calendar date, astronomical years (`-0043-03-15` is 44 BC),
/// `+` before years past 9999, like `java.time`.
pub(super) fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if y > 9999 {
        let _ = write!(out, "+{y}");
    } else if y < 0 {
        let _ = write!(out, "-{:04}", -y);
    } else {
        push_2(out, y / 100);
        push_2(out, y % 100);
    }
    out.push(b'-');
    push_2(out, m as i64);
    out.push(b'-');
    push_2(out, d as i64);
}

/// `HH:MM:SS` plus a fraction: exactly `digits` digits when given (none for
/// 0), otherwise as many as needed (none when zero).
pub(super) fn write_time_of_day(out: &mut Vec<u8>, micros: i64, digits: Option<u32>) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let hours = secs / 3600;
    if hours < 100 {
        push_2(out, hours);
    } else {
        let _ = write!(out, "{hours}");
    }
    out.push(b':');
    push_2(out, secs / 60 % 60);
    out.push(b':');
    push_2(out, secs % 60);
    match digits {
        Some(0) => {}
        Some(n) => {
            let n = n.min(6);
            out.push(b'.');
            push_digits(out, frac / 10_i64.pow(6 - n), n);
        }
        None if frac == 0 => {}
        None => {
            let mut f = frac;
            let mut w = 6;
            while f % 10 == 0 {
                f /= 10;
                w -= 1;
            }
            out.push(b'.');
            push_digits(out, f, w);
        }
    }
}

/// `n` (0 <= n < 10^width) as exactly `width` digits, zero-padded.
pub(super) fn push_digits(out: &mut Vec<u8>, n: i64, width: u32) {
    for i in (0..width).rev() {
        out.push(b'0' + (n / 10_i64.pow(i) % 10) as u8);
    }
}

pub(super) fn write_datetime(out: &mut Vec<u8>, micros: i64, digits: Option<u32>) {
    write_date(out, micros.div_euclid(MICROS_PER_DAY));
    out.push(b'T');
    write_time_of_day(out, micros.rem_euclid(MICROS_PER_DAY), digits);
}

/// ISO-8601 duration with PostgreSQL's fields kept apart: `P1Y2M3DT4H5M6.789S`;
/// negative fields carry their own sign; zero is `PT0S`.
pub(super) fn write_iso_duration(out: &mut Vec<u8>, months: i32, days: i32, micros: i64) {
    out.push(b'P');
    let (y, mo) = (months / 12, months % 12);
    for (v, unit) in [(y as i64, 'Y'), (mo as i64, 'M'), (days as i64, 'D')] {
        if v != 0 {
            let _ = write!(out, "{v}{unit}");
        }
    }
    if micros != 0 || (months == 0 && days == 0) {
        out.push(b'T');
        let neg = micros < 0;
        let abs = micros.unsigned_abs();
        let (h, m, s, f) = (abs / 3_600_000_000, abs / 60_000_000 % 60, abs / 1_000_000 % 60, abs % 1_000_000);
        let sign = if neg { "-" } else { "" };
        if h != 0 {
            let _ = write!(out, "{sign}{h}H");
        }
        if m != 0 {
            let _ = write!(out, "{sign}{m}M");
        }
        if s != 0 || f != 0 || (h == 0 && m == 0) {
            let _ = write!(out, "{sign}{s}");
            if f != 0 {
                let mut f = f;
                let mut w = 6;
                while f % 10 == 0 {
                    f /= 10;
                    w -= 1;
                }
                let _ = write!(out, ".{f:0w$}");
            }
            out.push(b'S');
        }
    }
}

pub(super) fn push_2(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}
