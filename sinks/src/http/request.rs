//! One request's worth of events: the body being built (a JSON array of
//! records, or one record in `single` mode), the positions it spans, and
//! the headers derived from them — the idempotency key and the signature.
//!
//! - `Idempotency-Key: <first position>..<last position>` (the outflow
//!   positions of the batch's first and last events, e.g.
//!   `lsn:0/16B3748:1..lsn:0/16B3790:500`). It depends only on which events
//!   the batch holds, never on time or attempt, so a retried request and a
//!   batch formed the same way after a restart carry the same key.
//! - `X-Outflow-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body
//!   bytes, keyed with the sink's `secret`, lowercase hex.
//! - `X-Outflow-Pipeline`, `X-Outflow-Count`, `X-Outflow-First-Position`,
//!   `X-Outflow-Last-Position` on every request; in `single` mode also
//!   `X-Outflow-Table` (`schema.table`), `X-Outflow-Op` (`c u d r t`) and
//!   `X-Outflow-Key` (the JSON object of the key columns, `null` without).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use outflow_model::{ChangeEvent, Position};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use sha2::Sha256;

pub const SIGNATURE: &str = "x-outflow-signature";
pub const PIPELINE: &str = "x-outflow-pipeline";
pub const COUNT: &str = "x-outflow-count";
pub const FIRST: &str = "x-outflow-first-position";
pub const LAST: &str = "x-outflow-last-position";
pub const TABLE: &str = "x-outflow-table";
pub const OP: &str = "x-outflow-op";
pub const KEY: &str = "x-outflow-key";

/// The events of the next request, as they are added.
pub struct Batch {
    single: bool,
    body: Vec<u8>,
    count: usize,
    first: Option<Position>,
    last: Option<Position>,
    /// `single` mode: the event's table, op and key.
    table: String,
    op: &'static str,
    key: Vec<u8>,
}

/// A request ready to send (and to resend as it is).
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Bytes,
    pub headers: HeaderMap,
    pub count: usize,
    pub key: String,
}

impl Batch {
    pub fn new(single: bool) -> Batch {
        let mut b = Batch {
            single,
            body: Vec::with_capacity(64 * 1024),
            count: 0,
            first: None,
            last: None,
            table: String::new(),
            op: "",
            key: Vec::new(),
        };
        b.clear();
        b
    }

    fn clear(&mut self) {
        self.body.clear();
        if !self.single {
            self.body.push(b'[');
        }
        self.count = 0;
        self.first = None;
        self.last = None;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The body's size with `record` added (and the closing bracket).
    pub fn size_with(&self, record: &[u8]) -> usize {
        self.body.len() + record.len() + 2
    }

    /// Adds one rendered record (`key`: the JSON of its key columns).
    pub fn push(&mut self, ev: &ChangeEvent, record: &[u8], key: &[u8]) {
        if self.count > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(record);
        if self.first.is_none() {
            self.first = Some(ev.position.clone());
        }
        self.last = Some(ev.position.clone());
        self.count += 1;
        if self.single {
            self.table = ev.table.id.to_string();
            self.op = ev.op.code();
            self.key.clear();
            self.key.extend_from_slice(key);
        }
    }

    /// Takes the batch as a request (the batch starts over, empty).
    pub fn take(&mut self, pipeline: &HeaderValue, secret: Option<&[u8]>) -> Request {
        if !self.single {
            self.body.push(b']');
        }
        let body = Bytes::copy_from_slice(&self.body);
        let first = self.first.as_ref().map(Position::to_string).unwrap_or_default();
        let last = self.last.as_ref().map(Position::to_string).unwrap_or_default();
        let key = idempotency_key(&first, &last);
        let mut headers = HeaderMap::with_capacity(12);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(PIPELINE, pipeline.clone());
        headers.insert(COUNT, HeaderValue::from(self.count));
        // Positions are ASCII; table names and keys may be UTF-8 (sent as
        // is, RFC 9110's obs-text); JSON escapes control characters.
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name, v);
            }
        };
        put("idempotency-key", &key);
        put(FIRST, &first);
        put(LAST, &last);
        if self.single {
            put(TABLE, &self.table);
            put(OP, self.op);
            put(KEY, &String::from_utf8_lossy(&self.key));
        }
        if let Some(secret) = secret {
            headers.insert(HeaderName::from_static(SIGNATURE), signature(secret, &body));
        }
        let request = Request { body, headers, count: self.count, key };
        self.clear();
        request
    }
}

/// `<first>..<last>`: see the module doc.
pub fn idempotency_key(first: &str, last: &str) -> String {
    format!("{first}..{last}")
}

/// `sha256=<lowercase hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> HeaderValue {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let value = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    HeaderValue::from_str(&value).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231 test case 2.
        let v = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(v, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn the_key_joins_the_first_and_last_positions() {
        assert_eq!(idempotency_key("lsn:0/10:1", "lsn:0/20:3"), "lsn:0/10:1..lsn:0/20:3");
    }
}
