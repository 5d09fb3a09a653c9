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
//! - Every record carries `outflow.position` (the source position); a
//!   tombstone also carries `outflow.seq = 1`, so it sorts after the delete
//!   it follows, which has the same position.

use outflow_model::{ChangeEvent, Position};

use crate::format::values::{write_debezium_value, write_json_str, ValueStyle};

/// Header carrying the source position of the change a record belongs to.
pub const POSITION_HEADER: &str = "outflow.position";
/// Header marking the second record of one change (the tombstone).
pub const SEQ_HEADER: &str = "outflow.seq";

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

/// The `topic` setting, parsed once.
#[derive(Debug, Clone)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Name,
    Db,
    Schema,
    Table,
}

impl TopicTemplate {
    pub fn parse(s: &str) -> Result<TopicTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or("a `{` is not closed")? + open;
            parts.push(match &rest[open + 1..close] {
                "name" => Part::Name,
                "db" => Part::Db,
                "schema" => Part::Schema,
                "table" => Part::Table,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}; use {{name}}, {{db}}, {{schema}} or {{table}}"
                    ))
                }
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("a `}` has no matching `{`".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("the topic is empty".into());
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic for a table. Characters Kafka does not allow in topic names
    /// (anything but `[a-zA-Z0-9._-]`) become `_`, as Debezium does.
    pub fn render(&self, name: &str, db: &str, schema: &str, table: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Name => push_topic_chars(&mut out, name),
                Part::Db => push_topic_chars(&mut out, db),
                Part::Schema => push_topic_chars(&mut out, schema),
                Part::Table => push_topic_chars(&mut out, table),
            }
        }
        out
    }
}

/// Appends `s` with the characters Kafka refuses in topic names replaced.
pub fn push_topic_chars(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }));
}

/// The record key of a change: a JSON object of its key columns (in column
/// order), rendered like the value's columns. `false` when the table has no
/// key columns (the key is null) or the change has no row (truncate).
pub fn write_key(out: &mut Vec<u8>, ev: &ChangeEvent, style: &ValueStyle) -> bool {
    let Some(row) = ev.key_row() else { return false };
    let mut any = false;
    for (col, v) in ev.table.columns.iter().zip(row).filter(|(c, _)| c.key) {
        out.push(if any { b',' } else { b'{' });
        any = true;
        write_json_str(out, &col.name);
        out.push(b':');
        write_debezium_value(out, v, col, style);
    }
    if any {
        out.push(b'}');
    }
    any
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

/// Debezium's BEGIN record value.
pub fn transaction_begin(id: &str, ts_ms: i64) -> Vec<u8> {
    let mut out = b"{\"status\":\"BEGIN\",\"id\":".to_vec();
    write_json_str(&mut out, id);
    out.extend_from_slice(format!(",\"ts_ms\":{ts_ms},\"event_count\":null,\"data_collections\":null}}").as_bytes());
    out
}

/// Debezium's END record value, with per-table event counts.
pub fn transaction_end(id: &str, ts_ms: i64, collections: &[(String, u64)]) -> Vec<u8> {
    let mut out = b"{\"status\":\"END\",\"id\":".to_vec();
    write_json_str(&mut out, id);
    let total: u64 = collections.iter().map(|(_, n)| n).sum();
    out.extend_from_slice(format!(",\"ts_ms\":{ts_ms},\"event_count\":{total},\"data_collections\":[").as_bytes());
    for (i, (table, n)) in collections.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"data_collection\":");
        write_json_str(&mut out, table);
        out.extend_from_slice(format!(",\"event_count\":{n}}}").as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

/// `{"prefix": ...}`, the key of a logical decoding message record.
pub fn message_key(prefix: &str) -> Vec<u8> {
    let mut out = b"{\"prefix\":".to_vec();
    write_json_str(&mut out, prefix);
    out.push(b'}');
    out
}
