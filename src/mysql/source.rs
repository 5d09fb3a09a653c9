//! The MySQL/MariaDB source: registers as a replica, streams the binlog
//! through the decoder into the sinks, and keeps nothing on the server.
//!
//! Where to start: the minimum durable position over all sinks (a GTID state
//! on MariaDB, a file and offset on MySQL); with no offsets, the server's
//! current end, announced to the sinks at once as a heartbeat so the next run
//! starts there and not at a later "current end". Events at or before a
//! sink's own offset are skipped by the pipeline, which also resumes inside a
//! multi-row event.
//!
//! Unlike PostgreSQL there is nothing to acknowledge: the server keeps its
//! binlogs by age (`binlog_expire_logs_seconds`), not by consumer. Purged
//! positions are reported as such, never replaced by the current end.
//!
//! Reconnects (with backoff, by the driver in `src/stream.rs`) and rejoins
//! open the stream again from the minimum durable position over the sinks,
//! which skip what they already have, even inside a multi-row event.
//!
//! Idle: MariaDB sends HEARTBEAT events every second (`@master_heartbeat_period`),
//! which become `Heartbeat` items; 30 s of silence is a dead connection. `--until-caught-up` reads the server's end
//! at start and stops once the decoder is past it between transactions (and
//! any snapshot is complete).
//!
//! Snapshots (see `snapshot/` in this folder): between two transactions the
//! source opens the windows readers asked for and emits every chunk whose
//! consistent-read position the stream has passed (heartbeats carry the
//! server's position, so an idle stream gets there too). A chunk's items get
//! `A:0:K` positions after the resume point `A`; a following Begin (which
//! carries `A` itself) is moved to `A:0:K+1` and a heartbeat at `A` dropped,
//! so every item sorts after the one before it.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStream;
use mysql_async::BinlogStreamRequest;
use outflow_decoders::binlog::{BinlogDecoder, TableFilter};
use outflow_model::position::{MysqlAnchor, MysqlPos};
use outflow_model::{ColumnSchema, Position, Row, StreamItem, TableId, TableSchema, Value};
use outflow_sinks::SinkContext;
use tokio::time::Instant;

use super::catalog::{purged, sql_error, Catalog};
use super::config::MysqlConfig;
use super::snapshot::ReaderConfig;
use crate::error::{Error, ErrorClass, Result};
use crate::snapshot::Snapshots;
use crate::source::{Emit, Source, SourceFactory};
use crate::state::{SourceIdentity, TableSnapshot};
use crate::transform::Transforms;

/// MariaDB heartbeat period while idle.
const HEARTBEAT_NS: u64 = 1_000_000_000;
/// Silence after which the binlog connection counts as dead.
const SILENCE: Duration = Duration::from_secs(30);

pub struct MysqlSource {
    pub catalog: Catalog,
    pub server_id: u32,
    /// The tables the patterns match now (what snapshots may read).
    pub captured: Vec<TableId>,
    pub database: String,
    filter: TableFilter,
    /// The global transforms, whose excluded columns snapshots do not read.
    transforms: Transforms,
    /// A transient error in `start`: connect the catalog again first.
    stale_catalog: bool,
    /// Where streaming starts without sink offsets (set by `start`).
    start: Option<MysqlAnchor>,
    /// `--until-caught-up`: the server's end at start.
    target: Option<MysqlAnchor>,
    /// The start without offsets, announced to the sinks as a heartbeat at
    /// once so the next run starts there and not at a later "current end".
    announce: Option<MysqlAnchor>,
    /// The furthest position handed to the sinks (or saved by them).
    last: Option<Position>,
    /// The open binlog stream.
    session: Option<Session>,
}

/// One binlog connection.
struct Session {
    stream: BinlogStream,
    decoder: BinlogDecoder,
    /// When the server was last heard from.
    heard: Instant,
    /// Where this connection started, for the silence error.
    since: String,
    /// The event `recv` took (None inside: the server ended the stream).
    pending: Option<Option<std::result::Result<Event, mysql_async::Error>>>,
    decoded: Vec<StreamItem>,
}

