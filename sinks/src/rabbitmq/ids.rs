//! Publishing IDs for a RabbitMQ stream from source positions, and the
//! message IDs of the exchange mode.
//!
//! The stream protocol deduplicates per named producer: the broker keeps
//! the highest publishing ID it stored for the producer's reference and
//! drops (while still confirming) any message whose ID is not above it. So
//! an ID must grow with the stream order, and a replayed change should get
//! its first ID again.
//!
//! - **PostgreSQL**: a change's position is `(lsn, index)`, ordered like
//!   the pair. It is packed into one u64 as `lsn << 20 | index` while the
//!   LSN is below 2^44 (16 TiB of WAL) and the index below 2^20 (a million
//!   changes in one transaction); a replay then carries the same ID and
//!   the broker drops it whatever happened to the state directory. A
//!   position that does not fit (or whose packed ID is not above the last
//!   one) counts on from the last ID instead, which keeps IDs increasing.
//! - **MySQL/MariaDB**: a GTID state (one sequence per domain) or a binlog
//!   file, offset and row index do not map to a u64 in order, so the ID
//!   counts on from the producer's last one, as the Redis sink counts
//!   entry IDs.
//!
//! Counting alone would give a replayed change a new ID, so on first use
//! of a stream the sink also reads the stream's last message and its
//! `position` property and skips every change at or before it ([`Sequence::holds`]).
//! Within a run an ID, once given, stays with its message: a batch resent
//! after a lost connection is dropped by the broker where it had landed.

use outflow_model::Position;

/// Bits of a packed PostgreSQL ID taken by the index inside the
/// transaction.
const INDEX_BITS: u32 = 20;
/// LSNs at or above this do not pack.
const LSN_LIMIT: u64 = 1 << (64 - INDEX_BITS);

/// The packed publishing ID of a PostgreSQL position, when it fits.
pub fn packed(position: &Position) -> Option<u64> {
    match position {
        Position::Pg { lsn, index } if *lsn < LSN_LIMIT && u64::from(*index) < (1 << INDEX_BITS) => {
            Some(lsn << INDEX_BITS | u64::from(*index))
        }
        _ => None,
    }
}

/// One stream's producer: its last publishing ID and what the stream held
/// when the sink first read it.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    /// The last publishing ID stored for the producer (0: none) or given
    /// this run.
    pub last: u64,
    /// The position of the stream's last message on first use.
    pub recovered: Option<Position>,
}

impl Sequence {
    /// Whether the stream held the change at `position` on first use.
    pub fn holds(&self, position: &Position) -> bool {
        self.recovered.as_ref().is_some_and(|r| position <= r)
    }

    /// The publishing ID of the next message, at `position`: the packed
    /// position where it fits above the last ID, else one past the last.
    pub fn next_id(&mut self, position: &Position) -> u64 {
        let id = match packed(position) {
            Some(p) if p > self.last => p,
            _ => self.last + 1,
        };
        self.last = id;
        id
    }
}

/// The AMQP `message_id` of a change: its position, or, when that is too
/// long for a short string (a GTID set of many domains), `h:` and a stable
/// 128-bit FNV-1a hash of it. The same change always gets the same ID.
pub fn message_id(position: &Position) -> String {
    let text = position.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in text.bytes() {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("h:{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(lsn: u64, index: u32) -> Position {
        Position::Pg { lsn, index }
    }

    fn gtid(domains: &[(u32, u64)], index: u32) -> Position {
        let set: Vec<String> = domains.iter().map(|(d, seq)| format!("{d}-1-{seq}")).collect();
        format!("gtid:{}:{index}", set.join(",")).parse().unwrap()
    }

    #[test]
    fn postgres_ids_are_the_packed_position_and_replays_get_the_same_id() {
        let mut s = Sequence::default();
        let positions = [pg(100, 1), pg(100, 2), pg(101, 1), pg(0x7_0000_0000, 7)];
        let ids: Vec<u64> = positions.iter().map(|p| s.next_id(p)).collect();
        assert_eq!(ids[0], 100 << 20 | 1);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let mut again = Sequence { last: ids[1], recovered: None };
        assert_eq!(again.next_id(&pg(101, 1)), ids[2], "a replay after restart gets its first ID");
    }

    #[test]
    fn positions_that_do_not_pack_count_on_and_ids_keep_increasing() {
        let mut s = Sequence::default();
        let a = s.next_id(&pg(100, (1 << 20) - 1));
        let b = s.next_id(&pg(100, 1 << 20));
        let c = s.next_id(&pg(100, (1 << 20) + 1));
        let d = s.next_id(&pg(101, 1));
        let e = s.next_id(&pg(u64::MAX, 1));
        assert_eq!((b, c), (a + 1, a + 2));
        assert!(d > c && e == d + 1, "{d} {e}");
    }

    #[test]
    fn mysql_ids_count_on_and_the_recovered_tail_is_skipped() {
        let mut s = Sequence { last: 41, recovered: Some(gtid(&[(0, 5), (1, 2)], 1)) };
        assert!(s.holds(&gtid(&[(0, 5)], 1)) && s.holds(&gtid(&[(0, 5), (1, 2)], 1)));
        assert!(!s.holds(&gtid(&[(0, 6), (1, 2)], 1)));
        assert_eq!(s.next_id(&gtid(&[(0, 6), (1, 2)], 1)), 42);
        assert_eq!(s.next_id(&gtid(&[(0, 6), (1, 2)], 2)), 43);
        assert_eq!(Sequence::default().next_id(&"file:bin.000001:4:1".parse().unwrap()), 1);
    }

    #[test]
    fn message_ids_are_stable_and_short() {
        assert_eq!(message_id(&pg(0x16B3748, 3)), pg(0x16B3748, 3).to_string());
        let many: Vec<(u32, u64)> = (0..40).map(|d| (d, 1_000_000 + u64::from(d))).collect();
        let long = gtid(&many, 1);
        assert!(long.to_string().len() > 200);
        let id = message_id(&long);
        assert_eq!(id, message_id(&long));
        assert!(id.starts_with("h:") && id.len() == 34, "{id}");
        assert_ne!(id, message_id(&gtid(&many, 2)));
    }
}
