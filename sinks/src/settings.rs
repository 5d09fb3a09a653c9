//! Settings values shared by sink configs and the binary's config: sizes
//! ("256MB", "1GiB") and durations ("30s", "5m"), each also accepted as a
//! plain number (bytes, seconds), and pass-through properties ([`Setting`]).

use std::time::Duration;

use serde::Deserialize;

/// A pass-through property value (`[sink.producer]`, `[sink.debezium]`):
/// the systems they go to take every property as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    Text(String),
    Int(i64),
    Bool(bool),
    Float(f64),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Text(s) => f.write_str(s),
            Setting::Int(i) => write!(f, "{i}"),
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A size: an integer number of bytes or a string like "256MB", "1GiB".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d, "size", "\"256MB\", \"1GiB\" or a number of bytes", ByteSize, |s| parse_size(s).map(ByteSize))
    }
}

/// A setting written as a plain non-negative number or as text: `number`
/// maps the one, `text` parses the other; errors name `what` it is and
/// `examples` of how to write it.
fn number_or_text<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    what: &str,
    examples: &str,
    number: fn(u64) -> T,
    text: fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        Negative(i64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(number(n)),
        Raw::Negative(n) => Err(serde::de::Error::custom(format!("{n} is negative; a {what} is at least 0"))),
        Raw::S(s) => {
            text(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a {what}; write e.g. {examples}")))
        }
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A duration: "500ms", "30s", "5m", "1h" or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seconds = |n| Interval(Duration::from_secs(n));
        number_or_text(d, "duration", "\"30s\", \"5m\" or \"1h\"", seconds, |s| parse_interval(s).map(Interval))
    }
}

fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        // Checked: "1000000000000000000m" overflowed (a panic in debug
        // builds, a wrapped duration in release ones).
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_intervals_parse() {
        assert_eq!(parse_size("256MB"), Some(256_000_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
    }

    #[test]
    fn numbers_text_and_errors_deserialize() {
        let size = |j: &str| serde_json::from_str::<ByteSize>(j).map_err(|e| e.to_string());
        let interval = |j: &str| serde_json::from_str::<Interval>(j).map_err(|e| e.to_string());
        assert_eq!(size("1024"), Ok(ByteSize(1024)));
        assert_eq!(size("\"1kb\""), Ok(ByteSize(1000)));
        assert!(size("-1").unwrap_err().contains("-1 is negative; a size is at least 0"));
        assert!(size("\"lots\"").unwrap_err().contains("\"lots\" is not a size; write e.g. \"256MB\""));
        assert_eq!(interval("30"), Ok(Interval(Duration::from_secs(30))));
        assert!(interval("-5").unwrap_err().contains("-5 is negative; a duration is at least 0"));
        assert!(interval("\"soon\"").unwrap_err().contains("\"soon\" is not a duration; write e.g. \"30s\""));
    }
}
