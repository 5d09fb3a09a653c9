//! What a stream item becomes in Kafka: topic, partition, key, value and
//! headers, shaped like Debezium's records.
//!
//! - Changes go to the table's topic (the `topic` template), keyed by a JSON
//!   object of the key columns (null for tables without a key); a delete is
//!   followed by a tombstone with the same key. Truncates go to the table's
//!   topic with a null key, logical decoding messages to `{name}.message`
//!   keyed by `{"prefix"}`, transaction BEGIN/END records to
//!   `{name}.transaction` keyed by `{"id"}`.
//! - The partition is computed here, not by librdkafka: Kafka's Java client
//!   default partitioner for keyed records (`murmur2(key) & 0x7fffffff % n`),
//!   so a key lands where Debezium would put it, and outflow knows each
//!   record's partition before producing it (exactly-once recovery compares
//!   against that partition's tail). Records without a key go to partition 0
//!   so that a replay puts them in the same place.
//! - An update that moves its row to another key is, as in Debezium, a
//!   delete under the old key (header `__debezium.newkey`), its tombstone,
//!   and a create under the new key (header `__debezium.oldkey`); with
//!   `format = "json"` it stays one update record under the new key.
//! - Every record carries `outflow.position` (the source position); the
//!   later records of one change (a tombstone, a key change's tombstone and
//!   create) also carry `outflow.seq` = 1, 2, so they sort after the first
//!   record, which has the same position.

use outflow_model::Position;

use crate::format::values::write_json_str;

/// Header carrying the source position of the change a record belongs to.
pub const POSITION_HEADER: &str = "outflow.position";
/// Header numbering the records of one change after its first (a
/// tombstone; the tombstone and create of a key change).
pub const SEQ_HEADER: &str = "outflow.seq";
/// Debezium's header on the delete of a key change: the new key.
pub const NEW_KEY_HEADER: &str = "__debezium.newkey";
/// Debezium's header on the create of a key change: the old key.
pub const OLD_KEY_HEADER: &str = "__debezium.oldkey";

/// Kafka's `Utils.murmur2` (Java client), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's Java client picks for a keyed record; partition 0
/// for a null key (see the module doc).
pub fn partition_for(key: Option<&[u8]>, partitions: i32) -> i32 {
    match key {
        Some(k) if partitions > 1 => ((murmur2(k) as u32 & 0x7fff_ffff) % partitions as u32) as i32,
        _ => 0,
    }
}

/// Appends `s` with the characters Kafka refuses in topic names replaced.
pub fn push_topic_chars(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }));
}

/// Debezium's transaction id: `txId:LSN` for PostgreSQL (the LSN the
/// transaction commits at, in decimal), the position string elsewhere.
pub fn transaction_id(tx_id: Option<u64>, position: &Position) -> String {
    match (tx_id, position) {
        (Some(tx), Position::Pg { lsn, .. }) => format!("{tx}:{lsn}"),
        (Some(tx), p) => format!("{tx}:{p}"),
        (None, p) => p.to_string(),
    }
}

/// `{"id": ...}`, the key of a transaction record.
pub fn transaction_key(id: &str) -> Vec<u8> {
    let mut out = b"{\"id\":".to_vec();
    write_json_str(&mut out, id);
    out.push(b'}');
    out
}

/// Debezium's BEGIN record value (3.6.3's field order).
pub fn transaction_begin(id: &str, ts_ms: i64) -> Vec<u8> {
    let mut out = b"{\"status\":\"BEGIN\",\"id\":".to_vec();
    write_json_str(&mut out, id);
    out.extend_from_slice(format!(",\"event_count\":null,\"data_collections\":null,\"ts_ms\":{ts_ms}}}").as_bytes());
    out
}

/// Debezium's END record value, with per-table event counts.
pub fn transaction_end(id: &str, ts_ms: i64, collections: &[(String, u64)]) -> Vec<u8> {
    let mut out = b"{\"status\":\"END\",\"id\":".to_vec();
    write_json_str(&mut out, id);
    let total: u64 = collections.iter().map(|(_, n)| n).sum();
    out.extend_from_slice(format!(",\"event_count\":{total},\"data_collections\":[").as_bytes());
    for (i, (table, n)) in collections.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"data_collection\":");
        write_json_str(&mut out, table);
        out.extend_from_slice(format!(",\"event_count\":{n}}}").as_bytes());
    }
    out.extend_from_slice(format!("],\"ts_ms\":{ts_ms}}}").as_bytes());
    out
}

/// `{"prefix": ...}`, the key of a logical decoding message record.
pub fn message_key(prefix: &str) -> Vec<u8> {
    let mut out = b"{\"prefix\":".to_vec();
    write_json_str(&mut out, prefix);
    out.push(b'}');
    out
}
