//! MariaDB-only binlog events, parsed by hand because mysql_common knows
//! only MySQL's event types: GTID (162), GTID_LIST (163),
//! BINLOG_CHECKPOINT (161) and ANNOTATE_ROWS (160), plus the numbers of
//! MariaDB's compressed events (`log_bin_compress`).
//!
//! Protocol surprises handled here:
//! - A GTID event's server id is not in its body: it is the event header's.
//! - A GTID event without `FL_STANDALONE` opens a transaction that ends with
//!   XID (InnoDB) or a `COMMIT` query (non-transactional engines); a
//!   standalone one (DDL) is a single query event with no end marker.
//! - A GTID_LIST count has its top 4 bits reserved for flags.
//!
//! Every length is checked against the bytes present: bad input is a
//! `DecodeError`, never a panic.

use crate::DecodeError;
use outflow_model::position::Gtid;

pub const ANNOTATE_ROWS_EVENT: u8 = 160;
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
pub const GTID_EVENT: u8 = 162;
pub const GTID_LIST_EVENT: u8 = 163;
pub const START_ENCRYPTION_EVENT: u8 = 164;
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
/// WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1 are 169..=171 and the
/// (unused) v2 spellings 166..=168.
pub const FIRST_COMPRESSED_ROWS_EVENT: u8 = 166;
pub const LAST_COMPRESSED_ROWS_EVENT: u8 = 171;

/// `FL_STANDALONE`: the transaction is one statement without BEGIN/COMMIT.
const FL_STANDALONE: u8 = 1;

/// A parsed MariaDB GTID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: Gtid,
    pub standalone: bool,
    pub flags: u8,
}

fn take<'a>(data: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    if data.len() < n {
        return Err(DecodeError::Truncated { what, needed: n - data.len() });
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

fn u32_le(data: &mut &[u8], what: &'static str) -> Result<u32, DecodeError> {
    let b = take(data, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_le(data: &mut &[u8], what: &'static str) -> Result<u64, DecodeError> {
    let b = take(data, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

/// GTID event body: seq_no u64, domain_id u32, flags u8, then optional
/// commit id / XA data the flags announce (not needed here).
pub fn parse_gtid(mut data: &[u8], server_id: u32) -> Result<GtidEvent, DecodeError> {
    let seq = u64_le(&mut data, "gtid event seq_no")?;
    let domain = u32_le(&mut data, "gtid event domain_id")?;
    let flags = take(&mut data, 1, "gtid event flags")?[0];
    Ok(GtidEvent { gtid: Gtid { domain, server: server_id, seq }, standalone: flags & FL_STANDALONE != 0, flags })
}

/// GTID_LIST body: count u32 (low 28 bits), then count × (domain u32, server u32, seq u64).
pub fn parse_gtid_list(mut data: &[u8]) -> Result<Vec<Gtid>, DecodeError> {
    let count = (u32_le(&mut data, "gtid list count")? & 0x0FFF_FFFF) as usize;
    if count.saturating_mul(16) > data.len() {
        return Err(DecodeError::Truncated { what: "gtid list", needed: count * 16 - data.len() });
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let domain = u32_le(&mut data, "gtid list domain")?;
        let server = u32_le(&mut data, "gtid list server")?;
        let seq = u64_le(&mut data, "gtid list seq")?;
        out.push(Gtid { domain, server, seq });
    }
    Ok(out)
}

/// BINLOG_CHECKPOINT body: name length u32, then the file name.
pub fn parse_binlog_checkpoint(mut data: &[u8]) -> Result<String, DecodeError> {
    let len = u32_le(&mut data, "binlog checkpoint name length")? as usize;
    let name = take(&mut data, len, "binlog checkpoint name")?;
    String::from_utf8(name.to_vec()).map_err(|_| DecodeError::invalid("binlog checkpoint", "file name is not UTF-8"))
}

/// ANNOTATE_ROWS body: the statement text that produced the following rows
/// events (`binlog_annotate_row_events`), not NUL-terminated.
pub fn parse_annotate_rows(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event_takes_the_server_id_from_the_header() {
        let mut b = 42u64.to_le_bytes().to_vec();
        b.extend_from_slice(&7u32.to_le_bytes());
        b.push(1);
        let e = parse_gtid(&b, 3).unwrap();
        assert_eq!(e.gtid, Gtid { domain: 7, server: 3, seq: 42 });
        assert!(e.standalone);
        assert!(parse_gtid(&b[..12], 3).is_err());
    }

    #[test]
    fn gtid_list_checks_its_count_against_the_bytes() {
        let mut b = (2u32 | 0x1000_0000).to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 1u32, 5u64), (1, 2, 9)] {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&n.to_le_bytes());
        }
        let list = parse_gtid_list(&b).unwrap();
        assert_eq!(list[1], Gtid { domain: 1, server: 2, seq: 9 });
        assert!(parse_gtid_list(&b[..20]).is_err());
        assert!(parse_gtid_list(&u32::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn checkpoint_and_annotate() {
        let mut b = 16u32.to_le_bytes().to_vec();
        b.extend_from_slice(b"mysql-bin.000001");
        assert_eq!(parse_binlog_checkpoint(&b).unwrap(), "mysql-bin.000001");
        assert!(parse_binlog_checkpoint(&b[..10]).is_err());
        assert_eq!(parse_annotate_rows(b"INSERT INTO t VALUES (1)"), "INSERT INTO t VALUES (1)");
    }
}
