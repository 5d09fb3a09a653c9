//! MySQL/MariaDB row-based binlog → the ordered stream of [`StreamItem`]s.
//!
//! The decoder takes events as mysql_common parsed their framing (header,
//! checksum, body) and keeps the state a replica needs: the current binlog
//! file, the GTID state, the open transaction and the table maps. It does no
//! I/O; the source feeds it events from the replication connection, the fuzz
//! target from bytes.
//!
//! Positions (see [`crate::position`] for their grammar): a transaction's
//! changes carry the resume point *before* the transaction (GTID state, or
//! the file offset of its first event) plus their index in it, counted over
//! the changes of captured tables; its Commit carries the resume point after
//! it. A DDL statement (its own transaction, no commit marker) ends with a
//! `Heartbeat` at the resume point after it.
//!
//! Protocol surprises handled here:
//! - The fake Rotate event the server sends first precedes the Format
//!   Description, so mysql_common does not know checksums are on yet and the
//!   4 CRC bytes end up in the file name: they are stripped.
//! - MariaDB starts transactions with a GTID event (BEGIN follows as a query
//!   event), ends them with XID, or with a `COMMIT` query for
//!   non-transactional tables; a standalone GTID (DDL) has no end marker.
//! - Table ids are reused after a table changes; a TableMap always replaces
//!   what was known for its id. A TableMap whose columns differ from the
//!   table's known shape starts a new schema version (ALTER TABLE mid-stream).
//! - Compressed (`log_bin_compress`) and encrypted events are refused with an
//!   error rather than skipped: skipping would silently lose rows.
//! - INCIDENT events mean the primary lost changes: a hard error.

mod ddl;
pub mod mariadb;
pub mod rows;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData, QueryEvent, RotateEvent, RowsEventData, TableMapEvent, XidEvent};

use crate::DecodeError;
use outflow_model::position::{Gtid, GtidSet, MysqlAnchor, MysqlPos};
use outflow_model::{BinlogSource, ChangeEvent, Ddl, Op, SchemaChange, SourceInfo, TableId, TableSchema};
use outflow_model::{Position, StreamItem};
use rows::Present;
use table::TableShape;

pub use outflow_model::TableFilter;

/// The transaction being decoded.
#[derive(Debug)]
struct Tx {
    /// Resume point before the transaction.
    anchor: MysqlAnchor,
    index: u32,
    gtid: Option<Gtid>,
    gtid_text: Option<Arc<str>>,
    /// Offset of the transaction's first event.
    begin_pos: u64,
    ts_us: i64,
    server_id: u32,
    thread: Option<u32>,
    standalone: bool,
}

/// A captured table under a table id: its shape and current schema.
#[derive(Debug)]
struct Mapped {
    shape: TableShape,
    schema: Arc<TableSchema>,
}

pub struct BinlogDecoder {
    filter: TableFilter,
    gtid_mode: bool,
    gtids: GtidSet,
    file: Arc<str>,
    /// Offset just past the last event seen (the next event's offset).
    next_pos: u64,
    seen_fde: bool,
    strip_rotate_crc: bool,
    tx: Option<Tx>,
    /// Table id → captured table (None: not captured).
    tables: HashMap<u64, Option<Arc<Mapped>>>,
    /// Last schema per table, for version numbers across table ids.
    schemas: HashMap<TableId, Arc<TableSchema>>,
    /// The last DDL statement that named each table, until the table's
    /// next shape takes it.
    ddl: HashMap<TableId, Arc<Ddl>>,
}

impl BinlogDecoder {
    /// Starts decoding at `start`: a GTID state (MariaDB GTID mode) or a
    /// binlog file and offset. `checksums` says the server was asked for
    /// CRC32 checksums (`@master_binlog_checksum`), so the first fake Rotate
    /// carries 4 CRC bytes mysql_common cannot know about yet.
    /// Decodes the tables `filter` matches from the next table map on
    /// (tables added to the capture while streaming).
    pub fn set_filter(&mut self, filter: TableFilter) {
        self.filter = filter;
    }

