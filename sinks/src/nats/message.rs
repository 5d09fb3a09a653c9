//! What one change becomes on NATS: a message on its table's subject whose
//! body is the configured format's bytes and whose headers carry the
//! deduplication id (`Nats-Msg-Id`), the source position, the table, the op
//! and the key; and the position read back from a stored message.
//!
//! Header values are text on one line: positions, `schema.table` and op
//! codes are, and the key is compact JSON, whose strings escape line breaks.

use async_nats::header::HeaderMap;
use async_nats::Subject;
use bytes::Bytes;
use outflow_model::{Position, TableId};

/// JetStream's deduplication id (see [`message_id`]).
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The source position of the change (`lsn:…`, `gtid:…`, `file:…`).
pub const POSITION: &str = "Outflow-Position";
/// `schema.table`.
pub const TABLE: &str = "Outflow-Table";
/// `c`, `u`, `d`, `r` or `t`.
pub const OP: &str = "Outflow-Op";
/// The key columns as a JSON object (`null` without a key).
pub const KEY: &str = "Outflow-Key";

/// One message to publish, kept until JetStream acknowledged it (a lost
/// connection sends it again).
pub struct Outgoing {
    pub subject: Subject,
    pub payload: Bytes,
    pub position: Position,
    /// Headers and body: what the server's and the stream's size limits
    /// count.
    pub size: usize,
    /// The header values in [`NAMES`] order, each ended by `\n` (none of
    /// them holds one): one allocation per message; the header map is
    /// built when the message is sent.
    values: Box<str>,
}

/// The headers of every message, in the order [`Outgoing`] keeps them.
pub const NAMES: [&str; 5] = [MSG_ID, POSITION, TABLE, OP, KEY];

/// `Nats-Msg-Id`: the same for a change however often it is sent, and
/// different for every change of every pipeline and sink (`pipeline:sink:
/// position`), so JetStream's duplicate window drops a replayed copy.
pub fn message_id(prefix: &str, position: &Position) -> String {
    format!("{prefix}{position}")
}

/// The prefix of this sink's message ids.
pub fn id_prefix(pipeline: &str, sink: &str) -> String {
    format!("{pipeline}:{sink}:")
}

impl Outgoing {
    /// The message for a change at `position` of `table`: `key` is its
    /// JSON key (`null` when none), `body` the format's bytes.
    pub fn new(
        subject: Subject,
        id_prefix: &str,
        position: &Position,
        table: &TableId,
        op: &str,
        key: &[u8],
        body: &[u8],
    ) -> Outgoing {
        let key = String::from_utf8_lossy(key);
        let texts = [message_id(id_prefix, position), position.to_string(), table.to_string()];
        let mut values = String::with_capacity(texts.iter().map(String::len).sum::<usize>() + key.len() + 8);
        // A header value is one line: JSON escapes line breaks inside its
        // strings, and a table name with one gets a space instead.
        for v in texts.iter().map(String::as_str).chain([op, &key]) {
            values.extend(v.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }));
            values.push('\n');
        }
        // NATS/1.0\r\n, one `Name: value\r\n` per header (the `\n` ends
        // count one of the two bytes of each `\r\n`), \r\n.
        let headers_len = 10 + NAMES.iter().map(|n| n.len() + 3).sum::<usize>() + values.len() + 2;
        Outgoing {
            subject,
            payload: Bytes::copy_from_slice(body),
            position: position.clone(),
            size: headers_len + body.len(),
            values: values.into_boxed_str(),
        }
    }

    /// The message's headers.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in NAMES.iter().zip(self.values.split_terminator('\n')) {
            headers.insert(*name, value);
        }
        headers
    }
}

/// The position in a stored message's headers; None when it has none (not
/// written by outflow) or it does not parse.
pub fn stored_position(headers: &HeaderMap) -> Option<Position> {
    headers.get(POSITION)?.as_str().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_position_and_name_the_pipeline_and_sink() {
        let p = Position::Pg { lsn: 0x16B3748, index: 3 };
        let prefix = id_prefix("app", "bus");
        assert_eq!(message_id(&prefix, &p), "app:bus:lsn:0/16B3748:3");
        assert_ne!(message_id(&id_prefix("other", "bus"), &p), message_id(&prefix, &p));
    }

    #[test]
    fn headers_carry_position_table_op_and_key_and_count_in_the_size() {
        let p = Position::Pg { lsn: 100, index: 1 };
        let table = TableId { schema: "public".into(), name: "t".into() };
        let m = Outgoing::new(Subject::from("app.public.t"), "app:bus:", &p, &table, "c", b"{\"id\":1}", b"{}");
        let headers = m.headers();
        assert_eq!(headers.get(MSG_ID).unwrap().as_str(), "app:bus:lsn:0/64:1");
        assert_eq!(headers.get(TABLE).unwrap().as_str(), "public.t");
        assert_eq!(headers.get(OP).unwrap().as_str(), "c");
        assert_eq!(headers.get(KEY).unwrap().as_str(), "{\"id\":1}");
        assert_eq!(stored_position(&headers), Some(p));
        let wire = "NATS/1.0\r\nNats-Msg-Id: app:bus:lsn:0/64:1\r\nOutflow-Position: lsn:0/64:1\r\n\
                    Outflow-Table: public.t\r\nOutflow-Op: c\r\nOutflow-Key: {\"id\":1}\r\n\r\n";
        assert_eq!(m.size, wire.len() + 2);
    }

    #[test]
    fn a_message_without_a_position_recovers_nothing() {
        let mut h = HeaderMap::new();
        assert_eq!(stored_position(&h), None);
        h.insert(POSITION, "garbage");
        assert_eq!(stored_position(&h), None);
    }
}
