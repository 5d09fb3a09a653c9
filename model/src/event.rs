//! The change-event model: what every source produces and every sink consumes.
//!
//! A source emits a stream of [`StreamItem`]s in commit order. Changes carry
//! their table's schema as an `Arc<TableSchema>`, so a sink always knows the
//! column names and types that were current when the change was made; a schema
//! change produces a new `TableSchema` with a higher `version`.

use std::sync::Arc;

#[cfg(doc)]
use crate::Dialect;
use crate::{ColumnType, Position, Value};

/// A table's identity as users write it: `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableId { schema: schema.into(), name: name.into() }
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One column of a table: its name, logical type, and the source's own
/// description of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    /// What the column holds; sinks decide how to write it from this alone.
    pub ty: ColumnType,
    /// The source's type name (`numeric`, `timestamptz`, `_int4`, an enum's
    /// name; MySQL's `int unsigned`...), in the source's [`Dialect`]: for
    /// display, the schema history, and DDL in a database of the same kind.
    pub type_name: String,
    /// The source's type id (PostgreSQL type OID; MySQL's binlog column
    /// type), recorded in the schema history. Sinks do not render by it;
    /// only the PostgreSQL apply sink copying a PostgreSQL source reads it,
    /// to tell built-in types (which exist in its database) from user types.
    pub type_id: u32,
    /// The source's type modifier, -1 when none: PostgreSQL's atttypmod; for
    /// MySQL the fractional-second precision of temporal types, BIT's width,
    /// and DECIMAL(p,s) encoded as PostgreSQL encodes numeric(p,s)
    /// ([`numeric_typmod`]). Recorded in the schema history; what sinks need
    /// of it is in `ty`.
    pub type_modifier: i32,
    pub nullable: bool,
    /// Part of the key the source identifies rows by (primary key or replica identity).
    pub key: bool,
}

/// PostgreSQL's type modifier for `numeric(precision, scale)`.
pub fn numeric_typmod(precision: u8, scale: u8) -> i32 {
    ((i32::from(precision) << 16) | i32::from(scale)) + 4
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub id: TableId,
    /// Starts at 1; increases each time the source reports a different shape.
    pub version: u32,
    pub columns: Vec<ColumnSchema>,
}

impl TableSchema {
    /// Indexes of the key columns, in column order.
    pub fn key_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().enumerate().filter(|(_, c)| c.key).map(|(i, _)| i)
    }
}

/// A row, positional: `row[i]` is the value of `schema.columns[i]`.
pub type Row = Vec<Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A row read by a snapshot.
    Read,
    Create,
    Update,
    Delete,
    Truncate,
}

impl Op {
    /// Debezium's one-letter op code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// Where and when a change happened, beyond its ordering position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceInfo {
    /// Commit time, microseconds since the epoch.
    pub commit_ts_us: i64,
    /// Transaction id (PostgreSQL xid).
    pub tx_id: Option<u64>,
    /// PostgreSQL: LSN of this change's WAL record.
    pub lsn: Option<u64>,
    /// PostgreSQL: LSN of the last committed transaction before this one
    /// (Debezium's `sequence[0]`).
    pub last_commit_lsn: Option<u64>,
    pub snapshot: bool,
    /// MySQL/MariaDB: where in the binlog the change is (Debezium's
    /// `file`/`pos`/`row`/`server_id`/`gtid`/`thread`).
    pub binlog: Option<BinlogSource>,
}

/// The binlog coordinates of one change, as Debezium's MySQL connector
/// reports them in its `source` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinlogSource {
    pub file: Arc<str>,
    /// Byte offset of the transaction's first event (Debezium's `pos`).
    pub pos: u64,
    /// Row index inside the rows event (0-based).
    pub row: u32,
    pub server_id: u32,
    /// The transaction's GTID (`0-1-5`), when the server has GTIDs.
    pub gtid: Option<Arc<str>>,
    pub thread: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    pub table: Arc<TableSchema>,
    /// The old row, as far as the source sent it (replica identity, TOAST).
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: SourceInfo,
    pub position: Position,
}

impl ChangeEvent {
    /// The row the key is read from: `after`, or `before` for deletes.
    pub fn key_row(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }

    /// Whether an update moved its row to another key: the source sent the
    /// whole old key in `before` and it differs from the new one. (An old
    /// tuple of another replica identity, e.g. `USING INDEX` on non-key
    /// columns, does not carry the key: such an update stays an update.)
    pub fn key_changed(&self) -> bool {
        let (Op::Update, Some(before), Some(after)) = (self.op, &self.before, &self.after) else { return false };
        let mut keys = self.table.key_indexes().peekable();
        keys.peek().is_some()
            && self.table.key_indexes().all(|i| before.get(i).is_some_and(|v| !v.is_null()))
            && keys.any(|i| before.get(i) != after.get(i))
    }

