//! Parser for pgoutput, PostgreSQL's logical replication output plugin
//! (protocol version 1, with `messages 'true'`): the bytes inside one XLogData
//! (`w`) CopyData message, after the caller has stripped the `w` header.
//!
//! [`parse`] turns one message into a [`PgMessage`] that borrows its strings
//! and column values from the buffer; tuple columns and relation columns are
//! collected into one `Vec` per message, never one allocation per column.
//!
//! Protocol facts this parser handles (PostgreSQL docs, "Logical Replication
//! Message Formats"):
//! - all integers are big-endian; strings are NUL-terminated (no length);
//! - timestamps count microseconds since 2000-01-01 (the PostgreSQL epoch):
//!   they are converted to Unix-epoch microseconds here, once;
//! - a tuple column is `n` (NULL), `u` (an unchanged TOASTed value the server
//!   did not send), `t` (text output, Int32 length then bytes) or `b` (binary,
//!   only with the `binary` option, which outflow never asks for: rejected);
//! - an Update carries an old tuple only when the replica identity requires
//!   it: `K` (identity columns, the others NULL) when the key changed, `O`
//!   (whole row) under `REPLICA IDENTITY FULL`; a Delete always carries one;
//! - the Message `M` has a leading xid only in streamed transactions
//!   (protocol 2), which outflow does not request.
//!
//! Every length is checked against the bytes present before it is used, a
//! message with bytes left over after its last field is rejected, and vector
//! capacities are bounded by what the remaining bytes could hold.

use crate::DecodeError;

