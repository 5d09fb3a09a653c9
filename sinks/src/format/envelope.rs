//! Writes change events as JSON lines: Debezium's envelope (the Kafka record
//! *value* of Debezium's PostgreSQL connector with `schemas.enable=false`), or
//! the flat format for people.
//!
//! From a MySQL/MariaDB source the source block carries the MySQL connector's
//! fields (`file`, `pos`, `row`, `server_id`, `gtid`, `thread`; `db` is the
//! table's database). Values render by their column's logical type, the
//! same for every source (see `values`).
//!
//! With value schemas on ([`EventWriter::with_schemas`]) each record is the
//! JSON converter's `{"schema": …, "payload": …}`: the schema (see
//! `schema`) is rendered once per table schema version and copied in front
//! of the payload.
//!
//! This is the hot path of every JSON sink: events are appended to a reused
//! byte buffer field by field; no JSON DOM is built. The rows of a snapshot
//! chunk share one source block, which is rendered once per chunk.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use outflow_model::{ChangeEvent, Dialect, LogicalMessage, Op, Row, SourceInfo, TableSchema};

use super::debezium::{MetaField, Unwrap};
use super::schema::{self, SchemaCache};
use super::values::{write_debezium_value, write_flat_value, write_json_str, ValueStyle};
use super::Format;
use crate::SinkContext;

/// Renders events for one sink.
pub struct EventWriter {
    format: Format,
    style: ValueStyle,
    ctx: SinkContext,
    /// The last snapshot read's source block, for the next rows of its chunk.
    snapshot_source: Option<RenderedSource>,
    /// Processing time (the envelope's `ts_ms`/`ts_us`/`ts_ns`), taken once
    /// per batch by [`EventWriter::start_batch`].
    now_us: i64,
    /// `ExtractNewRecordState` for [`EventWriter::write_lines`].
    unwrap: Option<Arc<Unwrap>>,
    /// Rendered value schemas per table, when records carry them.
    schemas: Option<SchemaCache>,
    /// The logical decoding messages' rendered schema, when records carry them.
    message_schema: Option<Vec<u8>>,
}

struct RenderedSource {
    /// Held so that the pointer compared stays this table's.
    table: Arc<TableSchema>,
    source: SourceInfo,
    json: Vec<u8>,
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-outflow");

impl EventWriter {
    pub fn new(format: Format, style: ValueStyle, ctx: SinkContext) -> Self {
        EventWriter {
            format,
            style,
            ctx,
            snapshot_source: None,
            now_us: now_us(),
            unwrap: None,
            schemas: None,
            message_schema: None,
        }
    }

    /// Values are written with their schemas (`value.converter.schemas.enable`;
    /// the Debezium format only).
    pub fn with_schemas(mut self, on: bool) -> Self {
        let on = on && self.format == Format::Debezium;
        self.schemas = on.then(SchemaCache::default);
        self.message_schema = on.then(|| schema::message_value(self.ctx.dialect).record_prefix());
        self
    }

    /// Takes the processing time for the events written until the next call
    /// (a batch is written in well under a millisecond per event; reading
    /// the clock per event cost 3% of a snapshot's time).
    pub fn start_batch(&mut self) {
        self.now_us = now_us();
    }

    /// Appends one event as a single JSON line (with the trailing newline).
    pub fn write_change(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        self.write_value(out, ev, None);
        out.push(b'\n');
    }

    /// Appends one event's record value (no newline); with schemas, its
    /// struct names start with `name` (a routed topic) instead of the
    /// table's `<prefix>.<schema>.<table>`.
    pub fn write_value(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent, name: Option<&str>) {
        match self.format {
            Format::Debezium => {
                let EventWriter { schemas, ctx, style, .. } = self;
                let Some(cache) = schemas.as_mut() else { return self.write_envelope(out, ev) };
                out.extend_from_slice(cache.get(&ev.table, || {
                    let name = name.map_or_else(|| schema::table_name(&ctx.pipeline, &ev.table.id), str::to_string);
                    schema::envelope(&ev.table, &name, ctx.dialect, &style.modes)
                }));
                self.write_envelope(out, ev);
                out.push(b'}');
            }
            Format::Json => self.write_flat(out, ev),
        }
    }

    /// Appends the event's lines as a file of Debezium records holds them:
    /// in the Debezium format an update that moved its row to another key
    /// is a delete of the old key and a create of the new one (two lines),
    /// as Debezium emits it; otherwise one line.
    /// With an unwrap transform ([`EventWriter::unwrapped`]) the lines are
    /// its flat rows: deletes only when it rewrites them, no truncates.
    pub fn write_lines(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        match (self.format, ev.split_key_change()) {
            (Format::Debezium, Some([delete, create])) => {
                self.write_line(out, &delete);
                self.write_line(out, &create);
            }
            _ => self.write_line(out, ev),
        }
    }