    /// An update that moved its row to another key as Debezium emits it: a
    /// delete of the old key (with the before-image the source sent) and a
    /// create of the new one, both at the update's position. `None` for
    /// every other change.
    pub fn split_key_change(&self) -> Option<[ChangeEvent; 2]> {
        if !self.key_changed() {
            return None;
        }
        let half = |op, before: Option<&Row>, after: Option<&Row>| ChangeEvent {
            op,
            table: self.table.clone(),
            before: before.cloned(),
            after: after.cloned(),
            source: self.source.clone(),
            position: self.position.clone(),
        };
        Some([half(Op::Delete, self.before.as_ref(), None), half(Op::Create, None, self.after.as_ref())])
    }
}

/// A table's new shape, and the statement behind it when the source knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    pub schema: Arc<TableSchema>,
    /// MySQL/MariaDB: the last DDL statement on the table before its new
    /// shape was first seen. `None` for PostgreSQL (pgoutput sends shapes,
    /// not statements) and for a table first met when streaming starts.
    pub ddl: Option<Arc<Ddl>>,
}

impl SchemaChange {
    /// A shape with no known statement behind it.
    pub fn shape(schema: Arc<TableSchema>) -> Self {
        SchemaChange { schema, ddl: None }
    }
}

/// A DDL statement as the binlog carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ddl {
    pub statement: String,
    /// Where the statement is in the binlog and when it was committed.
    pub source: SourceInfo,
}

/// A logical decoding message (`pg_logical_emit_message`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalMessage {
    pub transactional: bool,
    pub prefix: String,
    pub content: Vec<u8>,
    pub source: SourceInfo,
    pub position: Position,
}

/// Where one table's snapshot stands once the chunk just before this item
/// is delivered. Sinks store it with their offset, so a snapshot resumes
/// after the last chunk every sink has made durable.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotProgress {
    pub table: TableId,
    /// The key of the last row read, as the source's text values (None: no
    /// chunk read yet, or a table without a key read by physical ranges —
    /// then `resume` says where to go on).
    pub last_key: Option<Vec<Option<String>>>,
    /// Source-specific resume point for keyless tables (PostgreSQL: next page).
    pub resume: Option<u64>,
    /// Tables read as several key ranges at once: each range's progress
    /// (then `last_key` is unused). Empty for tables read as one range.
    pub ranges: Vec<KeyRange>,
    pub rows: u64,
    pub done: bool,
    pub position: Position,
}

/// A primary key as the source's text values, in key column order.
pub type KeyText = Vec<Option<String>>;

/// One key range of a table read by several snapshot readers at once: keys
/// above the previous range's `upper` (or from the start) up to and
/// including `upper` (or to the end).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRange {
    pub upper: Option<KeyText>,
    /// The last key delivered in this range (None: none yet).
    pub last_key: Option<KeyText>,
    pub done: bool,
}

/// One item of a source's ordered stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Begin {
        tx_id: Option<u64>,
        commit_ts_us: i64,
        position: Position,
    },
    Change(ChangeEvent),
    Message(LogicalMessage),
    /// A table's shape changed (or is first met); later changes of the
    /// table carry this schema.
    SchemaChange(SchemaChange),
    /// End of a transaction: `position` is the resume point after it.
    Commit {
        tx_id: Option<u64>,
        commit_ts_us: i64,
        position: Position,
    },
    /// Nothing to deliver, but everything before `position` has been sent by
    /// the source (idle keepalive): sinks may advance their offset to it.
    Heartbeat {
        position: Position,
    },
    /// A snapshot chunk was delivered (always inside its chunk's Begin..Commit).
    SnapshotProgress(SnapshotProgress),
}

impl StreamItem {
    /// The item's position; `None` for schema changes, which are not
    /// positions in the stream but announcements about what follows.
    pub fn position(&self) -> Option<&Position> {
        match self {
            StreamItem::Begin { position, .. }
            | StreamItem::Commit { position, .. }
            | StreamItem::Heartbeat { position } => Some(position),
            StreamItem::Change(e) => Some(&e.position),
            StreamItem::Message(m) => Some(&m.position),
            StreamItem::SnapshotProgress(p) => Some(&p.position),
            StreamItem::SchemaChange(_) => None,
        }
    }
}
