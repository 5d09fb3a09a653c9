//! Redis stream entry IDs from source positions, and the per-stream state
//! that keeps them strictly increasing.
//!
//! A Redis stream ID is `<u64>-<u64>` and must grow with every entry: an
//! `XADD` with an ID at or below the stream's last one is refused. outflow
//! uses that refusal as its duplicate check, so the ID must follow stream
//! order.
//!
//! - **PostgreSQL**: a change's position is `(lsn, index)` with `index` from
//!   1, ordered exactly like the pair, so the ID *is* the position:
//!   `<lsn>-<index>`. A replayed change gets the same ID and Redis refuses
//!   it, whatever happened to the state directory.
//! - **MySQL/MariaDB**: a position's anchor is a binlog file and offset or a
//!   GTID state (one sequence number per replication domain), plus event and
//!   snapshot indexes. Several domains' sequence numbers cannot be packed
//!   into two u64s in an order-preserving way, and neither can an unbounded
//!   file name plus offset plus two indexes, so the ID is a per-stream
//!   counter instead: `<n>-0`, `n` one past the stream's last ID. On first
//!   use of a stream the sink reads its last entry (`XREVRANGE s + - COUNT
//!   1`) and its `position` field, and skips every change at or before that
//!   position: the entries of a crashed run are not written again. An ID,
//!   once given to an entry, stays with it, so a batch resent after a lost
//!   connection is refused where it had already landed.
//!
//! Both kinds also skip what the stream's last entry covers, so a restart
//! does not resend what Redis would refuse anyway.

use outflow_model::Position;

/// A stream entry ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    /// Parses Redis's `<ms>-<seq>`.
    pub fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What the sink knows about one stream: its last entry.
#[derive(Debug, Clone, Default)]
pub struct StreamTail {
    /// The last ID given to an entry (recovered or assigned this run).
    pub last_id: Option<EntryId>,
    /// The position of the stream's last entry when the sink first read it.
    pub recovered: Option<Position>,
}

impl StreamTail {
    /// Whether the stream held the change at `position` when it was first
    /// read.
    pub fn holds(&self, position: &Position) -> bool {
        self.recovered.as_ref().is_some_and(|r| position <= r)
    }

    /// The ID for the next entry, at `position` (see the module doc), or
    /// None when the stream's last ID is already past it (a PostgreSQL
    /// position at or before an ID written by something else).
    pub fn next_id(&mut self, position: &Position) -> Option<EntryId> {
        let id = match position {
            Position::Pg { lsn, index } => EntryId { ms: *lsn, seq: u64::from(*index).max(1) },
            Position::Mysql(_) => EntryId { ms: self.last_id.map_or(1, |l| l.ms.saturating_add(1)), seq: 0 },
        };
        if self.last_id.is_some_and(|l| id <= l) {
            return None;
        }
        self.last_id = Some(id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(lsn: u64, index: u32) -> Position {
        Position::Pg { lsn, index }
    }

    #[test]
    fn postgres_ids_are_the_position_and_increase_with_it() {
        let mut t = StreamTail::default();
        let positions = [pg(100, 1), pg(100, 2), pg(100, 10), pg(101, 1), pg(u64::MAX, u32::MAX)];
        let ids: Vec<_> = positions.iter().map(|p| t.next_id(p).unwrap()).collect();
        assert_eq!(ids[0].to_string(), "100-1");
        assert_eq!(ids[4].to_string(), format!("{}-{}", u64::MAX, u32::MAX));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        // The same position again (a replay) is at or below the last ID.
        assert_eq!(t.next_id(&pg(101, 1)), None);
    }

    #[test]
    fn postgres_ids_never_go_below_the_recovered_tail() {
        let mut t = StreamTail { last_id: EntryId::parse("200-3"), recovered: Some(pg(200, 3)) };
        assert!(t.holds(&pg(200, 3)) && t.holds(&pg(150, 9)) && !t.holds(&pg(200, 4)));
        assert_eq!(t.next_id(&pg(200, 3)), None);
        assert_eq!(t.next_id(&pg(200, 4)), EntryId::parse("200-4"));
    }

    fn file(name: &str, pos: u64, index: u32) -> Position {
        format!("file:{name}:{pos}:{index}").parse().unwrap()
    }

    fn gtid(domains: &[(u32, u64)], index: u32) -> Position {
        let set: Vec<String> = domains.iter().map(|(d, seq)| format!("{d}-1-{seq}")).collect();
        format!("gtid:{}:{index}", set.join(",")).parse().unwrap()
    }

    #[test]
    fn mysql_ids_count_on_from_the_streams_last_id() {
        let mut t = StreamTail::default();
        let positions = [
            file("bin.000001", 4, 1),
            file("bin.000001", 4, 2),
            file("bin.000002", 4, 1),
            gtid(&[(0, 5)], 1),
            gtid(&[(0, 5), (1, 2)], 1),
            gtid(&[(0, 6), (1, 2)], 1),
        ];
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        let ids: Vec<_> = positions.iter().map(|p| t.next_id(p).unwrap()).collect();
        assert_eq!(ids[0].to_string(), "1-0");
        assert!(ids.windows(2).all(|w| w[0] < w[1]));

        let mut resumed = StreamTail { last_id: EntryId::parse("41-0"), recovered: Some(gtid(&[(0, 5), (1, 2)], 1)) };
        assert!(resumed.holds(&gtid(&[(0, 5)], 1)) && resumed.holds(&gtid(&[(0, 5), (1, 2)], 1)));
        assert!(!resumed.holds(&gtid(&[(0, 6), (1, 2)], 1)));
        assert_eq!(resumed.next_id(&gtid(&[(0, 6), (1, 2)], 1)), EntryId::parse("42-0"));
    }

    #[test]
    fn ids_parse_and_print() {
        assert_eq!(EntryId::parse("12-3"), Some(EntryId { ms: 12, seq: 3 }));
        assert_eq!(EntryId::parse("12"), None);
        assert_eq!(EntryId::parse("a-1"), None);
        assert_eq!(EntryId { ms: 7, seq: 0 }.to_string(), "7-0");
    }
}