impl MysqlSource {
    pub async fn prepare(cfg: &MysqlConfig, transforms: &Transforms) -> Result<MysqlSource> {
        let mut catalog = Catalog::connect(&cfg.url).await?;
        let server_id = cfg.server_id();
        catalog.preflight(server_id).await?;
        let database = catalog.opts.db_name().unwrap_or("").to_string();
        let filter = cfg.table_filter()?;
        let captured = catalog.resolve_tables(&filter).await?;
        Ok(MysqlSource {
            catalog,
            server_id,
            captured,
            database,
            filter,
            transforms: transforms.clone(),
            stale_catalog: false,
            start: None,
            target: None,
            announce: None,
            last: None,
            session: None,
        })
    }

    /// What identifies this server to a state directory.
    pub fn system_identifier(&self) -> String {
        format!("{} server_id {}", if self.catalog.mariadb { "mariadb" } else { "mysql" }, self.catalog.server_id)
    }

    async fn open_stream(&mut self, start: &MysqlAnchor) -> Result<BinlogStream> {
        let mut conn = mysql_async::Conn::new(self.catalog.opts.clone())
            .await
            .map_err(|e| sql_error("opening the binlog connection", e))?;
        let mut setup = vec![format!("SET @master_heartbeat_period = {HEARTBEAT_NS}")];
        if self.catalog.mariadb {
            setup.push("SET @mariadb_slave_capability = 4".into());
        }
        if let MysqlAnchor::Gtid(set) = start {
            setup.push(format!("SET @slave_connect_state = '{set}'"));
            setup.push("SET @slave_gtid_strict_mode = 1".into());
            setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
        }
        for sql in setup {
            conn.query_drop(&sql).await.map_err(|e| sql_error(&sql, e))?;
        }
        let mut request = BinlogStreamRequest::new(self.server_id);
        let name;
        if let MysqlAnchor::File { name: n, pos } = start {
            name = n.to_string();
            request = request.with_filename(name.as_bytes()).with_pos(*pos);
        } else {
            request = request.with_pos(4);
        }
        conn.get_binlog_stream(request).await.map_err(|e| stream_error(e, start))
    }
}

impl Source for MysqlSource {
    fn identity(&self) -> SourceIdentity {
        SourceIdentity {
            kind: "mysql".into(),
            system_identifier: self.system_identifier(),
            database: self.database.clone(),
            slot: "binlog".into(),
        }
    }

    fn sink_context(&self, pipeline: &str) -> SinkContext {
        SinkContext {
            pipeline: pipeline.to_string(),
            dialect: outflow_model::Dialect::Mysql,
            db: self.database.clone(),
        }
    }

    fn tables(&self) -> &[TableId] {
        &self.captured
    }

    /// Where to start: the sinks' minimum durable position, refused when it
    /// is not this server's kind of position or purged; else the server's
    /// current end, announced at once.
    async fn start(&mut self, saved: Option<&Position>, until_caught_up: bool) -> Result<()> {
        if std::mem::take(&mut self.stale_catalog) {
            if let Ok(conn) = mysql_async::Conn::new(self.catalog.opts.clone()).await {
                self.catalog.conn = conn;
            }
        }
        let end = match self.catalog.current_end().await {
            Ok(end) => end,
            Err(e) => {
                self.stale_catalog = e.class == ErrorClass::Transient;
                return Err(e);
            }
        };
        self.target = until_caught_up.then(|| end.clone());
        let start = match saved {
            Some(Position::Mysql(MysqlPos { anchor, .. })) => anchor.clone(),
            Some(other) => {
                return Err(Error::fatal(
                    format!("the saved position {other} is not a mysql position"),
                    "point [state] dir at this source's own directory",
                ))
            }
            None => end,
        };
        match (&start, self.catalog.mariadb) {
            (MysqlAnchor::File { .. }, true) | (MysqlAnchor::Gtid(_), false) => {
                return Err(Error::fatal(
                    format!("the saved position {start} does not fit this server (GTID positions are for MariaDB, file positions for MySQL)"),
                    "point [state] dir at this source's own directory",
                ))
            }
            _ => {}
        }
        self.catalog.check_not_purged(&start).await?;
        self.announce = saved.is_none().then(|| start.clone());
        self.last = saved.cloned();
        self.start = Some(start);
        Ok(())
    }