    pub fn new(filter: TableFilter, start: &MysqlAnchor, checksums: bool) -> Self {
        let (gtid_mode, gtids, file, next_pos) = match start {
            MysqlAnchor::Gtid(set) => (true, set.clone(), Arc::from(""), 4),
            MysqlAnchor::File { name, pos } => (false, GtidSet::default(), name.clone(), *pos),
        };
        BinlogDecoder {
            filter,
            gtid_mode,
            gtids,
            file,
            next_pos,
            seen_fde: false,
            strip_rotate_crc: checksums,
            tx: None,
            tables: HashMap::new(),
            schemas: HashMap::new(),
            ddl: HashMap::new(),
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// The resume point after everything decoded so far (between transactions).
    pub fn anchor(&self) -> MysqlAnchor {
        if self.gtid_mode {
            MysqlAnchor::Gtid(self.gtids.clone())
        } else {
            MysqlAnchor::File { name: self.file.clone(), pos: self.next_pos }
        }
    }

    /// The binlog file and offset after everything decoded so far, also in
    /// GTID mode (between transactions; snapshot chunks compare their
    /// consistent-read position with it).
    pub fn file_anchor(&self) -> MysqlAnchor {
        MysqlAnchor::File { name: self.file.clone(), pos: self.next_pos }
    }

    /// The current schema of a captured table, once a TableMap announced it.
    pub fn schema(&self, table: &TableId) -> Option<Arc<TableSchema>> {
        self.schemas.get(table).cloned()
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }

    /// Decodes one event, appending what it produces to `out`.
    pub fn decode(&mut self, event: &Event, out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let header = event.header();
        let ty = header.event_type_raw();
        let log_pos = header.log_pos() as u64;
        let start_pos = log_pos.saturating_sub(header.event_size() as u64);
        let io = |what: &'static str| move |e: std::io::Error| DecodeError::invalid(what, e.to_string());
        match ty {
            t if t == EventType::FORMAT_DESCRIPTION_EVENT as u8 => self.seen_fde = true,
            t if t == EventType::ROTATE_EVENT as u8 => {
                let re: RotateEvent<'_> = event.read_event().map_err(io("rotate event"))?;
                let mut name = re.name_raw();
                if !self.seen_fde && self.strip_rotate_crc && name.len() > 4 {
                    name = &name[..name.len() - 4];
                }
                let name = std::str::from_utf8(name)
                    .map_err(|_| DecodeError::invalid("rotate event", "file name is not UTF-8"))?;
                if name.is_empty() || name.contains(':') {
                    return Err(DecodeError::invalid("rotate event", format!("binlog file name {name:?}")));
                }
                self.file = name.into();
                self.next_pos = re.position();
                return Ok(());
            }
            mariadb::GTID_EVENT => {
                let g = mariadb::parse_gtid(event.data(), header.server_id())?;
                if let Some(tx) = &self.tx {
                    return Err(DecodeError::State(format!(
                        "gtid {} starts while transaction at {} is open",
                        g.gtid, tx.begin_pos
                    )));
                }
                let tx = self.begin(start_pos, header.timestamp(), header.server_id(), Some(g.gtid), g.standalone);
                if !g.standalone {
                    out.push(StreamItem::Begin {
                        tx_id: None,
                        commit_ts_us: tx.ts_us,
                        position: Position::Mysql(MysqlPos::new(tx.anchor.clone(), 0)),
                    });
                }
                self.tx = Some(tx);
            }
            t if t == EventType::QUERY_EVENT as u8 => {
                let q: QueryEvent<'_> = event.read_event().map_err(io("query event"))?;
                let sql = q.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    if self.tx.is_none() {
                        let tx = self.begin(start_pos, header.timestamp(), header.server_id(), None, false);
                        out.push(StreamItem::Begin {
                            tx_id: None,
                            commit_ts_us: tx.ts_us,
                            position: Position::Mysql(MysqlPos::new(tx.anchor.clone(), 0)),
                        });
                        self.tx = Some(tx);
                    }
                    if let Some(tx) = &mut self.tx {
                        tx.thread = Some(q.thread_id());
                    }
                } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(log_pos, None, out)?;
                } else if trimmed.to_ascii_uppercase().starts_with("ROLLBACK")
                    || trimmed.to_ascii_uppercase().starts_with("SAVEPOINT")
                {
                    // Only appear around non-transactional changes; no rows of their own.
                } else {
                    if let Some(table) = ddl::changed_table(&sql, &q.schema()) {
                        let tx = self.tx.as_ref();
                        let source = SourceInfo {
                            commit_ts_us: i64::from(header.timestamp()) * 1_000_000,
                            binlog: Some(BinlogSource {
                                file: self.file.clone(),
                                pos: tx.map_or(start_pos, |t| t.begin_pos),
                                row: 0,
                                server_id: header.server_id(),
                                gtid: tx.and_then(|t| t.gtid_text.clone()),
                                thread: None,
                            }),
                            ..SourceInfo::default()
                        };
                        self.ddl.insert(table, Arc::new(Ddl { statement: sql.into_owned(), source }));
                    }
                    let standalone = self.tx.as_ref().is_none_or(|t| t.standalone);
                    if standalone {
                        // A DDL is its own transaction: advance past it.
                        self.tx = None;
                        self.advance(log_pos);
                        out.push(StreamItem::Heartbeat { position: Position::mysql(self.anchor()) });
                    }
                }
            }
            t if t == EventType::XID_EVENT as u8 => {
                let x: XidEvent = event.read_event().map_err(io("xid event"))?;
                self.commit(log_pos, Some(x.xid), out)?;
            }
            t if t == EventType::TABLE_MAP_EVENT as u8 => {
                let tme: TableMapEvent<'_> = event.read_event().map_err(io("table map event"))?;
                self.table_map(&tme, out)?;
            }
            t if is_rows_event(t) => {
                let Some(EventData::RowsEvent(rows)) = event.read_data().map_err(io("rows event"))? else {
                    return Err(DecodeError::invalid("rows event", "not a rows event"));
                };
                self.rows(&rows, start_pos, out)?;
            }
            t if t == EventType::HEARTBEAT_EVENT as u8 => {
                if self.tx.is_none() {
                    // The server's position in the current file (it sends a
                    // Rotate before any other file's heartbeat). In GTID mode
                    // it only feeds `file_anchor`, which snapshots compare with.
                    if log_pos > 0 && !self.gtid_mode {
                        self.next_pos = log_pos;
                    } else if log_pos > 0 {
                        self.next_pos = self.next_pos.max(log_pos);
                    }
                    out.push(StreamItem::Heartbeat { position: Position::mysql(self.anchor()) });
                }
                return Ok(());
            }
            mariadb::GTID_LIST_EVENT => {
                let list = mariadb::parse_gtid_list(event.data())?;
                if self.gtid_mode && self.gtids.is_empty() {
                    self.gtids = GtidSet::new(list);
                }
            }
            mariadb::BINLOG_CHECKPOINT_EVENT => {
                mariadb::parse_binlog_checkpoint(event.data())?;
            }
            mariadb::ANNOTATE_ROWS_EVENT => {
                mariadb::parse_annotate_rows(event.data());
            }
            mariadb::FIRST_COMPRESSED_ROWS_EVENT..=mariadb::LAST_COMPRESSED_ROWS_EVENT
            | mariadb::QUERY_COMPRESSED_EVENT => {
                return Err(DecodeError::invalid(
                    "binlog event",
                    format!("compressed event (type {ty}) at {}:{start_pos}: outflow cannot read log_bin_compress events; turn log_bin_compress off", self.file),
                ));
            }
            mariadb::START_ENCRYPTION_EVENT => {
                return Err(DecodeError::invalid(
                    "binlog event",
                    "the binlog is encrypted (encrypt_binlog=ON), which outflow cannot read",
                ));
            }
            t if t == EventType::INCIDENT_EVENT as u8 => {
                return Err(DecodeError::State(format!(
                    "incident event at {}:{start_pos}: the server lost changes it could not log; re-snapshot the tables",
                    self.file
                )));
            }
            _ => {}
        }
        if log_pos > 0 && self.tx.is_none() && !matches!(ty, 15) {
            self.next_pos = self.next_pos.max(log_pos);
        }
        Ok(())
    }

