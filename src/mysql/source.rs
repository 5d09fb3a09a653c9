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
//! only), from the minimum durable position over the sinks, which skip what
//! they already have; re-attaching a detached sink (see `src/pipeline.rs`)
//! takes the same path at once.
//!
//! Idle: MariaDB sends HEARTBEAT events every second (`@master_heartbeat_period`),
//! which become `Heartbeat` items. `--until-caught-up` reads the server's end
//! at start and stops once the decoder is past it between transactions.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStream;
use mysql_async::BinlogStreamRequest;
use outflow_decoders::binlog::{BinlogDecoder, TableFilter};
use outflow_decoders::position::{MysqlAnchor, MysqlPos};
use outflow_decoders::{Position, StreamItem, TableSchema};
use tokio_util::sync::CancellationToken;

use super::catalog::{purged, sql_error, Catalog};
use crate::config::SourceConfig;
use crate::error::{Error, ErrorClass, Result};
use crate::health::{health, Phase};
use crate::metrics::metrics;
use crate::pipeline::{
    any_detached, finish_all, min_durable, reattach, reconnect_delay, rejoin_ready, send_all, Flow, SinkHandle,
};
use crate::state::StateDir;

/// Items per batch handed to the sinks.
const BATCH_ITEMS: usize = 2048;
/// MariaDB heartbeat period while idle.
const HEARTBEAT_NS: u64 = 1_000_000_000;

pub struct MysqlSource {
    pub catalog: Catalog,
    pub server_id: u32,
    pub tables: Vec<String>,
    pub database: String,
}

impl MysqlSource {
    pub async fn prepare(cfg: &SourceConfig) -> Result<MysqlSource> {
        let mut catalog = Catalog::connect(&cfg.url).await?;
        let server_id = cfg.server_id.unwrap_or(crate::config::DEFAULT_MYSQL_SERVER_ID);
        catalog.preflight(server_id).await?;
        let database = catalog.opts.db_name().unwrap_or("").to_string();
        Ok(MysqlSource { catalog, server_id, tables: cfg.tables.clone(), database })
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
        let end = self.catalog.current_end().await?;
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
        let mut attempt = 0u32;
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
                    let pumped =
                        pump(&mut stream, &mut decoder, sinks, state, target.clone(), announce.take().as_ref(), &stop)
                            .await;
                    let _ = stream.close().await;
                    pumped
                }
                Err(e) => Err(e),
            };
            let wait = match pumped {
                Ok(Flow::Done) => break Ok(()),
                Ok(Flow::Rejoin) => {
                    reattach(sinks);
                    Duration::ZERO
                }
                Err(e) if e.class != ErrorClass::Transient || stop.is_cancelled() => break Err(e),
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

#[allow(clippy::too_many_arguments)]
async fn pump(
    stream: &mut BinlogStream,
    decoder: &mut BinlogDecoder,
    sinks: &mut [SinkHandle],
    state: Option<&StateDir>,
    target: Option<MysqlAnchor>,
    announce: Option<&MysqlAnchor>,
    stop: &CancellationToken,
) -> Result<Flow> {
    let mut batch: Vec<StreamItem> = Vec::with_capacity(BATCH_ITEMS);
    if let Some(start) = announce {
        batch.push(StreamItem::Heartbeat { position: Position::mysql(start.clone()) });
    }
    let reached = |d: &BinlogDecoder| target.as_ref().is_some_and(|t| !d.in_transaction() && d.anchor() >= *t);
    let mut caught_up = reached(decoder);
    let start = stream_anchor(announce, decoder);
    if caught_up && !batch.is_empty() && send_all(sinks, std::mem::take(&mut batch)).await.is_err() {
        return Ok(Flow::Done);
    }
    let mut rejoin_tick = tokio::time::interval(Duration::from_millis(250));
    let mut heard = tokio::time::Instant::now();
    // Done only once every sink has everything: a detached one first rejoins.
    while !caught_up || any_detached(sinks) {
        let ev = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = rejoin_tick.tick(), if any_detached(sinks) => {
                match rejoin_ready(sinks) {
                    Some(flow) => return Ok(flow),
                    None => continue,
                }
            }
            ev = stream.next() => ev,
            _ = tokio::time::sleep_until(heard + Duration::from_secs(30)) => {
                // MariaDB heartbeats every second; silence means a dead connection.
                return Err(Error::transient(format!("no binlog event or heartbeat for 30 s since {start}")));
            }
        };
        let mut next = Some(ev);
        heard = tokio::time::Instant::now();
        while let Some(ev) = next.take() {
            let Some(ev) = ev else {
                return Err(Error::transient("the server ended the binlog stream"));
            };
            let ev = ev.map_err(|e| stream_error(e, &decoder.anchor()))?;
            let from = batch.len();
            decoder.decode(&ev, &mut batch).map_err(|e| {
                Error::fatal(
                    format!("cannot decode the binlog event at {}:{}: {e}", decoder.file(), ev.header().log_pos()),
                    "nothing after it was delivered; please report this with the server version and the table's definition",
                )
            })?;
            for item in &batch[from..] {
                if let (StreamItem::SchemaChange(schema), Some(state)) = (item, state) {
                    record_schema(state, schema, decoder.recent_ddl(&schema.id.schema))?;
                }
            }
            caught_up = reached(decoder);
            if batch.len() >= BATCH_ITEMS || caught_up {
                break;
            }
            next = stream.next().now_or_never();
        }
        if !batch.is_empty() {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
            if send_all(sinks, full).await.is_err() {
                return Ok(Flow::Done);
            }
            heard = tokio::time::Instant::now();
        }
    }
    Ok(Flow::Done)
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