/// Microseconds from 1970-01-01 to 2000-01-01 (the PostgreSQL epoch).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Converts a PostgreSQL timestamp (µs since 2000-01-01) to µs since the Unix epoch.
pub fn pg_to_unix_us(pg_us: i64) -> i64 {
    pg_us.saturating_add(PG_EPOCH_OFFSET_US)
}

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum PgMessage<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin<'a>),
    Relation(Relation<'a>),
    Type(TypeInfo<'a>),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate),
    Message(Message<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: u64,
    /// Unix-epoch microseconds.
    pub commit_ts_us: i64,
    pub xid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    /// LSN of the commit record (equals Begin's `final_lsn`).
    pub commit_lsn: u64,
    /// End of the commit record: the resume point after this transaction.
    pub end_lsn: u64,
    /// Unix-epoch microseconds.
    pub commit_ts_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub commit_lsn: u64,
    pub name: &'a str,
}

/// `pg_class.relreplident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: all columns.
    Full,
    /// `i`: a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            other => return Err(DecodeError::UnknownTag { what: "replica identity", value: other.into() }),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation<'a> {
    pub rel_id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity (flags bit 1).
    pub key: bool,
    /// Declared NOT NULL. pgoutput does not send it: `false` as parsed; the
    /// I/O side sets it from the catalog (`pg_attribute.attnotnull`).
    pub not_null: bool,
    pub name: &'a str,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// The Type message: names a non-built-in type used by a following Relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo<'a> {
    pub oid: u32,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// One column of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TupleValue<'a> {
    Null,
    /// An unchanged TOASTed value the server did not send.
    UnchangedToast,
    /// The type's text output.
    Text(&'a str),
    /// The type's binary send format (the `binary` option).
    Binary(&'a [u8]),
}

pub type Tuple<'a> = Vec<TupleValue<'a>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert<'a> {
    pub rel_id: u32,
    pub new: Tuple<'a>,
}

/// Which old tuple an Update or Delete carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// `K`: the replica identity columns; the others are NULL.
    Key(Tuple<'a>),
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full(Tuple<'a>),
}

impl<'a> OldTuple<'a> {
    pub fn tuple(&self) -> &Tuple<'a> {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    pub rel_id: u32,
    pub old: Option<OldTuple<'a>>,
    pub new: Tuple<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete<'a> {
    pub rel_id: u32,
    pub old: OldTuple<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    pub cascade: bool,
    pub restart_identity: bool,
    pub rel_ids: Vec<u32>,
}

/// A logical decoding message (`pg_logical_emit_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub transactional: bool,
    /// LSN of the message's WAL record.
    pub lsn: u64,
    pub prefix: &'a str,
    pub content: &'a [u8],
}

/// Parses one pgoutput message.
pub fn parse(buf: &[u8]) -> Result<PgMessage<'_>, DecodeError> {
    let mut r = Reader { buf };
    let tag = r.u8("message tag")?;
    let msg = match tag {
        b'B' => PgMessage::Begin(Begin {
            final_lsn: r.u64("begin final lsn")?,
            commit_ts_us: pg_to_unix_us(r.i64("begin timestamp")?),
            xid: r.u32("begin xid")?,
        }),
        b'C' => PgMessage::Commit(Commit {
            flags: r.u8("commit flags")?,
            commit_lsn: r.u64("commit lsn")?,
            end_lsn: r.u64("commit end lsn")?,
            commit_ts_us: pg_to_unix_us(r.i64("commit timestamp")?),
        }),
        b'O' => PgMessage::Origin(Origin { commit_lsn: r.u64("origin lsn")?, name: r.cstr("origin name")? }),
        b'R' => PgMessage::Relation(relation(&mut r)?),
        b'Y' => PgMessage::Type(TypeInfo {
            oid: r.u32("type oid")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => {
            let rel_id = r.u32("insert relation id")?;
            match r.u8("insert tuple kind")? {
                b'N' => PgMessage::Insert(Insert { rel_id, new: tuple(&mut r)? }),
                other => return Err(unknown("insert tuple kind", other)),
            }
        }
        b'U' => {
            let rel_id = r.u32("update relation id")?;
            let (old, new) = match r.u8("update tuple kind")? {
                b'N' => (None, tuple(&mut r)?),
                kind @ (b'K' | b'O') => {
                    let old = old_tuple(kind, tuple(&mut r)?);
                    match r.u8("update new tuple kind")? {
                        b'N' => (Some(old), tuple(&mut r)?),
                        other => return Err(unknown("update new tuple kind", other)),
                    }
                }
                other => return Err(unknown("update tuple kind", other)),
            };
            PgMessage::Update(Update { rel_id, old, new })
        }
        b'D' => {
            let rel_id = r.u32("delete relation id")?;
            let old = match r.u8("delete tuple kind")? {
                kind @ (b'K' | b'O') => old_tuple(kind, tuple(&mut r)?),
                other => return Err(unknown("delete tuple kind", other)),
            };
            PgMessage::Delete(Delete { rel_id, old })
        }
        b'T' => {
            let n = r.u32("truncate relation count")? as usize;
            let options = r.u8("truncate options")?;
            let mut rel_ids = Vec::with_capacity(n.min(r.buf.len() / 4));
            for _ in 0..n {
                rel_ids.push(r.u32("truncate relation id")?);
            }
            PgMessage::Truncate(Truncate { cascade: options & 1 != 0, restart_identity: options & 2 != 0, rel_ids })
        }
        b'M' => {
            let flags = r.u8("message flags")?;
            let lsn = r.u64("message lsn")?;
            let prefix = r.cstr("message prefix")?;
            let len = r.len("message content length")?;
            let content = r.bytes(len, "message content")?;
            PgMessage::Message(Message { transactional: flags & 1 != 0, lsn, prefix, content })
        }
        other => return Err(unknown("pgoutput message", other)),
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::invalid(
            "pgoutput message",
            format!("{} unexpected bytes after a {:?} message", r.buf.len(), char::from(tag)),
        ));
    }
    Ok(msg)
}

fn unknown(what: &'static str, tag: u8) -> DecodeError {
    DecodeError::UnknownTag { what, value: tag.into() }
}

fn old_tuple(kind: u8, tuple: Tuple<'_>) -> OldTuple<'_> {
    if kind == b'K' {
        OldTuple::Key(tuple)
    } else {
        OldTuple::Full(tuple)
    }
}

fn relation<'a>(r: &mut Reader<'a>) -> Result<Relation<'a>, DecodeError> {
    let rel_id = r.u32("relation id")?;
    let namespace = r.cstr("relation namespace")?;
    let name = r.cstr("relation name")?;
    let replica_identity = ReplicaIdentity::from_byte(r.u8("relation replica identity")?)?;
    let n = r.u16("relation column count")? as usize;
    // Each column takes at least 10 bytes (flags, empty name, oid, typmod).
    let mut columns = Vec::with_capacity(n.min(r.buf.len() / 10));
    for _ in 0..n {
        let flags = r.u8("column flags")?;
        columns.push(RelationColumn {
            key: flags & 1 != 0,
            not_null: false,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type oid")?,
            type_modifier: r.i32("column type modifier")?,
        });
    }
    Ok(Relation { rel_id, namespace, name, replica_identity, columns })
}

fn tuple<'a>(r: &mut Reader<'a>) -> Result<Tuple<'a>, DecodeError> {
    let n = r.u16("tuple column count")? as usize;
    // Each column takes at least its kind byte.
    let mut values = Vec::with_capacity(n.min(r.buf.len()));
    for _ in 0..n {
        values.push(match r.u8("tuple column kind")? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::UnchangedToast,
            b't' => {
                let len = r.len("tuple column length")?;
                let bytes = r.bytes(len, "tuple column value")?;
                TupleValue::Text(
                    std::str::from_utf8(bytes)
                        .map_err(|e| DecodeError::invalid("tuple column value", format!("not UTF-8: {e}")))?,
                )
            }
            b'b' => {
                let len = r.len("tuple column length")?;
                TupleValue::Binary(r.bytes(len, "tuple column value")?)
            }
            other => return Err(unknown("tuple column kind", other)),
        });
    }
    Ok(values)
}