    fn begin(&self, start_pos: u64, ts: u32, server_id: u32, gtid: Option<Gtid>, standalone: bool) -> Tx {
        let anchor = if self.gtid_mode {
            MysqlAnchor::Gtid(self.gtids.clone())
        } else {
            MysqlAnchor::File { name: self.file.clone(), pos: start_pos }
        };
        Tx {
            anchor,
            index: 0,
            gtid,
            gtid_text: gtid.map(|g| Arc::from(g.to_string())),
            begin_pos: start_pos,
            ts_us: ts as i64 * 1_000_000,
            server_id,
            thread: None,
            standalone,
        }
    }

    /// Moves the resume point past the transaction that just ended at `log_pos`.
    fn advance(&mut self, log_pos: u64) {
        if log_pos > 0 {
            self.next_pos = log_pos;
        }
    }

    fn commit(&mut self, log_pos: u64, xid: Option<u64>, out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let Some(tx) = self.tx.take() else {
            return Err(DecodeError::State(format!("commit at {}:{log_pos} without a transaction", self.file)));
        };
        if let Some(g) = tx.gtid {
            self.gtids = self.gtids.with(g);
        }
        self.advance(log_pos);
        out.push(StreamItem::Commit { tx_id: xid, commit_ts_us: tx.ts_us, position: Position::mysql(self.anchor()) });
        Ok(())
    }

