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
//!
//! MySQL/MariaDB positions ([`MysqlPos`]) follow the same resume-point idea,
//! with one of two anchors:
//! - `gtid:0-1-5,1-2-9` — a GTID state (MariaDB `domain-server-seq` per
//!   domain, what `@slave_connect_state` takes): every transaction in it is
//!   done. Used whenever the server has GTIDs (every MariaDB 10+).
//! - `file:mysql-bin.000003:1234` — a binlog file and byte offset: every
//!   event before it is done. Used for MySQL (whose UUID GTID sets outflow
//!   does not resume from yet).
//!
//! Like PostgreSQL's, a trailing `:N` is the event index inside the *next*
//! transaction after the anchor: `gtid:0-1-5:3` means "state 0-1-5 done, plus
//! the first 3 row events of the transaction that follows it". Every change
//! carries such a position, so a restart after a crash in the middle of a
//! multi-row event resumes exactly after the last durable row: it starts the
//! server at the anchor and skips the events it already has. A commit carries
//! the new anchor (state including its GTID, or the byte offset after its
//! XID) with index 0, which sorts after every event of the transaction.
//!
//! Snapshot chunks (see the binary's snapshot module) are placed between
//! transactions, after the resume point `A`: their items carry `A:0:K`
//! (K from 1), so they sort after `A` and before the next transaction's
//! first event `A:1`. The source gives the next transaction's Begin a K past
//! them, so items stay in stream order. Positions without the third number
//! (every offset written before snapshots existed) read as K = 0.
//!
//! Order: file anchors by (file sequence number, file name, offset, index);
//! GTID anchors by their per-domain sequence numbers — one stream's states
//! only ever grow, so one dominates the other; states that do not (different
//! servers' streams) fall back to comparing the sorted `(domain, seq)` lists.
//! A file anchor sorts before any GTID anchor.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A position's or GTID's text was not of the documented form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {detail}")]
pub struct PositionError {
    pub what: &'static str,
    pub detail: String,
}

impl PositionError {
    fn new(what: &'static str, detail: impl Into<String>) -> Self {
        PositionError { what, detail: detail.into() }
    }
}

/// Not `Copy`: other sources' positions carry names (binlog files, GTID
/// sets); clone where a position must be kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    Pg { lsn: u64, index: u32 },
    Mysql(MysqlPos),
}

/// A MySQL/MariaDB resume point plus the event index after it, and the
/// item index of a snapshot chunk placed there (`sub`, 0 for stream events).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MysqlPos {
    pub anchor: MysqlAnchor,
    pub index: u32,
    pub sub: u32,
}

