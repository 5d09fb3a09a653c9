//! Column values, independent of the source and of any output format.
//!
//! A `Value` keeps exactly what the database holds: decimals as their exact
//! text, times as integers at microsecond precision, and `Unchanged` for a
//! PostgreSQL TOASTed value the server did not send (never to be shown as
//! null). Sinks decide how each variant is rendered.

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Any signed integer type (int2/int4/int8, TINYINT..BIGINT).
    Int(i64),
    /// Unsigned integers (MySQL UNSIGNED), exact up to u64::MAX.
    UInt(u64),
    /// 4-byte float, kept as f32 so it renders with its own shortest digits.
    Float32(f32),
    /// 8-byte float; NaN and the infinities are kept.
    Float64(f64),
    /// Exact decimal as text (`-12.3400`, `NaN`, `Infinity`); never via f64.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01 (negative before; proleptic Gregorian, BC dates included).
    Date(i32),
    /// Microseconds since midnight (0..=86_400_000_000; PostgreSQL allows 24:00:00).
    Time(i64),
    /// Time of day with a UTC offset: microseconds since midnight local, offset in seconds east of UTC.
    TimeTz { micros: i64, offset_secs: i32 },
    /// Microseconds since the epoch, no zone (a wall-clock timestamp).
    Timestamp(i64),
    /// Microseconds since the epoch, UTC.
    TimestampTz(i64),
    /// `infinity` / `-infinity` of PostgreSQL date, timestamp and timestamptz.
    Infinity { negative: bool },
    Interval { months: i32, days: i32, micros: i64 },
    /// JSON document as text, exactly as the server sent it.
    Json(String),
    Uuid(String),
    /// Enum label.
    Enum(String),
    /// Bit string as '0'/'1' characters, most significant first.
    Bits(String),
    /// Array; n-dimensional arrays nest.
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
