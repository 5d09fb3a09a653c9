//! Source positions: totally ordered within one source, printable as the short
//! strings `status` shows and `offsets set` accepts.
//!
//! PostgreSQL positions follow the slot's own meaning of an LSN:
//! - `lsn:0/16B3748` is a resume point: every transaction whose commit record
//!   starts before this LSN is done (this is what `confirmed_flush_lsn` means).
//!   After a transaction commits, a sink's offset is its commit's *end* LSN;
//!   after an idle keepalive it is the server's reported WAL end.
//! - `lsn:0/16B3748:12` is a position inside the transaction whose commit
//!   record starts at that LSN: its events 1..=12 are done. Events themselves
//!   carry such positions (index from 1), so a resume point `lsn:X` (index 0)
//!   sorts before every event of a transaction committing at `X`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::DecodeError;

/// Not `Copy`: other sources' positions carry names (binlog files, GTID
/// sets); clone where a position must be kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    Pg { lsn: u64, index: u32 },
}

impl Position {
    /// A PostgreSQL resume point: everything committed before `lsn` is done.
    pub fn pg(lsn: u64) -> Self {
        Position::Pg { lsn, index: 0 }
    }

    /// The LSN the source may be acknowledged up to when a sink has made
    /// everything up to this position durable.
    pub fn pg_ack_lsn(&self) -> u64 {
        match *self {
            Position::Pg { lsn, .. } => lsn,
        }
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Position::Pg { lsn: a, index: i }, Position::Pg { lsn: b, index: j }) => {
                (a, i).cmp(&(b, j))
            }
        }
    }
}

/// Formats an LSN the way PostgreSQL prints it: `XXX/XXXXXXXX` in upper hex.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's `XXX/XXXXXXXX` LSN notation.
pub fn parse_lsn(s: &str) -> Result<u64, DecodeError> {
    let bad = || DecodeError::invalid("lsn", format!("{s:?} is not of the form 0/16B3748"));
    let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Position::Pg { lsn, index: 0 } => write!(f, "lsn:{}", format_lsn(lsn)),
            Position::Pg { lsn, index } => write!(f, "lsn:{}:{index}", format_lsn(lsn)),
        }
    }
}

impl FromStr for Position {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix("lsn:") else {
            return Err(DecodeError::invalid(
                "position",
                format!("{s:?}: expected lsn:0/16B3748 or lsn:0/16B3748:INDEX"),
            ));
        };
        let (lsn, index) = match rest.split_once(':') {
            Some((lsn, index)) => {
                let index = index
                    .parse()
                    .map_err(|_| DecodeError::invalid("position", format!("{s:?}: bad event index")))?;
                (lsn, index)
            }
            None => (rest, 0),
        };
        Ok(Position::Pg { lsn: parse_lsn(lsn)?, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_in_postgres_notation() {
        assert_eq!(parse_lsn("0/16B3748").unwrap(), 0x16B3748);
        assert_eq!(parse_lsn("1/0").unwrap(), 1 << 32);
        assert_eq!(format_lsn(0x1_0000_00AB), "1/AB");
        assert!(parse_lsn("16B3748").is_err());
        assert!(parse_lsn("0/xyz").is_err());
    }

    #[test]
    fn positions_parse_print_and_order() {
        let resume: Position = "lsn:0/100".parse().unwrap();
        let event: Position = "lsn:0/100:3".parse().unwrap();
        assert_eq!(resume.to_string(), "lsn:0/100");
        assert_eq!(event.to_string(), "lsn:0/100:3");
        // A resume point sorts before every event of a transaction committing there.
        assert!(resume < event);
        assert!(event < Position::pg(0x101));
        assert!("gtid:1-1-1".parse::<Position>().is_err());
    }
}
