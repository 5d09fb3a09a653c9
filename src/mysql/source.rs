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
//! A lost connection is retried with exponential backoff (transient errors
//! only, and not while a snapshot runs: its windows are tied to the stream),
//! from the minimum durable position over the sinks, which skip what they
//! already have; re-attaching a detached sink (see `src/pipeline.rs`) takes
//! the same path at once.
//!
//! Idle: MariaDB sends HEARTBEAT events every second (`@master_heartbeat_period`),
//! which become `Heartbeat` items. `--until-caught-up` reads the server's end
//! at start and stops once the decoder is past it between transactions (and
//! any snapshot is complete).
//!
//! Snapshots (see `snapshot/` in this folder): between two transactions the
//! pump opens the windows readers asked for and emits every chunk whose
//! consistent-read position the stream has passed (heartbeats carry the
//! server's position, so an idle stream gets there too). A chunk's items get
//! `A:0:K` positions after the resume point `A`; a following Begin (which
//! carries `A` itself) is moved to `A:0:K+1` and a heartbeat at `A` dropped,
//! so every item sorts after the one before it.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStream;
use mysql_async::BinlogStreamRequest;
use outflow_decoders::binlog::{BinlogDecoder, TableFilter};
use outflow_model::position::{MysqlAnchor, MysqlPos};
use outflow_model::{Position, StreamItem, TableId, TableSchema};
use tokio_util::sync::CancellationToken;

use super::catalog::{purged, sql_error, Catalog};
use super::snapshot::ReaderConfig;
use crate::config::SourceConfig;
use crate::error::{Error, ErrorClass, Result};
use crate::health::{health, Phase};
use crate::metrics::metrics;
use crate::pipeline::{
    any_detached, finish_all, min_durable, reattach, reconnect_delay, rejoin_ready, send_all, Flow, SinkHandle,
};
use crate::snapshot::{receive, SnapshotPlan, Snapshots};
use crate::state::{StateDir, TableSnapshot};

/// Items per batch handed to the sinks.
const BATCH_ITEMS: usize = 2048;
/// MariaDB heartbeat period while idle.
const HEARTBEAT_NS: u64 = 1_000_000_000;

pub struct MysqlSource {
    pub catalog: Catalog,
    pub server_id: u32,
    pub tables: Vec<String>,
    /// The tables the patterns match now (what snapshots may read).
    pub captured: Vec<TableId>,
    pub database: String,
    /// Tables to snapshot in this run, and whether to stop once done.
    pub snapshot: Option<SnapshotPlan>,
    pub exit_after_snapshot: bool,
}

impl MysqlSource {
    pub async fn prepare(cfg: &SourceConfig) -> Result<MysqlSource> {
        let mut catalog = Catalog::connect(&cfg.url).await?;
        let server_id = cfg.server_id.unwrap_or(crate::config::DEFAULT_MYSQL_SERVER_ID);
        catalog.preflight(server_id).await?;
        let database = catalog.opts.db_name().unwrap_or("").to_string();
        let captured = catalog.resolve_tables(&cfg.tables).await?;
        Ok(MysqlSource {
            catalog,
            server_id,
            tables: cfg.tables.clone(),
            captured,
            database,
            snapshot: None,
            exit_after_snapshot: false,
        })
    }

    /// What identifies this server to a state directory.
    pub fn system_identifier(&self) -> String {
        format!("{} server_id {}", if self.catalog.mariadb { "mariadb" } else { "mysql" }, self.catalog.server_id)
    }