    async fn open(&mut self, from: Option<&Position>) -> Result<()> {
        if let Some(old) = self.session.take() {
            let _ = old.stream.close().await;
        }
        let from = match from {
            Some(Position::Mysql(MysqlPos { anchor, .. })) => anchor.clone(),
            _ => self.start.clone().ok_or_else(|| {
                Error::fatal(
                    "the binlog stream was opened before its start was read",
                    "this is a bug; please report it",
                )
            })?,
        };
        let stream = self.open_stream(&from).await?;
        tracing::info!(position = %from, server_id = self.server_id, "streaming binlog");
        let decoder = BinlogDecoder::new(self.filter.clone(), &from, true);
        let since = self.announce.as_ref().map(|a| a.to_string()).unwrap_or_else(|| decoder.anchor().to_string());
        self.session =
            Some(Session { stream, decoder, heard: Instant::now(), since, pending: None, decoded: Vec::new() });
        Ok(())
    }

    async fn recv(&mut self) -> Result<()> {
        let Some(session) = self.session.as_mut() else {
            return Err(Error::transient("the binlog stream is not open"));
        };
        match tokio::time::timeout_at(session.heard + SILENCE, session.stream.next()).await {
            Ok(ev) => {
                session.heard = Instant::now();
                session.pending = Some(ev);
                Ok(())
            }
            // MariaDB heartbeats every second; silence means a dead connection.
            Err(_) => Err(Error::transient(format!("no binlog event or heartbeat for 30 s since {}", session.since))),
        }
    }

    /// Decodes the event `recv` took and those already arrived, until the
    /// batch is full or the target reached; between transactions snapshot
    /// chunks get their place.
    async fn read(&mut self, out: &mut Emit<'_>) -> Result<()> {
        let target = self.target.clone();
        let Some(session) = self.session.as_mut() else { return Ok(()) };
        let mut next = session.pending.take();
        while let Some(ev) = next.take() {
            let Some(ev) = ev else {
                return Err(Error::transient("the server ended the binlog stream"));
            };
            let ev = ev.map_err(|e| stream_error(e, &session.decoder.anchor()))?;
            session.decoder.decode(&ev, &mut session.decoded).map_err(|e| {
                Error::fatal(
                    format!("cannot decode the binlog event at {}:{}: {e}", session.decoder.file(), ev.header().log_pos()),
                    "nothing after it was delivered; please report this with the server version and the table's definition",
                )
            })?;
            order_after_last(&mut self.last, &mut session.decoded);
            for item in session.decoded.drain(..) {
                out.push(item)?;
            }
            if out.full() || reached(target.as_ref(), &session.decoder) {
                break;
            }
            if out.snapshotting() && !session.decoder.in_transaction() {
                // Between transactions: give windows and chunks their place.
                place(&session.decoder, &mut self.last, out);
            }
            next = session.stream.next().now_or_never();
        }
        Ok(())
    }

    /// Announces the start (first connection without offsets), then, between
    /// two transactions, places snapshot windows and chunks.
    fn place_snapshots(&mut self, out: &mut Emit<'_>) {
        if let Some(start) = self.announce.take() {
            let position = Position::mysql(start);
            self.last = Some(position.clone());
            out.push_heartbeat(position);
        }
        if let Some(session) = &self.session {
            if !session.decoder.in_transaction() {
                place(&session.decoder, &mut self.last, out);
            }
        }
    }

    fn caught_up(&self) -> bool {
        self.session.as_ref().is_some_and(|s| reached(self.target.as_ref(), &s.decoder))
    }