    fn table_map(&mut self, tme: &TableMapEvent<'_>, out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let table_id = tme.table_id();
        if !self.filter.matches(&tme.database_name(), &tme.table_name()) {
            self.tables.insert(table_id, None);
            return Ok(());
        }
        if let Some(Some(known)) = self.tables.get(&table_id) {
            if known.shape.id.schema == tme.database_name() && known.shape.id.name == tme.table_name() {
                // The common case: the same table map before every rows event. Compare cheaply first.
                let shape = table::shape_from_table_map(tme)?;
                if shape == known.shape {
                    return Ok(());
                }
                return self.install(table_id, shape, out);
            }
        }
        let shape = table::shape_from_table_map(tme)?;
        self.install(table_id, shape, out)
    }

    fn install(&mut self, table_id: u64, shape: TableShape, out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let schema = match self.schemas.get(&shape.id) {
            Some(s) if s.columns == shape.columns => s.clone(),
            prev => {
                let version = prev.map_or(1, |s| s.version + 1);
                let s = Arc::new(table::schema_of(&shape, version));
                self.schemas.insert(shape.id.clone(), s.clone());
                let ddl = self.ddl.remove(&shape.id);
                out.push(StreamItem::SchemaChange(SchemaChange { schema: s.clone(), ddl }));
                s
            }
        };
        self.tables.insert(table_id, Some(Arc::new(Mapped { shape, schema })));
        Ok(())
    }