/// A cursor over the message bytes; every read checks what is left.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated { what, needed: n - self.buf.len() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// An Int32 length, which must not be negative.
    fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| DecodeError::invalid(what, format!("negative length {n}")))
    }

    /// A NUL-terminated UTF-8 string.
    fn cstr(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let Some(nul) = self.buf.iter().position(|&b| b == 0) else {
            return Err(DecodeError::Truncated { what, needed: 1 });
        };
        let s = self.bytes(nul, what)?;
        self.buf = &self.buf[1..];
        std::str::from_utf8(s).map_err(|e| DecodeError::invalid(what, format!("not UTF-8: {e}")))
    }
}

/// Builds pgoutput messages byte by byte, for tests of this parser and of the decoder.
#[cfg(test)]
pub(crate) mod build {
    use super::PG_EPOCH_OFFSET_US;

    /// One tuple column as the server sends it.
    #[derive(Clone, Copy)]
    pub enum Col<'a> {
        Text(&'a str),
        Null,
        Toast,
    }

    pub struct Msg(Vec<u8>);

    impl Msg {
        pub fn new(tag: u8) -> Self {
            Msg(vec![tag])
        }
        pub fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        pub fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn raw(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
        pub fn cstr(self, s: &str) -> Self {
            self.raw(s.as_bytes()).u8(0)
        }
        /// A Unix-epoch timestamp, sent as PostgreSQL-epoch microseconds.
        pub fn ts(self, unix_us: i64) -> Self {
            self.i64(unix_us - PG_EPOCH_OFFSET_US)
        }
        pub fn tuple(mut self, kind: u8, cols: &[Col<'_>]) -> Self {
            self = self.u8(kind).u16(cols.len() as u16);
            for col in cols {
                self = match col {
                    Col::Text(s) => self.u8(b't').i32(s.len() as i32).raw(s.as_bytes()),
                    Col::Null => self.u8(b'n'),
                    Col::Toast => self.u8(b'u'),
                };
            }
            self
        }
        pub fn done(self) -> Vec<u8> {
            self.0
        }
    }

    pub fn begin(final_lsn: u64, ts_unix_us: i64, xid: u32) -> Vec<u8> {
        Msg::new(b'B').u64(final_lsn).ts(ts_unix_us).u32(xid).done()
    }

    pub fn commit(commit_lsn: u64, end_lsn: u64, ts_unix_us: i64) -> Vec<u8> {
        Msg::new(b'C').u8(0).u64(commit_lsn).u64(end_lsn).ts(ts_unix_us).done()
    }

    pub fn origin(lsn: u64, name: &str) -> Vec<u8> {
        Msg::new(b'O').u64(lsn).cstr(name).done()
    }

    /// `cols`: (key, name, type oid, typmod).
    pub fn relation(rel_id: u32, ns: &str, name: &str, identity: u8, cols: &[(bool, &str, u32, i32)]) -> Vec<u8> {
        let mut m = Msg::new(b'R').u32(rel_id).cstr(ns).cstr(name).u8(identity).u16(cols.len() as u16);
        for &(key, col, oid, typmod) in cols {
            m = m.u8(key.into()).cstr(col).u32(oid).i32(typmod);
        }
        m.done()
    }

    pub fn type_msg(oid: u32, ns: &str, name: &str) -> Vec<u8> {
        Msg::new(b'Y').u32(oid).cstr(ns).cstr(name).done()
    }

    pub fn insert(rel_id: u32, new: &[Col<'_>]) -> Vec<u8> {
        Msg::new(b'I').u32(rel_id).tuple(b'N', new).done()
    }

    /// `old`: (b'K' or b'O', columns).
    pub fn update(rel_id: u32, old: Option<(u8, &[Col<'_>])>, new: &[Col<'_>]) -> Vec<u8> {
        let mut m = Msg::new(b'U').u32(rel_id);
        if let Some((kind, cols)) = old {
            m = m.tuple(kind, cols);
        }
        m.tuple(b'N', new).done()
    }

    pub fn delete(rel_id: u32, kind: u8, old: &[Col<'_>]) -> Vec<u8> {
        Msg::new(b'D').u32(rel_id).tuple(kind, old).done()
    }

    pub fn truncate(options: u8, rel_ids: &[u32]) -> Vec<u8> {
        let mut m = Msg::new(b'T').u32(rel_ids.len() as u32).u8(options);
        for &id in rel_ids {
            m = m.u32(id);
        }
        m.done()
    }

    pub fn message(transactional: bool, lsn: u64, prefix: &str, content: &[u8]) -> Vec<u8> {
        Msg::new(b'M').u8(transactional.into()).u64(lsn).cstr(prefix).i32(content.len() as i32).raw(content).done()
    }
}

#[cfg(test)]
mod tests {
    use super::build::{self, Col, Msg};
    use super::*;

    /// 2024-01-02T03:04:05.123456Z in Unix microseconds.
    const TS: i64 = 1_704_164_645_123_456;

    fn all_kinds() -> Vec<Vec<u8>> {
        let key_old = [Col::Text("1"), Col::Null];
        vec![
            build::begin(0x16B3748, TS, 42),
            build::commit(0x16B3748, 0x16B3780, TS),
            build::origin(7, "node_a"),
            build::relation(16_384, "public", "orders", b'd', &[(true, "id", 23, -1), (false, "note", 25, -1)]),
            build::type_msg(16_400, "public", "mood"),
            build::insert(16_384, &[Col::Text("1"), Col::Text("héllo")]),
            build::update(16_384, None, &[Col::Text("1"), Col::Toast]),
            build::update(16_384, Some((b'K', &key_old)), &[Col::Text("2"), Col::Null]),
            build::update(16_384, Some((b'O', &[Col::Text("1"), Col::Text("a")])), &[Col::Text("1"), Col::Text("b")]),
            build::delete(16_384, b'K', &key_old),
            build::delete(16_384, b'O', &[Col::Text("1"), Col::Null]),
            build::truncate(3, &[16_384, 16_390]),
            build::message(true, 0x100, "outflow", b"\x00\x01bytes"),
            build::message(false, 0x200, "", b""),
        ]
    }

    #[test]
    fn begin_and_commit_convert_the_postgres_epoch() {
        assert_eq!(
            parse(&build::begin(0x16B3748, TS, 42)).unwrap(),
            PgMessage::Begin(Begin { final_lsn: 0x16B3748, commit_ts_us: TS, xid: 42 })
        );
        // 2000-01-01 itself is 0 on the wire.
        let zero = Msg::new(b'B').u64(1).i64(0).u32(1).done();
        let PgMessage::Begin(b) = parse(&zero).unwrap() else { panic!() };
        assert_eq!(b.commit_ts_us, PG_EPOCH_OFFSET_US);
        assert_eq!(
            parse(&build::commit(0x16B3748, 0x16B3780, TS)).unwrap(),
            PgMessage::Commit(Commit { flags: 0, commit_lsn: 0x16B3748, end_lsn: 0x16B3780, commit_ts_us: TS })
        );
    }

    #[test]
    fn relation_carries_columns_key_flags_and_identity() {
        let bytes = build::relation(
            16_384,
            "public",
            "orders",
            b'f',
            &[(true, "id", 23, -1), (false, "amount", 1700, 655_366)],
        );
        let PgMessage::Relation(rel) = parse(&bytes).unwrap() else { panic!() };
        assert_eq!((rel.rel_id, rel.namespace, rel.name), (16_384, "public", "orders"));
        assert_eq!(rel.replica_identity, ReplicaIdentity::Full);
        assert_eq!(
            rel.columns,
            vec![
                RelationColumn { key: true, not_null: false, name: "id", type_oid: 23, type_modifier: -1 },
                RelationColumn { key: false, not_null: false, name: "amount", type_oid: 1700, type_modifier: 655_366 },
            ]
        );
    }

    #[test]
    fn tuples_borrow_text_and_mark_nulls_and_unchanged_toast() {
        let bytes = build::update(5, Some((b'K', &[Col::Text("7"), Col::Null])), &[Col::Text("8"), Col::Toast]);
        let PgMessage::Update(upd) = parse(&bytes).unwrap() else { panic!() };
        assert_eq!(upd.rel_id, 5);
        assert_eq!(upd.old, Some(OldTuple::Key(vec![TupleValue::Text("7"), TupleValue::Null])));
        assert_eq!(upd.new, vec![TupleValue::Text("8"), TupleValue::UnchangedToast]);

        let bytes = build::delete(5, b'O', &[Col::Text(""), Col::Null]);
        let PgMessage::Delete(del) = parse(&bytes).unwrap() else { panic!() };
        assert_eq!(del.old, OldTuple::Full(vec![TupleValue::Text(""), TupleValue::Null]));
    }

    #[test]
    fn truncate_options_and_messages() {
        assert_eq!(
            parse(&build::truncate(3, &[1, 2])).unwrap(),
            PgMessage::Truncate(Truncate { cascade: true, restart_identity: true, rel_ids: vec![1, 2] })
        );
        let PgMessage::Truncate(t) = parse(&build::truncate(0, &[])).unwrap() else { panic!() };
        assert!(!t.cascade && !t.restart_identity && t.rel_ids.is_empty());
        assert_eq!(
            parse(&build::message(true, 0x100, "outflow", b"\x00hi")).unwrap(),
            PgMessage::Message(Message { transactional: true, lsn: 0x100, prefix: "outflow", content: b"\x00hi" })
        );
        assert_eq!(
            parse(&build::origin(9, "node_a")).unwrap(),
            PgMessage::Origin(Origin { commit_lsn: 9, name: "node_a" })
        );
        assert_eq!(
            parse(&build::type_msg(16_400, "public", "mood")).unwrap(),
            PgMessage::Type(TypeInfo { oid: 16_400, namespace: "public", name: "mood" })
        );
    }

    #[test]
    fn every_truncation_of_every_message_is_an_error() {
        for msg in all_kinds() {
            assert!(parse(&msg).is_ok(), "{msg:?}");
            for end in 0..msg.len() {
                assert!(parse(&msg[..end]).is_err(), "prefix {end} of {msg:?} parsed");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for mut msg in all_kinds() {
            msg.push(0);
            assert!(matches!(parse(&msg), Err(DecodeError::Invalid { .. })), "{msg:?}");
        }
    }

    #[test]
    fn malformed_fields_are_errors() {
        let binary = Msg::new(b'I').u32(1).u8(b'N').u16(1).u8(b'b').i32(2).u8(0).done();
        assert!(parse(&binary).is_err(), "a value shorter than its length");
        let negative = Msg::new(b'I').u32(1).u8(b'N').u16(1).u8(b't').i32(-1).done();
        assert!(matches!(parse(&negative), Err(DecodeError::Invalid { .. })));
        let bad_utf8 = Msg::new(b'I').u32(1).u8(b'N').u16(1).u8(b't').i32(1).u8(0xff).done();
        assert!(matches!(parse(&bad_utf8), Err(DecodeError::Invalid { .. })));
        let bad_kind = Msg::new(b'I').u32(1).u8(b'N').u16(1).u8(b'x').done();
        assert!(matches!(parse(&bad_kind), Err(DecodeError::UnknownTag { .. })));
        let insert_with_old = Msg::new(b'I').u32(1).tuple(b'K', &[]).done();
        assert!(matches!(parse(&insert_with_old), Err(DecodeError::UnknownTag { .. })));
        let bad_identity = build::relation(1, "s", "t", b'x', &[]);
        assert!(matches!(parse(&bad_identity), Err(DecodeError::UnknownTag { .. })));
        // Streaming (protocol 2) messages are not requested and not understood.
        for tag in [b'S', b'E', b'c', b'A', b'P', 0] {
            assert!(matches!(parse(&[tag]), Err(DecodeError::UnknownTag { .. })));
        }
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn huge_counts_fail_without_allocating_for_them() {
        let tuple = Msg::new(b'I').u32(1).u8(b'N').u16(u16::MAX).done();
        assert!(matches!(parse(&tuple), Err(DecodeError::Truncated { .. })));
        let trunc = Msg::new(b'T').u32(u32::MAX).u8(0).u32(1).done();
        assert!(matches!(parse(&trunc), Err(DecodeError::Truncated { .. })));
        let content = Msg::new(b'M').u8(0).u64(1).cstr("p").i32(i32::MAX).done();
        assert!(matches!(parse(&content), Err(DecodeError::Truncated { .. })));
        let rel = Msg::new(b'R').u32(1).cstr("s").cstr("t").u8(b'd').u16(u16::MAX).done();
        assert!(matches!(parse(&rel), Err(DecodeError::Truncated { .. })));
    }
}