    fn write_line(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        let Some(unwrap) = self.unwrap.clone() else { return self.write_change(out, ev) };
        let keep = match ev.op {
            Op::Delete => unwrap.deletes.records(false).0,
            Op::Truncate => false,
            _ => true,
        };
        if keep {
            self.write_unwrapped(out, ev, &unwrap);
            out.push(b'\n');
        }
    }

    /// Lines of [`EventWriter::write_lines`] are the unwrap transform's rows.
    pub fn unwrapped(mut self, unwrap: Option<Unwrap>) -> Self {
        self.unwrap = unwrap.map(Arc::new);
        self
    }

    /// Appends the row flat, as Debezium's `ExtractNewRecordState` writes a
    /// record value (no newline): the new row (a delete's old row), then
    /// `__deleted` when deletes are rewritten, then the `add.fields`.
    pub fn write_unwrapped(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent, unwrap: &Unwrap) {
        let EventWriter { schemas, ctx, style, .. } = self;
        let Some(cache) = schemas.as_mut() else { return self.write_unwrapped_row(out, ev, unwrap) };
        out.extend_from_slice(cache.get(&ev.table, || {
            let name = schema::table_name(&ctx.pipeline, &ev.table.id);
            schema::unwrapped(&ev.table, &name, ctx.dialect, unwrap, &style.modes)
        }));
        self.write_unwrapped_row(out, ev, unwrap);
        out.push(b'}');
    }

    fn write_unwrapped_row(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent, unwrap: &Unwrap) {
        let row = if ev.op == Op::Delete { ev.before.as_ref() } else { ev.after.as_ref() };
        match row {
            Some(_) => {
                self.write_row(out, &ev.table, row);
                out.pop(); // the closing brace
            }
            None => out.push(b'{'),
        }
        let sep = |out: &mut Vec<u8>| {
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
        };
        if unwrap.deletes.rewrites() {
            sep(out);
            out.extend_from_slice(if ev.op == Op::Delete {
                b"\"__deleted\":\"true\""
            } else {
                b"\"__deleted\":\"false\""
            });
        }
        for meta in &unwrap.fields {
            sep(out);
            write_json_str(out, &meta.name);
            out.push(b':');
            out.extend_from_slice(self.meta_value(ev, &meta.field).to_string().as_bytes());
        }
        out.push(b'}');
    }

    /// An `add.fields`/`add.headers` value: the envelope's `op` or `ts_ms`,
    /// or a field of the event's source block (null when it has none).
    pub fn meta_value(&mut self, ev: &ChangeEvent, field: &MetaField) -> serde_json::Value {
        match field {
            MetaField::Op => serde_json::Value::from(ev.op.code()),
            MetaField::TsMs => serde_json::Value::from(self.now_us / 1000),
            MetaField::Source(name) => {
                let mut json = Vec::new();
                self.write_source(&mut json, &ev.source, &ev.table.id.schema, &ev.table.id.name);
                let mut source: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&json).unwrap_or_default();
                source.remove(name).unwrap_or(serde_json::Value::Null)
            }
        }
    }