    fn rows(&mut self, ev: &RowsEventData<'_>, start_pos: u64, out: &mut Vec<StreamItem>) -> Result<(), DecodeError> {
        let table_id = ev.table_id();
        let mapped = match self.tables.get(&table_id) {
            Some(Some(m)) => m.clone(),
            Some(None) => return Ok(()),
            None => return Err(DecodeError::State(format!("rows event for table id {table_id} without a table map"))),
        };
        let op = match ev {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Create,
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Op::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(DecodeError::invalid(
                    "rows event",
                    "partial JSON update (binlog_row_value_options=PARTIAL_JSON); set it to ''",
                ))
            }
        };
        let n = usize::try_from(ev.num_columns()).map_err(|_| DecodeError::invalid("rows event", "column count"))?;
        let before_bits = ev.columns_before_image().map(|b| Present::from_bits(b.iter(), n));
        let after_bits = ev.columns_after_image().map(|b| Present::from_bits(b.iter(), n));
        let rows = rows::decode_rows(&mapped.shape, ev.rows_data(), before_bits.as_ref(), after_bits.as_ref())?;
        let file = self.file.clone();
        let Some(tx) = self.tx.as_mut() else {
            return Err(DecodeError::State(format!("rows event at {file}:{start_pos} outside a transaction")));
        };
        for (row, (before, after)) in rows.into_iter().enumerate() {
            tx.index = tx
                .index
                .checked_add(1)
                .ok_or_else(|| DecodeError::State("more than 2^32 rows in one transaction".into()))?;
            let source = SourceInfo {
                commit_ts_us: tx.ts_us,
                binlog: Some(BinlogSource {
                    file: file.clone(),
                    pos: tx.begin_pos,
                    row: row as u32,
                    server_id: tx.server_id,
                    gtid: tx.gtid_text.clone(),
                    thread: tx.thread,
                }),
                ..SourceInfo::default()
            };
            out.push(StreamItem::Change(ChangeEvent {
                op,
                table: mapped.schema.clone(),
                before,
                after,
                source,
                position: Position::Mysql(MysqlPos::new(tx.anchor.clone(), tx.index)),
            }));
        }
        Ok(())
    }
}

fn is_rows_event(t: u8) -> bool {
    (EventType::WRITE_ROWS_EVENT_V1 as u8..=EventType::DELETE_ROWS_EVENT_V1 as u8).contains(&t)
        || (EventType::WRITE_ROWS_EVENT as u8..=EventType::DELETE_ROWS_EVENT as u8).contains(&t)
        || t == EventType::PARTIAL_UPDATE_ROWS_EVENT as u8
}

#[cfg(test)]
mod tests;

/// Decodes a byte string of binlog events (as a binlog file holds them after
/// its 4-byte magic: a Format Description first, then events) with a fresh
/// decoder capturing every table. For tests and the fuzz target.
pub fn decode_bytes(data: &[u8]) -> Result<Vec<StreamItem>, DecodeError> {
    use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion};
    use mysql_common::binlog::EventStreamReader;
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let start = MysqlAnchor::File { name: "mysql-bin.000001".into(), pos: 4 };
    let mut decoder = BinlogDecoder::new(TableFilter::all(), &start, false);
    let mut out = Vec::new();
    let mut rest = data;
    // Until a Format Description says, assume checksummed events (the
    // stricter size check; real binlogs start with one).
    let mut checksummed = true;
    while !rest.is_empty() {
        // mysql_common's reader unwraps a short read when the header claims
        // more bytes than are left: check the header first (19 bytes, the
        // event size at offset 9).
        if rest.len() < 19 {
            return Err(DecodeError::invalid("binlog event", format!("{} bytes left, a header has 19", rest.len())));
        }
        let size = u32::from_le_bytes([rest[9], rest[10], rest[11], rest[12]]) as usize;
        if size < 19 || size > rest.len() {
            return Err(DecodeError::invalid(
                "binlog event",
                format!("event size {size} does not fit the {} bytes left", rest.len()),
            ));
        }
        // mysql_common also cuts the checksum (and a Format Description's
        // checksum algorithm byte) off without checking the body holds them.
        let is_fde = rest[4] == EventType::FORMAT_DESCRIPTION_EVENT as u8;
        let need = if is_fde {
            57 + 5
        } else if checksummed {
            4
        } else {
            0
        };
        if size - 19 < need {
            return Err(DecodeError::invalid("binlog event", format!("a {size}-byte event is too short for its body")));
        }
        match reader.read(&mut rest) {
            Ok(Some(event)) => {
                if is_fde {
                    let footer = event.footer();
                    // As mysql_common decides: any algorithm but OFF (an
                    // unknown one too) means a checksum at the end.
                    checksummed = footer.get_checksum_enabled()
                        && !matches!(
                            footer.get_checksum_alg(),
                            Ok(None | Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF))
                        );
                }
                decoder.decode(&event, &mut out)?
            }
            Ok(None) => break,
            Err(e) => return Err(DecodeError::invalid("binlog event", e.to_string())),
        }
    }
    Ok(out)
}