    pub async fn stream(
        mut self,
        sinks: &mut [SinkHandle],
        state: Option<&StateDir>,
        until_caught_up: bool,
        stop: CancellationToken,
    ) -> Result<()> {
        // The server may restart between this run's setup and here (the
        // sinks' start takes a while): a lost connection is retried.
        let mut attempt = 0u32;
        let end = loop {
            match self.catalog.current_end().await {
                Ok(end) => break end,
                Err(e) if e.class == ErrorClass::Transient && !stop.is_cancelled() => {
                    attempt += 1;
                    let wait = reconnect_delay(attempt);
                    tracing::warn!(error = %e.message, retry_in_ms = wait.as_millis() as u64, attempt, "mysql connection lost before streaming; reconnecting");
                    tokio::time::sleep(wait).await;
                    if let Ok(conn) = mysql_async::Conn::new(self.catalog.opts.clone()).await {
                        self.catalog.conn = conn;
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let target = until_caught_up.then(|| end.clone());
        let saved = min_durable(sinks);
        let start = match &saved {
            Some(Position::Mysql(MysqlPos { anchor, .. })) => anchor.clone(),
            Some(other) => {
                return Err(Error::fatal(
                    format!("the saved position {other} is not a mysql position"),
                    "point [state] dir at this source's own directory",
                ))
            }
            None => end.clone(),
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
        // A lost connection (server restart, network) is retried with backoff
        // from what every sink has made durable (or the start, before any
        // has); the sinks skip what the server resends, even inside a
        // multi-row event. A detached sink that can take more is re-attached
        // the same way, at once.
        let filter = TableFilter::new(&self.tables);
        let mut announce = saved.is_none().then(|| start.clone());
        let mut from = start.clone();
        let mut last = saved.clone();
        let mut attempt = 0u32;
        let mut snapshots = self.start_snapshots();
        let result = loop {
            let pumped = match self.open_stream(&from).await {
                Ok(mut stream) => {
                    tracing::info!(position = %from, server_id = self.server_id, "streaming binlog");
                    health().set_phase(Phase::Streaming);
                    if attempt > 0 {
                        metrics().reconnects.inc();
                        tracing::info!("reconnected");
                        attempt = 0;
                    }
                    let mut decoder = BinlogDecoder::new(filter.clone(), &from, true);
                    let mut pump = Pump {
                        decoder: &mut decoder,
                        sinks: &mut *sinks,
                        state,
                        target: target.clone(),
                        last: last.clone(),
                        snapshots: &mut snapshots,
                        exit_after_snapshot: self.exit_after_snapshot,
                        captured: &self.captured,
                        reader: self.reader_config(),
                    };
                    let pumped = pump.run(&mut stream, announce.take().as_ref(), &stop).await;
                    last = pump.last.take();
                    let _ = stream.close().await;
                    pumped
                }
                Err(e) => Err(e),
            };
            let snapshot_running = snapshots.as_ref().is_some_and(|s| !s.windows.finished());
            let wait = match pumped {
                Ok(Flow::Done) => break Ok(()),
                Ok(Flow::Rejoin) => {
                    reattach(sinks);
                    Duration::ZERO
                }
                Err(e) if e.class != ErrorClass::Transient || stop.is_cancelled() || snapshot_running => break Err(e),
                Err(e) => {
                    metrics().error(e.class);
                    attempt += 1;
                    health().set_phase(Phase::Reconnecting { attempt, error: e.message.clone() });
                    let wait = reconnect_delay(attempt);
                    tracing::warn!(error = %e.message, retry_in_ms = wait.as_millis() as u64, attempt, "binlog connection lost; reconnecting");
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            from = match min_durable(sinks) {
                Some(Position::Mysql(MysqlPos { anchor, .. })) => anchor,
                _ => start.clone(),
            };
        };
        health().set_phase(Phase::Stopping);
        let sink_result = finish_all(sinks).await;
        let _ = self.catalog.conn.disconnect().await;
        result.and(sink_result)
    }

    fn reader_config(&self) -> ReaderConfig {
        ReaderConfig {
            opts: self.catalog.opts.clone(),
            mariadb: self.catalog.mariadb,
            server_id: self.catalog.server_id,
            chunk_size: self.snapshot.as_ref().map_or(10_000, |p| p.chunk_size),
        }
    }

    /// Starts the readers of this run's snapshot plan, if any.
    fn start_snapshots(&mut self) -> Option<Snapshots> {
        let plan = self.snapshot.take()?;
        let mut snapshots = Snapshots::new(String::new(), plan.parallelism, plan.chunk_size);
        let cfg = ReaderConfig { chunk_size: plan.chunk_size, ..self.reader_config() };
        for (table, progress) in plan.tables {
            if !progress.done {
                spawn_reader(&mut snapshots, &cfg, table, progress);
            }
        }
        Some(snapshots)
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

fn spawn_reader(snapshots: &mut Snapshots, cfg: &ReaderConfig, table: TableId, progress: TableSnapshot) {
    let cfg = cfg.clone();
    snapshots.spawn(move |tx, parallel| async move {
        super::snapshot::snapshot_table(&cfg, table, progress, parallel, &tx).await
    });
}

struct Pump<'a> {
    decoder: &'a mut BinlogDecoder,
    sinks: &'a mut [SinkHandle],
    state: Option<&'a StateDir>,
    target: Option<MysqlAnchor>,
    /// The furthest position handed to the sinks (or saved by them).
    last: Option<Position>,
    snapshots: &'a mut Option<Snapshots>,
    exit_after_snapshot: bool,
    captured: &'a [TableId],
    reader: ReaderConfig,
}

impl Pump<'_> {
    fn reached(&self) -> bool {
        self.target.as_ref().is_some_and(|t| !self.decoder.in_transaction() && self.decoder.anchor() >= *t)
    }

    fn done(&self, caught_up: bool) -> bool {
        let snapshot_done = self.snapshots.as_ref().is_none_or(|s| s.windows.finished());
        if self.exit_after_snapshot {
            snapshot_done
        } else {
            caught_up && snapshot_done
        }
    }

    async fn run(
        &mut self,
        stream: &mut BinlogStream,
        announce: Option<&MysqlAnchor>,
        stop: &CancellationToken,
    ) -> Result<Flow> {
        let mut batch: Vec<StreamItem> = Vec::with_capacity(BATCH_ITEMS);
        if let Some(start) = announce {
            let position = Position::mysql(start.clone());
            self.last = Some(position.clone());
            batch.push(StreamItem::Heartbeat { position });
        }
        let start = stream_anchor(announce, self.decoder);
        if let Some(state) = self.state {
            self.take_snapshot_requests(state);
        }
        let mut request_tick = tokio::time::interval(Duration::from_secs(1));
        let mut rejoin_tick = tokio::time::interval(Duration::from_millis(250));
        let mut heard = tokio::time::Instant::now();
        let mut caught_up = self.reached();
        loop {
            if !self.decoder.in_transaction() {
                self.place_snapshots(&mut batch);
            }
            if !batch.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                if send_all(self.sinks, full).await.is_err() {
                    return Ok(Flow::Done);
                }
            }
            // Done only once every sink has everything: a detached one first rejoins.
            if self.done(caught_up) && !any_detached(self.sinks) {
                break;
            }
            let ev = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                ev = stream.next() => ev,
                r = receive(self.snapshots) => {
                    r?;
                    continue;
                }
                _ = request_tick.tick(), if self.state.is_some() => {
                    if let Some(state) = self.state {
                        self.take_snapshot_requests(state);
                    }
                    continue;
                }
                _ = rejoin_tick.tick(), if any_detached(self.sinks) => {
                    match rejoin_ready(self.sinks) {
                        Some(flow) => return Ok(flow),
                        None => continue,
                    }
                }
                _ = tokio::time::sleep_until(heard + Duration::from_secs(30)) => {
                    // MariaDB heartbeats every second; silence means a dead connection.
                    return Err(Error::transient(format!("no binlog event or heartbeat for 30 s since {start}")));
                }
            };
            heard = tokio::time::Instant::now();
            let mut next = Some(ev);
            while let Some(ev) = next.take() {
                let Some(ev) = ev else {
                    return Err(Error::transient("the server ended the binlog stream"));
                };
                let ev = ev.map_err(|e| stream_error(e, &self.decoder.anchor()))?;
                let from = batch.len();
                self.decoder.decode(&ev, &mut batch).map_err(|e| {
                    Error::fatal(
                        format!("cannot decode the binlog event at {}:{}: {e}", self.decoder.file(), ev.header().log_pos()),
                        "nothing after it was delivered; please report this with the server version and the table's definition",
                    )
                })?;
                self.order_after_last(&mut batch, from);
                for item in &batch[from..] {
                    match item {
                        StreamItem::SchemaChange(schema) => {
                            if let Some(state) = self.state {
                                record_schema(state, schema, self.decoder.recent_ddl(&schema.id.schema))?;
                            }
                        }
                        StreamItem::Change(ev) => {
                            if let Some(s) = self.snapshots.as_mut() {
                                s.windows.on_change(ev);
                            }
                        }
                        _ => {}
                    }
                }
                caught_up = self.reached();
                if batch.len() >= BATCH_ITEMS || caught_up {
                    break;
                }
                if self.snapshots.is_some() && !self.decoder.in_transaction() {
                    // Between transactions: give windows and chunks their place.
                    self.place_snapshots(&mut batch);
                }
                next = stream.next().now_or_never();
            }
        }
        // Whole chunks emitted before the stop still go to the sinks.
        if !batch.is_empty() {
            let _ = send_all(self.sinks, batch).await;
        }
        Ok(Flow::Done)
    }

    /// Between two transactions: opens the windows readers asked for and
    /// emits the chunks the stream is past.
    fn place_snapshots(&mut self, batch: &mut Vec<StreamItem>) {
        let Some(s) = self.snapshots.as_mut() else { return };
        let here = Position::mysql(self.decoder.file_anchor());
        s.windows.open_pending(&here);
        let anchor = self.decoder.anchor();
        let mut sub = match &self.last {
            Some(Position::Mysql(p)) if p.anchor == anchor && p.index == 0 => p.sub,
            _ => 0,
        };
        let first = Position::Mysql(MysqlPos { anchor: anchor.clone(), index: 0, sub: sub + 1 });
        if self.last.as_ref().is_some_and(|l| *l >= first) {
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
        self.last = batch.last().and_then(StreamItem::position).cloned();
        let mut recorded = std::collections::HashSet::new();
        for item in &mut batch[from..] {
            let StreamItem::Change(ev) = item else { continue };
            match self.decoder.schema(&ev.table.id) {
                // The stream's own schema object (same version) when the shapes agree.
                Some(known) if known.columns == ev.table.columns => ev.table = known,
                Some(known) => {
                    if recorded.insert(ev.table.id.clone()) {
                        tracing::warn!(table = %ev.table.id, stream_version = known.version, "the snapshot reads a different table shape than the binlog last announced");
                    }
                }
                None => {
                    // Not announced by the stream yet: the history starts with the snapshot's shape.
                    if let (true, Some(state)) = (recorded.insert(ev.table.id.clone()), self.state) {
                        if let Err(e) = record_schema(state, &ev.table, None) {
                            tracing::warn!(table = %ev.table.id, error = %e.message, "cannot record the snapshot's schema");
                        }
                    }
                }
            }
        }
    }

    /// Keeps positions increasing after a snapshot chunk: a Begin at the
    /// chunk's resume point moves past it, a heartbeat there is dropped.
    fn order_after_last(&mut self, batch: &mut Vec<StreamItem>, from: usize) {
        let mut i = from;
        while i < batch.len() {
            let behind = match (batch[i].position(), &self.last) {
                (Some(p), Some(last)) => p <= last,
                _ => false,
            };
            // Only after a chunk (`A:0:K`): a resume inside a transaction
            // (`A:N`) keeps its positions, the sinks skip what they have.
            let after_chunk = matches!(&self.last, Some(Position::Mysql(l)) if l.index == 0 && l.sub > 0);
            if behind && after_chunk {
                match &mut batch[i] {
                    StreamItem::Begin { position, .. } => {
                        if let Some(Position::Mysql(last)) = &self.last {
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
                if self.last.as_ref().is_none_or(|l| p > l) {
                    self.last = Some(p.clone());
                }
            }
            i += 1;
        }
    }

    /// Starts a snapshot for each table `outflow snapshot --table` asked for.
    fn take_snapshot_requests(&mut self, state: &StateDir) {
        for name in state.snapshot_requests() {
            let Some(table) = self.captured.iter().find(|t| t.to_string() == name).cloned() else {
                tracing::warn!(table = %name, "snapshot asked for a table that is not captured; ignoring it");
                state.take_snapshot_request(&name);
                continue;
            };
            let snapshots = self.snapshots.get_or_insert_with(|| Snapshots::new(String::new(), 2, 10_000));
            tracing::info!(table = %table, "snapshot requested");
            spawn_reader(snapshots, &self.reader, table, TableSnapshot::default());
            state.take_snapshot_request(&name);
        }
    }
}

fn stream_anchor(announce: Option<&MysqlAnchor>, decoder: &BinlogDecoder) -> String {
    announce.map(|a| a.to_string()).unwrap_or_else(|| decoder.anchor().to_string())
}

/// Appends a table's new shape, with the DDL that caused it, to the schema
/// history (unless the last entry already has these columns: a restart
/// re-announces every table it meets).
fn record_schema(state: &StateDir, schema: &TableSchema, ddl: Option<&str>) -> Result<()> {
    let columns: Vec<serde_json::Value> = schema
        .columns
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "type": c.type_name,
                "type_id": c.type_id,
                "type_modifier": c.type_modifier,
                "nullable": c.nullable,
                "key": c.key,
            })
        })
        .collect();
    let table = schema.id.to_string();
    let path = state.path().join("schemas").join(format!("{table}.json"));
    let history: Vec<serde_json::Value> = crate::state::read_json(&path)?.unwrap_or_default();
    if history.last().is_some_and(|last| last["columns"] == serde_json::Value::Array(columns.clone())) {
        return Ok(());
    }
    tracing::info!(table = %table, version = history.len() + 1, "schema change");
    state.record_schema(
        &table,
        serde_json::json!({
            "version": history.len() + 1,
            "recorded_at": crate::state::now_rfc3339(),
            "ddl": ddl,
            "columns": columns,
        }),
    )
}
