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
//!   record is decoded, between transactions, at the message's own LSN `M`.
//!   Every transaction already emitted committed before `M`, so its commit's
//!   end LSN is at most `M`; every later one commits after `M`. The message
//!   is treated as a one-event transaction at `M` and gets `lsn:M:1`: it sorts
//!   after a Commit whose end LSN is exactly `M` (a sink that stored that
//!   commit still delivers the message on restart), and before everything
//!   later. Acknowledging `M` makes the server resend it; the sink's offset
//!   filter drops it. Protocol 1 never interleaves such a message with a
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
//! again at version 1. pgoutput does not send nullability: every column is
//! `nullable: true`. Key flags are the replica identity's columns: the
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
//! Errors are `DecodeError::State` when the stream contradicts the state (a
//! change outside Begin/Commit, an unknown rel id, a tuple whose column count
//! differs from its relation's). On any error nothing is pushed and the
//! decoder's state is unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pg_type_registry::{PgType, TypeRegistry};
use crate::pgoutput::{self, OldTuple, PgMessage, ReplicaIdentity, TupleValue};
use crate::pgtypes;
use crate::{
    ChangeEvent, ColumnSchema, DecodeError, LogicalMessage, Op, Position, Row, SourceInfo,
    StreamItem, TableId, TableSchema, Value,
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
    pub fn decode(
        &mut self,
        wal_start: u64,
        data: &[u8],
        out: &mut Vec<StreamItem>,
    ) -> Result<(), DecodeError> {
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
                self.tx = Some(Transaction {
                    xid: b.xid,
                    final_lsn: b.final_lsn,
                    commit_ts_us: b.commit_ts_us,
                    index: 0,
                });
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
                        crate::position::format_lsn(c.commit_lsn)
                    ))
                })?;
                if c.commit_lsn != tx.final_lsn {
                    return Err(DecodeError::State(format!(
                        "commit at {} ends transaction {} announced to commit at {}",
                        crate::position::format_lsn(c.commit_lsn),
                        tx.xid,
                        crate::position::format_lsn(tx.final_lsn)
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
                type_name: self.types.type_name(c.type_oid),
                type_id: c.type_oid,
                type_modifier: c.type_modifier,
                nullable: true,
                key: c.key,
            })
            .collect();
        let types = rel.columns.iter().map(|c| self.types.resolve(c.type_oid)).collect();
        let schema = match self.relations.get(&rel.rel_id) {
            Some(cached) if cached.schema.id == id && cached.schema.columns == columns => {
                cached.schema.clone()
            }
            previous => {
                let version = previous.map_or(1, |p| p.schema.version.saturating_add(1));
                let schema = Arc::new(TableSchema { id, version, columns });
                out.push(StreamItem::SchemaChange(schema.clone()));
                schema
            }
        };
        self.relations.insert(
            rel.rel_id,
            CachedRelation { schema, types, replica_identity: rel.replica_identity },
        );
    }

    fn cached(&self, rel_id: u32, what: &str) -> Result<&CachedRelation, DecodeError> {
        self.relations.get(&rel_id).ok_or_else(|| {
            DecodeError::State(format!(
                "{what} for relation id {rel_id}, which no Relation message described"
            ))
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
            .map(|(value, (column, ty))| match value {
                TupleValue::Null => Ok(Value::Null),
                TupleValue::UnchangedToast => Ok(Value::Unchanged),
                TupleValue::Text(text) => pgtypes::parse_text(ty, text).map_err(|e| {
                    DecodeError::invalid(
                        "column value",
                        format!("{}.{} ({}): {e}", rel.schema.id, column.name, column.type_name),
                    )
                }),
            })
            .collect()
    }

    /// The next event position of the open transaction, and its source info.
    fn next_in_tx(&mut self, wal_start: u64, what: &str) -> Result<(Position, SourceInfo), DecodeError> {
        let tx = self.tx.as_mut().ok_or_else(|| {
            DecodeError::State(format!(
                "{what} at {} outside a transaction",
                crate::position::format_lsn(wal_start)
            ))
        })?;
        tx.index = tx.index.checked_add(1).ok_or_else(|| {
            DecodeError::State(format!("transaction {} has more than {} events", tx.xid, u32::MAX))
        })?;
        let source = SourceInfo {
            commit_ts_us: tx.commit_ts_us,
            tx_id: Some(tx.xid.into()),
            lsn: Some(wal_start),
            last_commit_lsn: self.last_commit_lsn,
            snapshot: false,
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
            };
            (Position::Pg { lsn: m.lsn, index: 1 }, source)
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
mod tests {
    use super::*;
    use crate::pgoutput::build::{self, Col};

    const TS: i64 = 1_704_164_645_123_456;
    const ORDERS: u32 = 16_384;
    const ITEMS: u32 = 16_390;

    /// What pgtypes makes of a built-in type's text: the tests check wiring, not parsing.
    fn v(oid: u32, text: &str) -> Value {
        pgtypes::parse_text(&PgType::Builtin(oid), text).unwrap()
    }

    fn orders_relation(identity: u8) -> Vec<u8> {
        build::relation(ORDERS, "public", "orders", identity, &[(true, "id", 23, -1), (false, "note", 25, -1)])
    }

    /// Feeds messages, each at its own WAL start (0x1000, 0x1100, ...), and returns every item.
    fn feed(dec: &mut PgDecoder, msgs: &[Vec<u8>]) -> Vec<StreamItem> {
        let mut out = Vec::new();
        for (i, msg) in msgs.iter().enumerate() {
            dec.decode(0x1000 + 0x100 * i as u64, msg, &mut out).unwrap();
        }
        out
    }

    fn changes(items: &[StreamItem]) -> Vec<&ChangeEvent> {
        items.iter().filter_map(|i| if let StreamItem::Change(c) = i { Some(c) } else { None }).collect()
    }

    /// A decoder that has seen the orders relation and is inside transaction 700 committing at 0x5000.
    fn in_transaction() -> PgDecoder {
        let mut dec = PgDecoder::new();
        feed(&mut dec, &[build::begin(0x5000, TS, 700), orders_relation(b'd')]);
        dec
    }

    #[test]
    fn a_transaction_of_insert_update_delete() {
        let mut dec = PgDecoder::new();
        let items = feed(
            &mut dec,
            &[
                build::begin(0x5000, TS, 700),
                orders_relation(b'd'),
                build::insert(ORDERS, &[Col::Text("1"), Col::Text("new")]),
                build::update(ORDERS, None, &[Col::Text("1"), Col::Text("changed")]),
                build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null]),
                build::commit(0x5000, 0x5030, TS),
            ],
        );
        assert_eq!(items.len(), 6);
        assert_eq!(items[0], StreamItem::Begin { tx_id: Some(700), commit_ts_us: TS, position: Position::pg(0x5000) });
        let StreamItem::SchemaChange(schema) = &items[1] else { panic!("{:?}", items[1]) };
        assert_eq!(schema.id, TableId::new("public", "orders"));
        assert_eq!(schema.version, 1);
        assert_eq!(items[5], StreamItem::Commit { tx_id: Some(700), commit_ts_us: TS, position: Position::pg(0x5030) });

        let c = changes(&items);
        assert_eq!(c.iter().map(|c| c.op).collect::<Vec<_>>(), [Op::Create, Op::Update, Op::Delete]);
        for (n, change) in c.iter().enumerate() {
            assert_eq!(change.position, Position::Pg { lsn: 0x5000, index: n as u32 + 1 });
            assert!(Arc::ptr_eq(&change.table, schema));
            assert_eq!(
                change.source,
                SourceInfo {
                    commit_ts_us: TS,
                    tx_id: Some(700),
                    lsn: Some(0x1200 + 0x100 * n as u64),
                    last_commit_lsn: None,
                    snapshot: false
                }
            );
        }
        assert_eq!(c[0].before, None);
        assert_eq!(c[0].after, Some(vec![v(23, "1"), v(25, "new")]));
        // No old tuple under the default identity when the key did not change.
        assert_eq!(c[1].before, None);
        assert_eq!(c[1].after, Some(vec![v(23, "1"), v(25, "changed")]));
        // A delete's key-only old tuple: key filled, the rest null.
        assert_eq!(c[2].before, Some(vec![v(23, "1"), Value::Null]));
        assert_eq!(c[2].after, None);
        assert!(!dec.in_transaction());
    }

    #[test]
    fn the_next_transaction_remembers_the_last_commit_and_restarts_its_index() {
        let mut dec = in_transaction();
        let items = feed(
            &mut dec,
            &[
                build::insert(ORDERS, &[Col::Text("1"), Col::Null]),
                build::commit(0x5000, 0x5030, TS),
                build::begin(0x6000, TS + 1, 701),
                build::insert(ORDERS, &[Col::Text("2"), Col::Null]),
                build::commit(0x6000, 0x6030, TS + 1),
            ],
        );
        let c = changes(&items);
        assert_eq!(c[0].source.last_commit_lsn, None);
        assert_eq!(c[1].source.last_commit_lsn, Some(0x5000));
        assert_eq!(c[1].position, Position::Pg { lsn: 0x6000, index: 1 });
        assert_eq!(c[1].source.tx_id, Some(701));
        // Positions of the whole stream only ever increase.
        let positions: Vec<Position> = items.iter().map(StreamItem::position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn a_changed_key_and_a_full_identity_send_the_old_row() {
        let mut dec = in_transaction();
        let items = feed(
            &mut dec,
            &[
                build::update(ORDERS, Some((b'K', &[Col::Text("1"), Col::Null])), &[Col::Text("2"), Col::Text("x")]),
                orders_relation(b'f'),
                build::update(ORDERS, Some((b'O', &[Col::Text("2"), Col::Text("x")])), &[Col::Text("2"), Col::Text("y")]),
                build::delete(ORDERS, b'O', &[Col::Text("2"), Col::Text("y")]),
            ],
        );
        let c = changes(&items);
        assert_eq!(c[0].before, Some(vec![v(23, "1"), Value::Null]));
        assert_eq!(c[1].before, Some(vec![v(23, "2"), v(25, "x")]));
        assert_eq!(c[2].before, Some(vec![v(23, "2"), v(25, "y")]));
        assert_eq!(dec.replica_identity(ORDERS), Some(ReplicaIdentity::Full));
    }

    #[test]
    fn unchanged_toast_is_taken_from_the_old_row_when_it_was_sent() {
        let mut dec = in_transaction();
        let items = feed(
            &mut dec,
            &[
                build::update(ORDERS, None, &[Col::Text("1"), Col::Toast]),
                // Key changed: the key-only old tuple's NULL means "not sent", not a value.
                build::update(ORDERS, Some((b'K', &[Col::Text("1"), Col::Null])), &[Col::Text("2"), Col::Toast]),
                // REPLICA IDENTITY FULL: the server sends the old row detoasted.
                build::update(ORDERS, Some((b'O', &[Col::Text("2"), Col::Text("big")])), &[Col::Text("2"), Col::Toast]),
            ],
        );
        let c = changes(&items);
        assert_eq!(c[0].after, Some(vec![v(23, "1"), Value::Unchanged]));
        assert_eq!(c[1].after, Some(vec![v(23, "2"), Value::Unchanged]));
        assert_eq!(c[2].before, Some(vec![v(23, "2"), v(25, "big")]));
        assert_eq!(c[2].after, Some(vec![v(23, "2"), v(25, "big")]));
    }

    #[test]
    fn schemas_are_versioned_only_when_their_shape_changes() {
        let mut dec = in_transaction();
        let v1 = dec.relation(ORDERS).unwrap().clone();
        // The server re-sends Relation after reconnects and cache invalidations.
        assert!(feed(&mut dec, &[orders_relation(b'd')]).is_empty());
        assert!(Arc::ptr_eq(dec.relation(ORDERS).unwrap(), &v1));

        let added = build::relation(
            ORDERS,
            "public",
            "orders",
            b'd',
            &[(true, "id", 23, -1), (false, "note", 25, -1), (false, "qty", 21, -1)],
        );
        let items = feed(&mut dec, &[added.clone(), build::insert(ORDERS, &[Col::Text("1"), Col::Null, Col::Text("3")])]);
        let StreamItem::SchemaChange(v2) = &items[0] else { panic!("{:?}", items[0]) };
        assert_eq!(v2.version, 2);
        assert_eq!(v2.columns[2].name, "qty");
        assert_eq!(v2.columns[2].type_name, "int2");
        assert!(Arc::ptr_eq(&changes(&items)[0].table, v2));
        assert!(feed(&mut dec, &[added]).is_empty());

        // A retyped column is a new version too.
        let retyped = build::relation(
            ORDERS,
            "public",
            "orders",
            b'd',
            &[(true, "id", 20, -1), (false, "note", 25, -1), (false, "qty", 21, -1)],
        );
        let StreamItem::SchemaChange(v3) = &feed(&mut dec, &[retyped])[0] else { panic!() };
        assert_eq!((v3.version, v3.columns[0].type_name.as_str()), (3, "int8"));
        // Old events keep the schema they were decoded with.
        assert_eq!(v1.version, 1);
        assert_eq!(v1.columns.len(), 2);
    }

    #[test]
    fn relation_columns_become_the_table_schema() {
        let mut dec = PgDecoder::new();
        let items = feed(
            &mut dec,
            &[
                build::type_msg(16_500, "public", "mood"),
                build::relation(77, "", "pg_thing", b'i', &[(true, "m", 16_500, -1), (false, "tags", 1009, -1), (false, "amount", 1700, 655_366)]),
            ],
        );
        let StreamItem::SchemaChange(s) = &items[0] else { panic!() };
        assert_eq!(s.id, TableId::new("pg_catalog", "pg_thing"));
        let names: Vec<(&str, &str, u32, i32, bool, bool)> = s
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_name.as_str(), c.type_id, c.type_modifier, c.key, c.nullable))
            .collect();
        assert_eq!(
            names,
            [
                ("m", "mood", 16_500, -1, true, true),
                ("tags", "_text", 1009, -1, false, true),
                ("amount", "numeric", 1700, 655_366, false, true)
            ]
        );
        assert_eq!(s.key_indexes().collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn unknown_user_types_are_reported_then_decoded_as_registered() {
        let rel = build::relation(ORDERS, "public", "orders", b'd', &[(true, "id", 23, -1), (false, "mood", 16_500, -1), (false, "moods", 16_499, -1), (false, "again", 16_500, -1)]);
        let mut dec = PgDecoder::new();
        let msg = pgoutput::parse(&rel).unwrap();
        assert_eq!(PgDecoder::unknown_types(&msg, dec.types()), [16_500, 16_499]);
        assert!(PgDecoder::unknown_types(&pgoutput::parse(&build::begin(1, 0, 1)).unwrap(), dec.types()).is_empty());

        dec.types_mut().register(16_500, PgType::Enum);
        dec.types_mut().register(16_499, PgType::Array(Box::new(PgType::Enum)));
        assert!(PgDecoder::unknown_types(&msg, dec.types()).is_empty());
        let items = feed(
            &mut dec,
            &[
                build::begin(0x5000, TS, 1),
                rel,
                build::insert(ORDERS, &[Col::Text("1"), Col::Text("happy"), Col::Text("{happy,sad}"), Col::Null]),
            ],
        );
        let after = changes(&items)[0].after.clone().unwrap();
        assert_eq!(after[1], pgtypes::parse_text(&PgType::Enum, "happy").unwrap());
        assert_eq!(after[2], pgtypes::parse_text(&PgType::Array(Box::new(PgType::Enum)), "{happy,sad}").unwrap());
    }

    #[test]
    fn truncate_is_one_event_per_table() {
        let mut dec = in_transaction();
        let items = feed(
            &mut dec,
            &[
                build::relation(ITEMS, "public", "items", b'd', &[(true, "id", 23, -1)]),
                build::truncate(1, &[ORDERS, ITEMS]),
            ],
        );
        let c = changes(&items);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].op, c[0].table.id.name.as_str(), c[0].position), (Op::Truncate, "orders", Position::Pg { lsn: 0x5000, index: 1 }));
        assert_eq!((c[1].op, c[1].table.id.name.as_str(), c[1].position), (Op::Truncate, "items", Position::Pg { lsn: 0x5000, index: 2 }));
        assert!(c.iter().all(|c| c.before.is_none() && c.after.is_none()));
    }

    #[test]
    fn logical_messages_inside_and_between_transactions() {
        let mut dec = in_transaction();
        let items = feed(
            &mut dec,
            &[
                build::insert(ORDERS, &[Col::Text("1"), Col::Null]),
                build::message(true, 0x4800, "app", b"in tx"),
                build::commit(0x5000, 0x5030, TS),
                build::message(false, 0x5030, "app", b"between"),
                build::origin(0x10, "upstream"),
                build::begin(0x6000, TS, 701),
                build::commit(0x6000, 0x6030, TS),
            ],
        );
        let msgs: Vec<&LogicalMessage> =
            items.iter().filter_map(|i| if let StreamItem::Message(m) = i { Some(m) } else { None }).collect();
        assert_eq!(msgs[0].position, Position::Pg { lsn: 0x5000, index: 2 });
        assert_eq!((msgs[0].transactional, msgs[0].prefix.as_str(), msgs[0].content.as_slice()), (true, "app", &b"in tx"[..]));
        assert_eq!(msgs[0].source.tx_id, Some(700));
        // Right after a commit whose end LSN is the message's own LSN, and still after it.
        assert_eq!(msgs[1].position, Position::Pg { lsn: 0x5030, index: 1 });
        assert!(msgs[1].position > Position::pg(0x5030));
        assert_eq!((msgs[1].source.tx_id, msgs[1].source.lsn, msgs[1].source.last_commit_lsn), (None, Some(0x5030), Some(0x5000)));
        let positions: Vec<Position> = items.iter().map(StreamItem::position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn changes_that_contradict_the_stream_state_are_errors() {
        let mut fresh = PgDecoder::new();
        feed(&mut fresh, &[orders_relation(b'd')]);
        let cases: Vec<(&str, PgDecoder, Vec<u8>)> = vec![
            ("insert outside a transaction", fresh.clone(), build::insert(ORDERS, &[Col::Text("1"), Col::Null])),
            ("truncate outside a transaction", fresh.clone(), build::truncate(0, &[ORDERS])),
            ("transactional message outside", fresh.clone(), build::message(true, 1, "p", b"")),
            ("commit without begin", fresh.clone(), build::commit(0x5000, 0x5030, TS)),
            ("unknown relation", in_transaction(), build::insert(99, &[Col::Text("1")])),
            ("truncate of an unknown relation", in_transaction(), build::truncate(0, &[ORDERS, 99])),
            ("too few columns", in_transaction(), build::insert(ORDERS, &[Col::Text("1")])),
            ("too many old columns", in_transaction(), build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null, Col::Null])),
            ("nested begin", in_transaction(), build::begin(0x6000, TS, 701)),
            ("commit of another lsn", in_transaction(), build::commit(0x5001, 0x5030, TS)),
        ];
        for (what, mut dec, msg) in cases {
            let mut out = Vec::new();
            let err = dec.decode(0x1000, &msg, &mut out).expect_err(what);
            assert!(matches!(err, DecodeError::State(_)), "{what}: {err}");
            assert!(out.is_empty(), "{what}: pushed {out:?}");
        }
    }

    #[test]
    fn a_failed_message_leaves_the_transaction_as_it_was() {
        let mut dec = in_transaction();
        let mut out = Vec::new();
        assert!(dec.decode(0x1000, &build::truncate(0, &[ORDERS, 99]), &mut out).is_err());
        assert!(dec.decode(0x1000, &build::insert(ORDERS, &[Col::Text("1")]), &mut out).is_err());
        let items = feed(&mut dec, &[build::insert(ORDERS, &[Col::Text("1"), Col::Null])]);
        assert_eq!(changes(&items)[0].position, Position::Pg { lsn: 0x5000, index: 1 });
    }

    #[test]
    fn truncated_messages_never_panic_the_decoder() {
        let msgs = [
            build::begin(0x6000, TS, 701),
            orders_relation(b'f'),
            build::insert(ORDERS, &[Col::Text("1"), Col::Text("x")]),
            build::update(ORDERS, Some((b'O', &[Col::Text("1"), Col::Null])), &[Col::Text("1"), Col::Toast]),
            build::delete(ORDERS, b'K', &[Col::Text("1"), Col::Null]),
            build::truncate(3, &[ORDERS]),
            build::message(false, 9, "p", b"c"),
            build::commit(0x5000, 0x5030, TS),
        ];
        for msg in &msgs {
            for end in 0..msg.len() {
                let mut dec = in_transaction();
                let mut out = Vec::new();
                assert!(dec.decode(0x1000, &msg[..end], &mut out).is_err());
                assert!(out.is_empty());
            }
        }
    }
}