    /// Appends a logical decoding message as Debezium's `op: "m"` record
    /// (with its `MessageValue` schema when values carry schemas), and a newline.
    pub fn write_message(&self, out: &mut Vec<u8>, m: &LogicalMessage) {
        use base64::Engine as _;
        if let Some(prefix) = &self.message_schema {
            out.extend_from_slice(prefix);
        }
        out.extend_from_slice(b"{\"op\":\"m\",\"ts_ms\":");
        push_int(out, self.now_us / 1000);
        out.extend_from_slice(b",\"source\":");
        self.write_source(out, &m.source, "", "");
        out.extend_from_slice(b",\"transaction\":null,\"message\":{\"prefix\":");
        write_json_str(out, &m.prefix);
        out.extend_from_slice(b",\"content\":\"");
        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&m.content).as_bytes());
        out.extend_from_slice(b"\"}}");
        if self.message_schema.is_some() {
            out.push(b'}');
        }
        out.push(b'\n');
    }

    fn write_envelope(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        out.extend_from_slice(b"{\"before\":");
        self.write_row(out, &ev.table, ev.before.as_ref());
        out.extend_from_slice(b",\"after\":");
        self.write_row(out, &ev.table, ev.after.as_ref());
        out.extend_from_slice(b",\"source\":");
        if ev.op == Op::Read {
            self.write_snapshot_source(out, ev);
        } else {
            self.write_source(out, &ev.source, &ev.table.id.schema, &ev.table.id.name);
        }
        out.extend_from_slice(b",\"transaction\":null,\"op\":\"");
        out.extend_from_slice(ev.op.code().as_bytes());
        let now_us = self.now_us;
        out.extend_from_slice(b"\",\"ts_ms\":");
        push_int(out, now_us / 1000);
        out.extend_from_slice(b",\"ts_us\":");
        push_int(out, now_us);
        out.extend_from_slice(b",\"ts_ns\":");
        push_int(out, now_us.saturating_mul(1000));
        out.push(b'}');
    }

    fn write_row(&self, out: &mut Vec<u8>, table: &TableSchema, row: Option<&Row>) {
        let Some(row) = row else {
            out.extend_from_slice(b"null");
            return;
        };
        out.push(b'{');
        for (i, (col, v)) in table.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, &col.name);
            out.push(b':');
            write_debezium_value(out, v, col, &self.style);
        }
        out.push(b'}');
    }

    /// A snapshot read's source block: the one rendered for the row before
    /// when it is the same table and source (the rest of its chunk).
    fn write_snapshot_source(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        if let Some(last) = &self.snapshot_source {
            if Arc::ptr_eq(&last.table, &ev.table) && last.source == ev.source {
                out.extend_from_slice(&last.json);
                return;
            }
        }
        let mut json = self.snapshot_source.take().map(|last| last.json).unwrap_or_default();
        json.clear();
        self.write_source(&mut json, &ev.source, &ev.table.id.schema, &ev.table.id.name);
        out.extend_from_slice(&json);
        self.snapshot_source = Some(RenderedSource { table: ev.table.clone(), source: ev.source.clone(), json });
    }

    /// The pipeline this writer renders for.
    pub fn ctx(&self) -> &SinkContext {
        &self.ctx
    }

    /// The processing time of the batch (see [`EventWriter::start_batch`]).
    pub fn now_us(&self) -> i64 {
        self.now_us
    }

    /// The connector's `source` block of a change in `schema.table`.
    pub(super) fn write_source(&self, out: &mut Vec<u8>, s: &SourceInfo, schema: &str, table: &str) {
        match self.ctx.dialect {
            Dialect::Postgres => self.write_postgres_source(out, s, schema, table),
            Dialect::Mysql => self.write_mysql_source(out, s, schema, table),
        }
    }

    /// The PostgreSQL connector's source block.
    fn write_postgres_source(&self, out: &mut Vec<u8>, s: &SourceInfo, schema: &str, table: &str) {
        let ts_us = s.commit_ts_us;
        out.extend_from_slice(b"{\"version\":\"");
        out.extend_from_slice(VERSION.as_bytes());
        out.extend_from_slice(b"\",\"connector\":\"postgresql\",\"name\":");
        write_json_str(out, &self.ctx.pipeline);
        out.extend_from_slice(b",\"ts_ms\":");
        push_int(out, ts_us.div_euclid(1000));
        // Streamed changes: null, as Debezium 3.6.3 writes it (not "false").
        out.extend_from_slice(if s.snapshot { b",\"snapshot\":\"true\"" } else { b",\"snapshot\":null" });
        out.extend_from_slice(b",\"db\":");
        write_json_str(out, &self.ctx.db);
        out.extend_from_slice(b",\"sequence\":\"[");
        push_opt_quoted_lsn(out, s.last_commit_lsn);
        out.push(b',');
        push_opt_quoted_lsn(out, s.lsn);
        out.extend_from_slice(b"]\",\"ts_us\":");
        push_int(out, ts_us);
        out.extend_from_slice(b",\"ts_ns\":");
        push_int(out, ts_us.saturating_mul(1000));
        out.extend_from_slice(b",\"schema\":");
        write_json_str(out, schema);
        out.extend_from_slice(b",\"table\":");
        write_json_str(out, table);
        out.extend_from_slice(b",\"txId\":");
        push_opt_int(out, s.tx_id);
        out.extend_from_slice(b",\"lsn\":");
        push_opt_int(out, s.lsn);
        out.extend_from_slice(b",\"xmin\":null,\"origin\":null,\"origin_lsn\":null}");
    }

    /// The MySQL connector's source block: `db` is the table's database.
    fn write_mysql_source(&self, out: &mut Vec<u8>, s: &SourceInfo, db: &str, table: &str) {
        let ts_us = s.commit_ts_us;
        out.extend_from_slice(b"{\"version\":\"");
        out.extend_from_slice(VERSION.as_bytes());
        out.extend_from_slice(b"\",\"connector\":\"mysql\",\"name\":");
        write_json_str(out, &self.ctx.pipeline);
        out.extend_from_slice(b",\"ts_ms\":");
        push_int(out, ts_us.div_euclid(1000));
        out.extend_from_slice(if s.snapshot { b",\"snapshot\":\"true\"" } else { b",\"snapshot\":null" });
        out.extend_from_slice(b",\"db\":");
        write_json_str(out, if db.is_empty() { &self.ctx.db } else { db });
        out.extend_from_slice(b",\"sequence\":null,\"ts_us\":");
        push_int(out, ts_us);
        out.extend_from_slice(b",\"ts_ns\":");
        push_int(out, ts_us.saturating_mul(1000));
        out.extend_from_slice(b",\"table\":");
        if table.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            write_json_str(out, table);
        }
        let b = s.binlog.clone().unwrap_or_default();
        out.extend_from_slice(b",\"server_id\":");
        push_int(out, b.server_id);
        out.extend_from_slice(b",\"gtid\":");
        match &b.gtid {
            Some(g) => write_json_str(out, g),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"file\":");
        write_json_str(out, &b.file);
        out.extend_from_slice(b",\"pos\":");
        push_int(out, b.pos);
        out.extend_from_slice(b",\"row\":");
        push_int(out, b.row);
        out.extend_from_slice(b",\"thread\":");
        push_opt_int(out, b.thread.map(u64::from));
        out.extend_from_slice(b",\"query\":null}");
    }

    /// `{"_op":"c","_table":"public.t","_position":"lsn:…","_ts":"…", col: value, …}`
    fn write_flat(&self, out: &mut Vec<u8>, ev: &ChangeEvent) {
        out.extend_from_slice(b"{\"_op\":\"");
        out.extend_from_slice(ev.op.code().as_bytes());
        out.extend_from_slice(b"\",\"_table\":");
        write_json_str(out, &ev.table.id.to_string());
        out.extend_from_slice(b",\"_position\":");
        write_json_str(out, &ev.position.to_string());
        out.extend_from_slice(b",\"_ts_ms\":");
        push_int(out, ev.source.commit_ts_us.div_euclid(1000));
        let row = if ev.op == Op::Delete { ev.before.as_ref() } else { ev.after.as_ref() };
        if let Some(row) = row {
            for (col, v) in ev.table.columns.iter().zip(row) {
                out.push(b',');
                write_json_str(out, &col.name);
                out.push(b':');
                write_flat_value(out, v, col, &self.style);
            }
        }
        out.push(b'}');
    }
}

