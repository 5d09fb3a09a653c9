//! The stateful half of pgoutput decoding: turns the parsed messages of one
//! replication connection into outflow's ordered [`StreamItem`]s.
//!
//! [`PgDecoder`] keeps what pgoutput only says once: the relation cache (rel
//! id → schema, per-column [`PgType`], replica identity), the type registry,
//! and the open transaction (xid, commit LSN, commit time, event counter).
//!
//! Positions (see [`Position`]'s module doc for their meaning):
//! - Begin is `lsn:<commit LSN>` (index 0); each Change and transactional
//!   Message inside it gets `lsn:<commit LSN>:<n>`, n = 1, 2, 3... in stream
//!   order, so a sink can resume in the middle of a transaction; Commit is
//!   `lsn:<end LSN>`, the resume point after it.
//! - A non-transactional Message is sent by the server as soon as its WAL
//!   record is decoded, between transactions. Its LSN `M` is the record's
//!   *end*: every transaction already emitted has a commit end LSN at most
//!   the record's start, below `M - 1`; a later one's commit record starts at
//!   `M` or after — possibly exactly at `M`, so its Begin is `lsn:M` and its
//!   changes `lsn:M:1`... The message is therefore treated as a one-event
//!   transaction at `M - 1` and gets `lsn:<M-1>:1` (and a snapshot chunk
//!   placed at it the indexes after): strictly after everything before it
//!   and before everything later. Acknowledging it acknowledges `M - 1`, so
//!   the server need not resend it; if it does, the sink's offset filter
//!   drops it. Protocol 1 never interleaves such a message with a
//!   transaction's changes; should one arrive inside a transaction anyway,
//!   it takes the transaction's next index, like a transactional one. Its
//!   `source.commit_ts_us` is 0: the server sends no time for it.
//!
//! Relations: the server sends a Relation message before the first change of
//! a table in each session and again whenever its cache is invalidated (any
//! ALTER, but also unrelated invalidations), so an identical re-send is
//! normal: it changes nothing and emits nothing. The first sight of a rel id
//! emits a `SchemaChange` at version 1; a different shape (columns added,
//! dropped, renamed, retyped, key changed, table renamed) a new version. A
//! decoder starts empty, so after a process restart every table is announced
//! again at version 1. pgoutput does not send nullability: a column is
//! nullable unless the I/O side marked it `not_null` from the catalog. Key flags are the replica identity's columns: the
//! primary key under `DEFAULT`, the index's columns under `USING INDEX`,
//! *every* column under `FULL`, none under `NOTHING`. Partitioned tables:
//! with `publish_via_partition_root` the server already reports changes as
//! the root table's, with the root's rel id; without it, as the partition's.
//!
//! Old rows: an Update carries no old tuple under `DEFAULT`/`INDEX` identity
//! unless the key changed (then `before` holds the key columns and NULL for
//! the rest, as Debezium's does), the whole old row under `FULL`, and
//! `before` is `None` otherwise. A Delete always carries the key (or the whole
//! row under `FULL`). PostgreSQL refuses UPDATE and DELETE on a table that
//! publishes them and has identity `NOTHING` (or `DEFAULT` without a primary
//! key), so such changes never reach the stream.
//!
//! TOAST: an unchanged TOASTed column (`u`) the server did not send becomes
//! `Value::Unchanged`. When an Update's old tuple has that column's value
//! (identity `FULL`: the server sends the old row detoasted), the value is
//! copied into `after`, as Debezium's `PostgresChangeRecordEmitter` does
//! (DBZ-3835); otherwise `after` keeps `Unchanged`, never NULL.
//!
//! Origin messages (a transaction replicated here from another node) are
//! parsed and ignored; Type messages name user types for `type_name`.
//!
//! Errors are `DecodeError::State` when the stream contradicts the state (a
//! change outside Begin/Commit, an unknown rel id, a tuple whose column count
//! differs from its relation's). On any error nothing is pushed and the
//! decoder's state is unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pg_type_registry::{self, PgType, TypeRegistry};
use crate::pgoutput::{self, OldTuple, PgMessage, ReplicaIdentity, TupleValue};
use crate::pgtypes;
use crate::DecodeError;
use outflow_model::{
    ChangeEvent, ColumnSchema, LogicalMessage, Op, Position, Row, SchemaChange, SourceInfo, StreamItem, TableId,
    TableSchema, Value,
};

