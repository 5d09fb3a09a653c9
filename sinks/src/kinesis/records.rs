//! What identifies a record: its partition key (from the table's key), the
//! identity the sink matches records by (data without processing time),
//! and the order of Kinesis sequence numbers. Pure functions, no I/O.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use sha2::{Digest, Sha256};

/// Kinesis's limit on a partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The partition key of a change: the JSON of its key columns, or the
/// table's name without a key. Longer than Kinesis's 256 characters, the
/// key is cut to its first 191 characters plus `#` and the SHA-256 (hex) of
/// the whole: deterministic, so a key always goes to the same shard.
pub fn partition_key(key_json: Option<&str>, table: &str) -> String {
    let full = key_json.unwrap_or(table);
    if full.chars().count() <= MAX_PARTITION_KEY_CHARS {
        return full.to_string();
    }
    let digest = Sha256::digest(full.as_bytes());
    let mut out: String = full.chars().take(MAX_PARTITION_KEY_CHARS - 65).collect();
    out.push('#');
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The parts of a record's data that are the same when the change is
/// written again after a restart: the Debezium envelope without its
/// processing time (`"ts_ms"`, `"ts_us"`, `"ts_ns"`, always its last
/// fields) and without the PostgreSQL source block's `"sequence"` (the
/// previous commit's LSN, which the decoder only knows once it has seen that
/// commit in the same run); flat JSON as it is (its `_ts_ms` is the commit
/// time). Only structural quotes are unescaped in the JSON, so the markers
/// cannot come from row values.
pub fn stable_parts(data: &[u8]) -> [&[u8]; 2] {
    const TS: &[u8] = b",\"ts_ms\":";
    const SOURCE: &[u8] = b"\"source\":{";
    const SEQUENCE: &[u8] = b",\"sequence\":\"[";
    if !data.starts_with(b"{\"before\":") {
        return [data, &[]];
    }
    let end = rfind(data, TS).unwrap_or(data.len());
    let data = &data[..end];
    let Some(source) = rfind(data, SOURCE) else { return [data, &[]] };
    let Some(seq) = find(&data[source..], SEQUENCE).map(|i| i + source) else { return [data, &[]] };
    match find(&data[seq + SEQUENCE.len()..], b"]\"").map(|i| i + seq + SEQUENCE.len() + 2) {
        Some(after) => [&data[..seq], &data[after..]],
        None => [data, &[]],
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// A record's identity: a hash of its partition key and stable data. Two
/// records of one key with the same identity carry the same change.
pub fn identity(partition_key: &str, data: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    partition_key.hash(&mut h);
    for part in stable_parts(data) {
        part.hash(&mut h);
    }
    h.finish()
}

/// Whether sequence number `a` is after `b` (decimal strings of up to 128
/// bits and more: compared by length, then digits).
pub fn seq_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Records found in the stream that the sink may be asked to write again:
/// how many of each identity, per partition key.
#[derive(Debug, Default)]
pub struct Found {
    by_key: HashMap<String, HashMap<u64, u32>>,
    pub records: usize,
}

impl Found {
    pub fn add(&mut self, partition_key: &str, data: &[u8]) {
        let id = identity(partition_key, data);
        *self.by_key.entry(partition_key.to_string()).or_default().entry(id).or_default() += 1;
        self.records += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether the stream holds this record (each found record answers
    /// yes once).
    pub fn take(&mut self, partition_key: &str, data: &[u8]) -> bool {
        let Some(ids) = self.by_key.get_mut(partition_key) else { return false };
        let id = identity(partition_key, data);
        let Some(n) = ids.get_mut(&id) else { return false };
        *n -= 1;
        if *n == 0 {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_key.remove(partition_key);
            }
        }
        self.records -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_the_key_or_the_table_and_long_ones_are_hashed() {
        assert_eq!(partition_key(Some("{\"id\":1}"), "public.t"), "{\"id\":1}");
        assert_eq!(partition_key(None, "public.t"), "public.t");
        let long = format!("{{\"k\":\"{}\"}}", "é".repeat(300));
        let pk = partition_key(Some(&long), "t");
        assert_eq!(pk.chars().count(), 256);
        assert!(pk.starts_with("{\"k\":\"éé"));
        assert_eq!(pk, partition_key(Some(&long), "t"), "deterministic");
        let other = format!("{{\"k\":\"{}x\"}}", "é".repeat(300));
        assert_ne!(pk, partition_key(Some(&other), "t"), "same prefix, other key");
        let exact = "a".repeat(256);
        assert_eq!(partition_key(Some(&exact), "t"), exact);
    }

    #[test]
    fn the_identity_ignores_processing_time_and_sequence_only() {
        let a = br#"{"before":null,"after":{"id":1,"ts_ms":5,"sequence":"[1]"},"source":{"version":"v","sequence":"[\"1\",\"7\"]","lsn":7},"op":"c","ts_ms":1,"ts_us":1000,"ts_ns":1000000}"#;
        let b = br#"{"before":null,"after":{"id":1,"ts_ms":5,"sequence":"[1]"},"source":{"version":"v","sequence":"[null,\"7\"]","lsn":7},"op":"c","ts_ms":2,"ts_us":2000,"ts_ns":2000000}"#;
        let c = br#"{"before":null,"after":{"id":1,"ts_ms":6,"sequence":"[1]"},"source":{"version":"v","sequence":"[\"1\",\"7\"]","lsn":7},"op":"c","ts_ms":1,"ts_us":1000,"ts_ns":1000000}"#;
        let d = br#"{"before":null,"after":{"id":1,"ts_ms":5,"sequence":"[1]"},"source":{"version":"v","sequence":"[\"1\",\"7\"]","lsn":8},"op":"c","ts_ms":1,"ts_us":1000,"ts_ns":1000000}"#;
        assert_eq!(identity("k", a), identity("k", b));
        let [head, tail] = stable_parts(a);
        assert!(head.ends_with(br#""version":"v""#) && tail == br#","lsn":7},"op":"c""#, "{tail:?}");
        assert_ne!(identity("k", a), identity("k", c), "columns named ts_ms or sequence are data");
        assert_ne!(identity("k", a), identity("k", d));
        assert_ne!(identity("k", a), identity("j", a));
        let flat = br#"{"_op":"c","_table":"public.t","_position":"lsn:0/1:1","_ts_ms":5,"id":1}"#;
        assert_eq!(stable_parts(flat), [&flat[..], &[][..]]);
        let mysql = br#"{"before":null,"after":{"id":1},"source":{"version":"v","sequence":null,"file":"f","pos":4},"op":"c","ts_ms":1,"ts_us":1,"ts_ns":1}"#;
        assert_eq!(stable_parts(mysql)[1], b"");
    }

    #[test]
    fn found_records_answer_once_each() {
        let mut f = Found::default();
        f.add("k", b"x");
        f.add("k", b"x");
        f.add("j", b"y");
        assert!(f.take("k", b"x") && f.take("k", b"x"));
        assert!(!f.take("k", b"x"));
        assert!(!f.take("j", b"x"));
        assert!(f.take("j", b"y"));
        assert!(f.is_empty());
        assert_eq!(f.records, 0);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_after("10", "9"));
        assert!(seq_after("49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588897"));
        assert!(!seq_after("9", "9"));
    }
}