impl MysqlPos {
    pub fn new(anchor: MysqlAnchor, index: u32) -> Self {
        MysqlPos { anchor, index, sub: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MysqlAnchor {
    /// Binlog file name and byte offset of the next event to read.
    File { name: Arc<str>, pos: u64 },
    /// MariaDB GTID state: one GTID per replication domain.
    Gtid(GtidSet),
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for Gtid {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError::new("gtid", format!("{s:?} is not of the form domain-server-seq"));
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let domain = next()?.parse().map_err(|_| bad())?;
        let server = next()?.parse().map_err(|_| bad())?;
        let seq = next()?.parse().map_err(|_| bad())?;
        Ok(Gtid { domain, server, seq })
    }
}

/// A MariaDB GTID state: at most one GTID per domain, sorted by domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidSet(Arc<[Gtid]>);

impl GtidSet {
    pub fn new(mut gtids: Vec<Gtid>) -> Self {
        gtids.sort_by_key(|g| (g.domain, std::cmp::Reverse(g.seq)));
        gtids.dedup_by_key(|g| g.domain);
        GtidSet(gtids.into())
    }

    pub fn gtids(&self) -> &[Gtid] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The state after transaction `g`: its domain's entry replaced.
    pub fn with(&self, g: Gtid) -> GtidSet {
        let mut v: Vec<Gtid> = self.0.iter().filter(|x| x.domain != g.domain).copied().collect();
        v.push(g);
        GtidSet::new(v)
    }

    fn seq(&self, domain: u32) -> u64 {
        self.0.iter().find(|g| g.domain == domain).map_or(0, |g| g.seq)
    }

    fn dominance(&self, other: &GtidSet) -> Option<Ordering> {
        let (mut less, mut greater) = (false, false);
        for d in self.0.iter().chain(other.0.iter()).map(|g| g.domain) {
            match self.seq(d).cmp(&other.seq(d)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (true, true) => None,
        }
    }
}

impl Ord for GtidSet {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.dominance(other) {
            Some(Ordering::Equal) => self.0.cmp(&other.0),
            Some(o) => o,
            None => {
                let key = |s: &GtidSet| s.0.iter().map(|g| (g.domain, g.seq)).collect::<Vec<_>>();
                key(self).cmp(&key(other))
            }
        }
    }
}

impl PartialOrd for GtidSet {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl FromStr for GtidSet {
    type Err = PositionError;

    /// Parses `0-1-5,1-2-9` (MariaDB's `@@gtid_binlog_pos` spelling); empty is the empty state.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let gtids =
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect::<Result<Vec<Gtid>, _>>()?;
        Ok(GtidSet::new(gtids))
    }
}

/// The sequence number of a binlog file name (`mysql-bin.000012` → 12), for ordering.
fn file_seq(name: &str) -> u64 {
    name.rsplit_once('.').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

impl Ord for MysqlAnchor {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (MysqlAnchor::File { name: a, pos: p }, MysqlAnchor::File { name: b, pos: q }) => {
                (file_seq(a), a, p).cmp(&(file_seq(b), b, q))
            }
            (MysqlAnchor::Gtid(a), MysqlAnchor::Gtid(b)) => a.cmp(b),
            (MysqlAnchor::File { .. }, MysqlAnchor::Gtid(_)) => Ordering::Less,
            (MysqlAnchor::Gtid(_), MysqlAnchor::File { .. }) => Ordering::Greater,
        }
    }
}

impl PartialOrd for MysqlAnchor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for MysqlAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MysqlAnchor::File { name, pos } => write!(f, "file:{name}:{pos}"),
            MysqlAnchor::Gtid(set) => write!(f, "gtid:{set}"),
        }
    }
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
            Position::Mysql(_) => 0,
        }
    }

    /// A MySQL/MariaDB resume point (index 0).
    pub fn mysql(anchor: MysqlAnchor) -> Self {
        Position::Mysql(MysqlPos::new(anchor, 0))
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
            (Position::Pg { lsn: a, index: i }, Position::Pg { lsn: b, index: j }) => (a, i).cmp(&(b, j)),
            (Position::Mysql(a), Position::Mysql(b)) => (&a.anchor, a.index, a.sub).cmp(&(&b.anchor, b.index, b.sub)),
            (Position::Pg { .. }, Position::Mysql(_)) => Ordering::Less,
            (Position::Mysql(_), Position::Pg { .. }) => Ordering::Greater,
        }
    }
}

/// Formats an LSN the way PostgreSQL prints it: `XXX/XXXXXXXX` in upper hex.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's `XXX/XXXXXXXX` LSN notation.
pub fn parse_lsn(s: &str) -> Result<u64, PositionError> {
    let bad = || PositionError::new("lsn", format!("{s:?} is not of the form 0/16B3748"));
    let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Pg { lsn, index: 0 } => write!(f, "lsn:{}", format_lsn(*lsn)),
            Position::Pg { lsn, index } => write!(f, "lsn:{}:{index}", format_lsn(*lsn)),
            Position::Mysql(MysqlPos { anchor, index: 0, sub: 0 }) => write!(f, "{anchor}"),
            Position::Mysql(MysqlPos { anchor, index, sub: 0 }) => write!(f, "{anchor}:{index}"),
            Position::Mysql(MysqlPos { anchor, index, sub }) => write!(f, "{anchor}:{index}:{sub}"),
        }
    }
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("gtid:") || s.starts_with("file:") {
            return parse_mysql(s);
        }
        let Some(rest) = s.strip_prefix("lsn:") else {
            return Err(PositionError::new(
                "position",
                format!("{s:?}: expected lsn:0/16B3748[:INDEX], gtid:D-S-N[,...][:INDEX] or file:NAME:POS[:INDEX]"),
            ));
        };
        let (lsn, index) = match rest.split_once(':') {
            Some((lsn, index)) => {
                let index =
                    index.parse().map_err(|_| PositionError::new("position", format!("{s:?}: bad event index")))?;
                (lsn, index)
            }
            None => (rest, 0),
        };
        Ok(Position::Pg { lsn: parse_lsn(lsn)?, index })
    }
}