#[derive(Debug, Clone)]
struct CachedRelation {
    schema: Arc<TableSchema>,
    types: Vec<PgType>,
    replica_identity: ReplicaIdentity,
}

#[derive(Debug, Clone, Copy)]
struct Transaction {
    xid: u32,
    final_lsn: u64,
    commit_ts_us: i64,
    /// Index of the last event emitted in this transaction.
    index: u32,
}

/// Decodes one replication connection's pgoutput stream.
#[derive(Debug, Clone, Default)]
pub struct PgDecoder {
    types: TypeRegistry,
    relations: HashMap<u32, CachedRelation>,
    tx: Option<Transaction>,
    last_commit_lsn: Option<u64>,
}

impl PgDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn types(&self) -> &TypeRegistry {
        &self.types
    }

    pub fn types_mut(&mut self) -> &mut TypeRegistry {
        &mut self.types
    }

    /// The current schema of a relation the stream has described.
    pub fn relation(&self, rel_id: u32) -> Option<&Arc<TableSchema>> {
        self.relations.get(&rel_id).map(|r| &r.schema)
    }

    /// The replica identity the server last reported for a relation.
    pub fn replica_identity(&self, rel_id: u32) -> Option<ReplicaIdentity> {
        self.relations.get(&rel_id).map(|r| r.replica_identity)
    }

    /// Whether a Begin has been decoded without its Commit.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Column type OIDs of a Relation message that `reg` does not know, each
    /// once, in column order; empty for every other message. The caller looks
    /// them up in `pg_type` and registers them before decoding the message.
    pub fn unknown_types(msg: &PgMessage<'_>, reg: &TypeRegistry) -> Vec<u32> {
        let mut unknown = Vec::new();
        if let PgMessage::Relation(rel) = msg {
            for col in &rel.columns {
                if !reg.is_known(col.type_oid) && !unknown.contains(&col.type_oid) {
                    unknown.push(col.type_oid);
                }
            }
        }
        unknown
    }

    /// Feeds one XLogData payload; `wal_start` is the XLogData header's start
    /// LSN (for a change, the LSN of its WAL record: Debezium's `source.lsn`).
    /// Pushes zero or more items to `out`.
    pub fn decode(&mut self, wal_start: u64, data: &[u8], out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let msg = pgoutput::parse(data)?;
        self.decode_message(wal_start, msg, out)
    }

    /// Like [`decode`](Self::decode), for a message already parsed.
    pub fn decode_message(
        &mut self,
        wal_start: u64,
        msg: PgMessage<'_>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        match msg {
            PgMessage::Begin(b) => {
                if let Some(tx) = self.tx {
                    return Err(DecodeError::State(format!(
                        "begin of transaction {} while transaction {} is still open",
                        b.xid, tx.xid
                    )));
                }
                self.tx =
                    Some(Transaction { xid: b.xid, final_lsn: b.final_lsn, commit_ts_us: b.commit_ts_us, index: 0 });
                out.push(StreamItem::Begin {
                    tx_id: Some(b.xid.into()),
                    commit_ts_us: b.commit_ts_us,
                    position: Position::pg(b.final_lsn),
                });
            }
            PgMessage::Commit(c) => {
                let tx = self.tx.ok_or_else(|| {
                    DecodeError::State(format!(
                        "commit at {} without a begin",
                        outflow_model::position::format_lsn(c.commit_lsn)
                    ))
                })?;
                if c.commit_lsn != tx.final_lsn {
                    return Err(DecodeError::State(format!(
                        "commit at {} ends transaction {} announced to commit at {}",
                        outflow_model::position::format_lsn(c.commit_lsn),
                        tx.xid,
                        outflow_model::position::format_lsn(tx.final_lsn)
                    )));
                }
                self.tx = None;
                self.last_commit_lsn = Some(c.commit_lsn);
                out.push(StreamItem::Commit {
                    tx_id: Some(tx.xid.into()),
                    commit_ts_us: tx.commit_ts_us,
                    position: Position::pg(c.end_lsn),
                });
            }
            PgMessage::Origin(_) => {}
            PgMessage::Type(t) => self.types.register_name(t.oid, t.name),
            PgMessage::Relation(rel) => self.describe_relation(rel, out),
            PgMessage::Insert(ins) => {
                let rel = self.cached(ins.rel_id, "insert")?;
                let after = self.row(rel, &ins.new)?;
                self.push_change(wal_start, Op::Create, ins.rel_id, None, Some(after), out)?;
            }
            PgMessage::Update(upd) => {
                let rel = self.cached(upd.rel_id, "update")?;
                let before = upd.old.map(|old| self.row(rel, old.tuple())).transpose()?;
                let mut after = self.row(rel, &upd.new)?;
                if let Some(before) = &before {
                    fill_unchanged_from_old(&mut after, before);
                }
                self.push_change(wal_start, Op::Update, upd.rel_id, before, Some(after), out)?;
            }
            PgMessage::Delete(del) => {
                let rel = self.cached(del.rel_id, "delete")?;
                let before = match &del.old {
                    OldTuple::Key(t) | OldTuple::Full(t) => self.row(rel, t)?,
                };
                self.push_change(wal_start, Op::Delete, del.rel_id, Some(before), None, out)?;
            }
            PgMessage::Truncate(t) => {
                for rel_id in &t.rel_ids {
                    self.cached(*rel_id, "truncate")?;
                }
                let mut events = Vec::with_capacity(t.rel_ids.len());
                let saved = self.tx;
                for rel_id in &t.rel_ids {
                    if let Err(e) = self.push_change(wal_start, Op::Truncate, *rel_id, None, None, &mut events) {
                        self.tx = saved;
                        return Err(e);
                    }
                }
                out.append(&mut events);
            }
            PgMessage::Message(m) => self.message(wal_start, m, out)?,
        }
        Ok(())
    }

    fn describe_relation(&mut self, rel: pgoutput::Relation<'_>, out: &mut Vec<StreamItem>) {
        let namespace = if rel.namespace.is_empty() { "pg_catalog" } else { rel.namespace };
        let id = TableId::new(namespace, rel.name);
        let columns: Vec<ColumnSchema> = rel
            .columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.name.to_owned(),
                ty: pg_type_registry::column_type(&self.types.resolve(c.type_oid), c.type_modifier),
                type_name: self.types.type_name(c.type_oid),
                type_id: c.type_oid,
                type_modifier: c.type_modifier,
                nullable: !c.not_null,
                key: c.key,
            })
            .collect();
        let types = rel.columns.iter().map(|c| self.types.resolve(c.type_oid)).collect();
        let schema = match self.relations.get(&rel.rel_id) {
            Some(cached) if cached.schema.id == id && cached.schema.columns == columns => cached.schema.clone(),
            previous => {
                let version = previous.map_or(1, |p| p.schema.version.saturating_add(1));
                let schema = Arc::new(TableSchema { id, version, columns });
                out.push(StreamItem::SchemaChange(SchemaChange::shape(schema.clone())));
                schema
            }
        };
        self.relations.insert(rel.rel_id, CachedRelation { schema, types, replica_identity: rel.replica_identity });
    }

    fn cached(&self, rel_id: u32, what: &str) -> Result<&CachedRelation, DecodeError> {
        self.relations.get(&rel_id).ok_or_else(|| {
            DecodeError::State(format!("{what} for relation id {rel_id}, which no Relation message described"))
        })
    }

    /// Decodes a tuple against its relation's column types.
    fn row(&self, rel: &CachedRelation, tuple: &[TupleValue<'_>]) -> Result<Row, DecodeError> {
        let columns = &rel.schema.columns;
        if tuple.len() != columns.len() {
            return Err(DecodeError::State(format!(
                "tuple of {} has {} columns, its relation has {}",
                rel.schema.id,
                tuple.len(),
                columns.len()
            )));
        }
        tuple
            .iter()
            .zip(columns.iter().zip(&rel.types))
            .map(|(value, (column, ty))| {
                let parsed = match value {
                    TupleValue::Null => Ok(Value::Null),
                    TupleValue::UnchangedToast => Ok(Value::Unchanged),
                    TupleValue::Text(text) => pgtypes::parse_text(ty, text),
                    TupleValue::Binary(bytes) => pgtypes::binary::parse_binary(ty, bytes),
                };
                parsed.map_err(|e| {
                    let column = format!("{}.{} ({})", rel.schema.id, column.name, column.type_name);
                    DecodeError::invalid("column value", format!("{column}: {e}"))
                })
            })
            .collect()
    }

    /// The next event position of the open transaction, and its source info.
    fn next_in_tx(&mut self, wal_start: u64, what: &str) -> Result<(Position, SourceInfo), DecodeError> {
        let tx = self.tx.as_mut().ok_or_else(|| {
            DecodeError::State(format!(
                "{what} at {} outside a transaction",
                outflow_model::position::format_lsn(wal_start)
            ))
        })?;
        tx.index = tx
            .index
            .checked_add(1)
            .ok_or_else(|| DecodeError::State(format!("transaction {} has more than {} events", tx.xid, u32::MAX)))?;
        let source = SourceInfo {
            commit_ts_us: tx.commit_ts_us,
            tx_id: Some(tx.xid.into()),
            lsn: Some(wal_start),
            last_commit_lsn: self.last_commit_lsn,
            snapshot: false,
            binlog: None,
        };
        Ok((Position::Pg { lsn: tx.final_lsn, index: tx.index }, source))
    }

    fn push_change(
        &mut self,
        wal_start: u64,
        op: Op,
        rel_id: u32,
        before: Option<Row>,
        after: Option<Row>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let table = self.cached(rel_id, op_name(op))?.schema.clone();
        let (position, source) = self.next_in_tx(wal_start, op_name(op))?;
        out.push(StreamItem::Change(ChangeEvent { op, table, before, after, source, position }));
        Ok(())
    }

    fn message(
        &mut self,
        wal_start: u64,
        m: pgoutput::Message<'_>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
        let (position, source) = if m.transactional || self.tx.is_some() {
            self.next_in_tx(wal_start, "transactional message")?
        } else {
            let source = SourceInfo {
                commit_ts_us: 0,
                tx_id: None,
                lsn: Some(m.lsn),
                last_commit_lsn: self.last_commit_lsn,
                snapshot: false,
                binlog: None,
            };
            (Position::Pg { lsn: m.lsn.saturating_sub(1), index: 1 }, source)
        };
        out.push(StreamItem::Message(LogicalMessage {
            transactional: m.transactional,
            prefix: m.prefix.to_owned(),
            content: m.content.to_vec(),
            source,
            position,
        }));
        Ok(())
    }
}

/// Replaces each `Unchanged` in `after` by the old row's value when the old
/// row has one (not NULL: under a key-only old tuple NULL means "not sent").
fn fill_unchanged_from_old(after: &mut Row, before: &Row) {
    for (new, old) in after.iter_mut().zip(before) {
        if *new == Value::Unchanged && !matches!(old, Value::Null | Value::Unchanged) {
            *new = old.clone();
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Create => "insert",
        Op::Update => "update",
        Op::Delete => "delete",
        Op::Truncate => "truncate",
    }
}

#[cfg(test)]
mod tests;
