//! Column values, independent of the source and of any output format.
//!
//! A `Value` keeps exactly what the database holds: decimals as their exact
//! text, times as integers at microsecond precision, and `Unchanged` for a
//! PostgreSQL TOASTed value the server did not send (never to be shown as
//! null). Sinks decide how each variant is rendered; where the rendering
//! depends on the declared type (`time(3)` vs `time`, `bit(1)`, which kind of
//! `infinity`) they read it from the column's `ColumnSchema`.
//!
//! Also here: proleptic Gregorian calendar arithmetic ([`days_from_civil`],
//! [`civil_from_days`]) shared by the PostgreSQL parser and the renderers. It
//! is hand-written (Howard Hinnant's algorithms) because PostgreSQL dates run
//! from 4713 BC to 5874897 AD and common date libraries cannot hold that range
//! or switch to the Julian calendar before 1582.

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// boolean.
    Bool(bool),
    /// Any signed integer type (int2/int4/int8, oid, TINYINT..BIGINT).
    Int(i64),
    /// Unsigned integers (MySQL UNSIGNED), exact up to u64::MAX.
    UInt(u64),
    /// 4-byte float, kept as f32 so it renders with its own shortest digits.
    Float32(f32),
    /// 8-byte float; NaN and the infinities are kept.
    Float64(f64),
    /// Exact decimal as text: `-?digits(.digits)?`, or `NaN`, `Infinity`,
    /// `-Infinity` (PostgreSQL numeric). Never via f64. Also PostgreSQL money.
    Decimal(String),
    /// Character data (text, varchar, char(n) with its padding, name, "char"),
    /// and types kept in their source text form (inet, cidr, macaddr, xml,
    /// ranges, geometric, composite and extension types).
    Text(String),
    /// Binary data (bytea, BLOB).
    Bytes(Vec<u8>),
    /// Days since 1970-01-01 (negative before; proleptic Gregorian, BC dates included).
    Date(i32),
    /// Microseconds since midnight (0..=86_400_000_000; PostgreSQL allows 24:00:00).
    Time(i64),
    /// Time of day with a UTC offset: microseconds since midnight local, offset in seconds east of UTC.
    TimeTz { micros: i64, offset_secs: i32 },
    /// Microseconds since the epoch, no zone (a wall-clock timestamp). Saturates
    /// at i64 bounds (PostgreSQL's last 29 000 years past 294247 AD).
    Timestamp(i64),
    /// Microseconds since the epoch, UTC.
    TimestampTz(i64),
    /// `infinity` / `-infinity` of PostgreSQL date, timestamp and timestamptz;
    /// which one it is comes from the column type.
    Infinity { negative: bool },
    /// A PostgreSQL interval, its three fields kept apart as the server does
    /// (a month is not a fixed number of days).
    Interval { months: i32, days: i32, micros: i64 },
    /// JSON document as text, exactly as the server sent it (json keeps the
    /// input spelling, jsonb is normalised by the server).
    Json(String),
    /// UUID in canonical lowercase 8-4-4-4-12 form.
    Uuid(String),
    /// Enum label.
    Enum(String),
    /// Bit string as '0'/'1' characters, most significant first.
    Bits(String),
    /// Array; n-dimensional arrays nest (lower bounds are not kept).
    Array(Vec<Value>),
    /// A value the source did not send because it did not change (PostgreSQL
    /// TOAST). Sinks render a placeholder, never null.
    Unchanged,
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date with astronomical year
/// numbering (1 BC is year 0, 44 BC is year -43). `month` 1..=12, `day` 1..=31.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)`, astronomical years.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_across_eras() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 2), 19_724);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        assert_eq!(days_from_civil(-43, 3, 15), -735_160);
        assert_eq!(days_from_civil(5_874_897, 12, 31), 2_145_042_905);
        for d in (-2_500_000..2_200_000_000i64).step_by(99_991) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