    /// New matching tables are already in the stream (the decoder takes
    /// every table map the patterns match, from the CREATE TABLE on): they
    /// only become known for snapshot requests. Nothing to snapshot.
    async fn discover_tables(&mut self) -> Vec<TableId> {
        match self.catalog.resolve_tables(&self.filter).await {
            Ok(found) => {
                for table in found {
                    if !self.captured.contains(&table) {
                        tracing::info!(table = %table, "captured a new table that matches [source] tables");
                        self.captured.push(table);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e.message, "cannot look for new tables"),
        }
        Vec::new()
    }

    async fn add_tables(&mut self, patterns: &[String]) -> Result<Vec<TableId>> {
        let filter = self.filter.including(patterns).map_err(|e| {
            Error::config(format!("tables to add: {e}"), "write tables as \"db.table\" globs or \"re:<regex>\"")
        })?;
        let found = self.catalog.resolve_tables(&filter).await?;
        let new: Vec<TableId> = found.into_iter().filter(|t| !self.captured.contains(t)).collect();
        self.captured.extend(new.iter().cloned());
        if let Some(session) = &mut self.session {
            session.decoder.set_filter(filter.clone());
        }
        self.filter = filter;
        Ok(new)
    }

    fn check_condition(&self, table: &TableId, condition: &str) -> impl std::future::Future<Output = Result<()>> + Send {
        let (opts, table, condition) = (self.catalog.opts.clone(), table.clone(), condition.to_string());
        async move { super::snapshot::check_condition(&opts, &table, &condition).await }
    }

    fn spawn_reader(&self, snapshots: &mut Snapshots, table: TableId, progress: TableSnapshot, condition: Option<String>) {
        let cfg = ReaderConfig {
            opts: self.catalog.opts.clone(),
            mariadb: self.catalog.mariadb,
            server_id: self.catalog.server_id,
            chunk_size: snapshots.chunk_size,
            exclude: self.transforms.excluded_columns(&table).into_iter().map(String::from).collect(),
            condition,
        };
        snapshots.spawn(table.clone(), move |tx, parallel| async move {
            super::snapshot::snapshot_table(&cfg, table, progress, parallel, &tx).await
        });
    }

    async fn close(mut self, _durable: Option<Position>) {
        if let Some(session) = self.session.take() {
            let _ = session.stream.close().await;
        }
        let _ = self.catalog.conn.disconnect().await;
    }
}

/// Whether the decoder is past `target`, between transactions.
fn reached(target: Option<&MysqlAnchor>, decoder: &BinlogDecoder) -> bool {
    target.is_some_and(|t| !decoder.in_transaction() && decoder.anchor() >= *t)
}

/// Errors the server sends on the binlog connection, in users' words.
fn stream_error(e: mysql_async::Error, start: &MysqlAnchor) -> Error {
    match e {
        mysql_async::Error::Server(se) if se.code == 1236 => {
            let m = se.message.to_lowercase();
            if m.contains("same server_id") || m.contains("same server id") || m.contains("server_uuid") {
                Error::fatal(
                    format!("another replica connected with this pipeline's server_id: {}", se.message),
                    "give every pipeline and replica its own [source] server_id",
                )
            } else if m.contains("purged") || m.contains("could not find") || m.contains("not find first log") {
                let mut err = purged(&start.to_string(), None);
                err.message = format!("{} (server: {})", err.message, se.message);
                err
            } else {
                Error::fatal(
                    format!("the server ended the binlog stream: {}", se.message),
                    "check the server's error log",
                )
            }
        }
        mysql_async::Error::Server(se) if se.code == 1227 || se.code == 1045 => Error::fatal(
            format!("the server refused the binlog stream: {}", se.message),
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the [source] user",
        ),
        other => sql_error("reading the binlog", other),
    }
}

/// Between two transactions: opens the windows readers asked for and
/// emits the chunks the stream is past.
fn place(decoder: &BinlogDecoder, last: &mut Option<Position>, out: &mut Emit<'_>) {
    let (Some(s), batch) = out.snapshots_and_batch() else { return };
    let here = Position::mysql(decoder.file_anchor());
    s.windows.open_pending(&here);
    let anchor = decoder.anchor();
    let mut sub = match &*last {
        Some(Position::Mysql(p)) if p.anchor == anchor && p.index == 0 => p.sub,
        _ => 0,
    };
    let first = Position::Mysql(MysqlPos { anchor: anchor.clone(), index: 0, sub: sub + 1 });
    if last.as_ref().is_some_and(|l| *l >= first) {
        return; // resumed inside a transaction: wait for its end
    }
    let from = batch.len();
    let mut next = || {
        sub += 1;
        Position::Mysql(MysqlPos { anchor: anchor.clone(), index: 0, sub })
    };
    s.windows.emit_reached(|high| *high <= here, &mut next, batch);
    if batch.len() == from {
        return;
    }
    *last = batch.last().and_then(StreamItem::position).cloned();
    let mut recorded = std::collections::HashSet::new();
    let mut first_seen = Vec::new();
    for item in &mut batch[from..] {
        let StreamItem::Change(ev) = item else { continue };
        match decoder.schema(&ev.table.id) {
            // The stream's own schema object (same version) when the shapes agree.
            Some(known) if known.columns == ev.table.columns => ev.table = known,
            // The snapshot left out columns the transforms exclude: the rows
            // take the stream's shape, with nulls the transforms then drop.
            Some(known) if is_subsequence(&ev.table.columns, &known.columns) => {
                let read = std::mem::replace(&mut ev.table, known);
                ev.after = ev.after.take().map(|row| widen(row, &read, &ev.table));
            }
            Some(known) => {
                if recorded.insert(ev.table.id.clone()) {
                    tracing::warn!(table = %ev.table.id, stream_version = known.version, "the snapshot reads a different table shape than the binlog last announced");
                }
            }
            None => {
                // Not announced by the stream yet: the history starts with the snapshot's shape.
                if recorded.insert(ev.table.id.clone()) {
                    first_seen.push(ev.table.clone());
                }
            }
        }
    }
    for schema in first_seen {
        if let Err(e) = out.record_schema(&schema, None) {
            tracing::warn!(table = %schema.id, error = %e.message, "cannot record the snapshot's schema");
        }
    }
}

/// Whether `part`'s columns are `whole`'s with some left out, in order.
fn is_subsequence(part: &[ColumnSchema], whole: &[ColumnSchema]) -> bool {
    let mut rest = whole.iter();
    part.len() < whole.len() && part.iter().all(|c| rest.any(|w| w == c))
}

/// `row` of shape `read` in shape `whole` (a superset): absent columns null.
fn widen(mut row: Row, read: &TableSchema, whole: &TableSchema) -> Row {
    whole
        .columns
        .iter()
        .map(|c| match read.columns.iter().position(|r| r.name == c.name) {
            Some(i) => std::mem::replace(&mut row[i], Value::Null),
            None => Value::Null,
        })
        .collect()
}

/// Keeps positions increasing after a snapshot chunk: a Begin at the
/// chunk's resume point moves past it, a heartbeat there is dropped.
fn order_after_last(prev: &mut Option<Position>, batch: &mut Vec<StreamItem>) {
    let mut i = 0;
    while i < batch.len() {
        let behind = match (batch[i].position(), &*prev) {
            (Some(p), Some(last)) => p <= last,
            _ => false,
        };
        // Only after a chunk (`A:0:K`): a resume inside a transaction
        // (`A:N`) keeps its positions, the sinks skip what they have.
        let after_chunk = matches!(&*prev, Some(Position::Mysql(l)) if l.index == 0 && l.sub > 0);
        if behind && after_chunk {
            match &mut batch[i] {
                StreamItem::Begin { position, .. } => {
                    if let Some(Position::Mysql(last)) = &*prev {
                        *position = Position::Mysql(MysqlPos { sub: last.sub + 1, ..last.clone() });
                    }
                }
                StreamItem::Heartbeat { .. } => {
                    batch.remove(i);
                    continue;
                }
                _ => {}
            }
        }
        if let Some(p) = batch[i].position() {
            if prev.as_ref().is_none_or(|l| p > l) {
                *prev = Some(p.clone());
            }
        }
        i += 1;
    }
}