/// `gtid:SET[:INDEX[:SUB]]` or `file:NAME:POS[:INDEX[:SUB]]` (binlog names
/// and GTID sets have no ':').
fn parse_mysql(s: &str) -> Result<Position, PositionError> {
    let bad = |what: &str| PositionError::new("position", format!("{s:?}: {what}"));
    let num = |t: &str, what: &str| t.parse::<u64>().map_err(|_| bad(what));
    let small = |t: &str, what: &str| u32::try_from(num(t, what)?).map_err(|_| bad("event index too large"));
    let indexes = |rest: &[&str]| -> Result<(u32, u32), PositionError> {
        match rest {
            [] => Ok((0, 0)),
            [index] => Ok((small(index, "bad event index")?, 0)),
            [index, sub] => Ok((small(index, "bad event index")?, small(sub, "bad snapshot item index")?)),
            _ => Err(bad("too many ':' parts")),
        }
    };
    if let Some(rest) = s.strip_prefix("gtid:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let set: GtidSet = parts[0].parse()?;
        let (index, sub) = indexes(&parts[1..])?;
        return Ok(Position::Mysql(MysqlPos { anchor: MysqlAnchor::Gtid(set), index, sub }));
    }
    let rest = s.strip_prefix("file:").ok_or_else(|| bad("expected gtid: or file:"))?;
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() < 2 {
        return Err(bad("expected file:NAME:POS[:INDEX[:SUB]]"));
    }
    let (name, pos) = (parts[0], num(parts[1], "bad byte offset")?);
    if name.is_empty() {
        return Err(bad("empty binlog file name"));
    }
    let (index, sub) = indexes(&parts[2..])?;
    Ok(Position::Mysql(MysqlPos { anchor: MysqlAnchor::File { name: name.into(), pos }, index, sub }))
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
        assert!("gtid:1-1-x".parse::<Position>().is_err());
        assert!(resume < "gtid:1-1-1".parse::<Position>().unwrap());
    }

    #[test]
    fn mysql_positions_parse_print_and_order() {
        for text in
            ["gtid:0-1-5", "gtid:0-1-5,1-2-9:3", "file:mysql-bin.000003:1234", "file:mysql-bin.000003:1234:7", "gtid:"]
        {
            let p: Position = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        let p = |s: &str| s.parse::<Position>().unwrap();
        // Resume point < events of the next transaction < the commit after it.
        assert!(p("gtid:0-1-5") < p("gtid:0-1-5:1"));
        assert!(p("gtid:0-1-5:1") < p("gtid:0-1-5:2"));
        assert!(p("gtid:0-1-5:2") < p("gtid:0-1-6"));
        // Another domain advancing also moves the state forward.
        assert!(p("gtid:0-1-6:9") < p("gtid:0-1-6,1-1-1"));
        assert!(p("gtid:0-1-9") < p("gtid:0-1-10"));
        assert!(p("file:mysql-bin.000003:1234") < p("file:mysql-bin.000003:1234:1"));
        assert!(p("file:mysql-bin.000003:1234:1") < p("file:mysql-bin.000003:1300"));
        // File numbers, not names, order files (mysql-bin.999999 < mysql-bin.1000000).
        assert!(p("file:mysql-bin.999999:9999") < p("file:mysql-bin.1000000:4"));
        // Snapshot items: after the resume point, before the next transaction's first event.
        for text in ["gtid:0-1-5:0:3", "file:mysql-bin.000003:1234:0:2"] {
            assert_eq!(p(text).to_string(), text);
        }
        assert!(p("gtid:0-1-5") < p("gtid:0-1-5:0:1"));
        assert!(p("gtid:0-1-5:0:1") < p("gtid:0-1-5:0:2"));
        assert!(p("gtid:0-1-5:0:9") < p("gtid:0-1-5:1"));
        assert!(p("file:mysql-bin.000003:1234:0:1") < p("file:mysql-bin.000003:1234:1"));
        assert!("gtid:0-1-5:1:2:3".parse::<Position>().is_err());
        assert!("file:x".parse::<Position>().is_err());
        assert!("file::4".parse::<Position>().is_err());
        assert!("gtid:0-1".parse::<Position>().is_err());
    }

    #[test]
    fn gtid_set_keeps_one_gtid_per_domain() {
        let s: GtidSet = "1-2-9,0-1-5".parse().unwrap();
        assert_eq!(s.to_string(), "0-1-5,1-2-9");
        let t = s.with(Gtid { domain: 0, server: 3, seq: 6 });
        assert_eq!(t.to_string(), "0-3-6,1-2-9");
        assert!(s < t);
    }
}