fn push_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_opt_int(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => push_int(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Debezium's `sequence` is a JSON array *inside a string*, of quoted LSNs.
fn push_opt_quoted_lsn(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.extend_from_slice(b"\\\"");
            push_int(out, v);
            out.extend_from_slice(b"\\\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use outflow_model::{ColumnSchema, ColumnType, Position, TableId, Value};

    use super::*;

    fn table(name: &str) -> Arc<TableSchema> {
        let id = ColumnSchema {
            name: "id".into(),
            ty: ColumnType::Int { bits: 64, signed: true },
            type_name: "int8".into(),
            type_id: 20,
            type_modifier: -1,
            nullable: false,
            key: true,
        };
        Arc::new(TableSchema { id: TableId::new("public", name), version: 1, columns: vec![id] })
    }

    fn read(table: &Arc<TableSchema>, lsn: u64, id: i64) -> ChangeEvent {
        ChangeEvent {
            op: Op::Read,
            table: table.clone(),
            before: None,
            after: Some(vec![Value::Int(id)]),
            source: SourceInfo { commit_ts_us: 1_000_000, lsn: Some(lsn), snapshot: true, ..SourceInfo::default() },
            position: Position::Pg { lsn, index: id as u32 },
        }
    }

    fn source_of(writer: &mut EventWriter, ev: &ChangeEvent) -> serde_json::Value {
        let mut out = Vec::new();
        writer.write_change(&mut out, ev);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        line["source"].clone()
    }

    /// A snapshot row's source block is reused only for the same table and
    /// source; each row's own source block is what rendering it alone gives.
    #[test]
    fn snapshot_rows_get_their_own_source_block() {
        let ctx = SinkContext::for_tests("p", "d");
        let (a, b) = (table("a"), table("b"));
        let events = [read(&a, 16, 1), read(&a, 16, 2), read(&b, 16, 3), read(&b, 32, 4), read(&a, 32, 5)];
        let mut writer = EventWriter::new(Format::Debezium, ValueStyle::default(), ctx.clone());
        for ev in &events {
            let alone = source_of(&mut EventWriter::new(Format::Debezium, ValueStyle::default(), ctx.clone()), ev);
            assert_eq!(source_of(&mut writer, ev), alone);
            assert_eq!(alone["table"], ev.table.id.name.as_str());
            assert_eq!(alone["lsn"], ev.source.lsn.unwrap());
        }
    }
}
