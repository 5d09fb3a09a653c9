//! The PostgreSQL source: prepares the server side (publication, slot),
//! streams pgoutput through the decoder into the sinks, and acknowledges to
//! the server only what every sink has made durable.
//!
//! Idle tables do not pin WAL: between transactions each server keepalive
//! becomes a `Heartbeat` item, which sinks take as their position once they
//! have written everything before it; the slot then advances to it. Keepalives
//! that arrive in the middle of a transaction are not used, because the
//! server's WAL end is already past the transaction's commit then.
//!
//! `--until-caught-up` reads the server's WAL position at start and stops once
//! a commit or keepalive at or past it has been handed to the sinks; while
//! idle it asks the server for keepalives so it notices promptly.
//!
//! A keepalive that asks for a reply means the server waits for our
//! confirmation — while it shuts down, a walsender stays until everything it
//! sent is confirmed, and a fast shutdown waits for it — so it also asks the
//! sinks to make everything durable now ([`ask_durable_now`]) rather than at
//! their next roll.
//!
//! A lost connection is retried with exponential backoff (transient errors
//! only, not during a snapshot), streaming again from the minimum durable
//! position over the sinks, which skip what they already have; re-attaching
//! a detached sink (see `src/pipeline.rs`) takes the same path at once.
//!
//! While streaming, a task watches the WAL the slot retains (see
//! `retention.rs`), and the live state (`src/health.rs`) learns the phase
//! (streaming, reconnecting) and the server's WAL end.

use std::time::Duration;

use outflow_decoders::pg_decoder::PgDecoder;
use outflow_decoders::pgoutput;
use outflow_model::position::format_lsn;
use outflow_model::{Position, StreamItem, TableId};
use tokio_util::sync::CancellationToken;

use super::catalog::{Catalog, SlotInfo};
use super::params::PgParams;
use super::replication::{server_error, QueryError, ReplicationConn, ReplicationMessage};
use crate::config::SourceConfig;
use crate::error::{Error, ErrorClass, Result};
use crate::health::{health, Phase};
use crate::metrics::metrics;
use crate::pipeline::{
    any_detached, ask_durable_now, finish_all, min_durable, reattach, reconnect_delay, rejoin_ready, send_all, Flow,
    SinkHandle,
};
use crate::snapshot::{receive, SnapshotPlan, Snapshots};
use crate::state::StateDir;
use crate::state::TableSnapshot;

/// Items per batch handed to the sinks.
const BATCH_ITEMS: usize = 2048;
/// How often the durable position is reported when nothing else prompts it.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// A source whose server side is ready: publication present, slot present.
pub struct PgSource {
    pub params: PgParams,
    pub catalog: Catalog,
    pub conn: ReplicationConn,
    pub slot: String,
    pub publication: String,
    pub system_identifier: String,
    /// Retained WAL above which to warn.
    pub wal_warn_bytes: u64,
    /// The captured tables, resolved from the configured patterns.
    pub tables: Vec<TableId>,
    /// Tables to snapshot in this run, and whether to stop once done.
    pub snapshot: Option<SnapshotPlan>,
    pub exit_after_snapshot: bool,
    /// The running snapshot's readers and windows, once started.
    snapshots: Option<Snapshots>,
}

impl PgSource {
    /// Connects, checks the server, and creates what is missing. A
    /// `temporary` slot disappears when the connection ends (for `tail`).
    /// With `slot_must_exist` a missing slot is an error instead of being
    /// created (sinks have offsets: a new slot would silently skip changes).
    pub async fn prepare(cfg: &SourceConfig, slot: &str, temporary: bool, slot_must_exist: bool) -> Result<PgSource> {
        let params = PgParams::from_url(&cfg.url)?;
        let catalog = Catalog::connect(&params).await?;
        catalog.check_wal_level().await?;
        let tables = catalog.resolve_tables(&cfg.tables).await?;
        catalog.ensure_publication(&cfg.publication, &tables).await?;
        let existing = catalog.slot(slot).await?;
        match &existing {
            Some(info) => check_slot(info, slot, &params)?,
            None if slot_must_exist => {
                return Err(Error::fatal(
                    format!("replication slot {slot:?} does not exist, but the state directory has sink offsets in it"),
                    "the slot was dropped and changes since may be gone; to start over from now run `outflow offsets reset --sink NAME` for each sink",
                ))
            }
            None => {}
        }
        let mut conn = ReplicationConn::connect(&params).await?;
        let ident = conn.simple_query("IDENTIFY_SYSTEM").await.map_err(|e| query_error("IDENTIFY_SYSTEM", e))?;
        let system_identifier = ident.first().and_then(|r| r.first().cloned().flatten()).unwrap_or_default();
        if existing.is_none() {
            let sql = format!(
                "CREATE_REPLICATION_SLOT \"{}\" {}LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                slot.replace('"', "\"\""),
                if temporary { "TEMPORARY " } else { "" }
            );
            conn.simple_query(&sql).await.map_err(|e| match e {
                QueryError::Server(se) if se.code == "42501" => Error::fatal(
                    format!("user {:?} may not create replication slots: {}", params.user, se.message),
                    format!("ALTER ROLE {} WITH REPLICATION;", super::catalog::ident(&params.user)),
                ),
                QueryError::Server(se) if se.code == "53400" => Error::fatal(
                    format!("cannot create replication slot {slot:?}: {}", se.message),
                    "raise max_replication_slots on the server (needs a restart), or drop unused slots",
                ),
                other => query_error("creating the replication slot", other),
            })?;
            if !temporary {
                tracing::info!(slot, "created replication slot");
            }
        }
        Ok(PgSource {
            params,
            catalog,
            conn,
            slot: slot.to_string(),
            publication: cfg.publication.clone(),
            system_identifier,
            wal_warn_bytes: cfg.wal_warn_bytes(),
            tables: tables.into_iter().map(|(s, t)| TableId::new(s, t)).collect(),
            snapshot: None,
            exit_after_snapshot: false,
            snapshots: None,
        })
    }

    /// Streams into `sinks` until `stop` is cancelled or, with `until`, the
    /// server position read at start has been reached. Returns after every
    /// sink has drained and committed, and the final position was reported.
    pub async fn stream(
        mut self,
        sinks: &mut [SinkHandle],
        state: Option<&StateDir>,
        until_caught_up: bool,
        stop: CancellationToken,
    ) -> Result<()> {
        let target = if until_caught_up { Some(self.catalog.wal_insert_end().await?) } else { None };
        // The server may restart between this run's setup and here (the
        // sinks' start takes a while): a lost connection is retried below.
        let started = self.start_replication(sinks).await;
        let retention =
            tokio::spawn(super::retention::watch(self.params.clone(), self.slot.clone(), self.wal_warn_bytes));

        let mut result = match started {
            Ok(()) => self.pump(sinks, state, target, &stop).await,
            Err(e) => Err(e),
        };
        // A lost connection (server restart, network) is retried with backoff
        // while the sinks keep their place: they skip what the server resends.
        // A snapshot in flight is not: its chunks are tied to the old stream.
        // A detached sink that can take more is re-attached the same way, by
        // streaming again from the minimum durable position (no backoff).
        let mut attempt = 0u32;
        loop {
            let wait = match &result {
                Ok(Flow::Done) => break,
                Ok(Flow::Rejoin) => {
                    reattach(sinks);
                    Duration::ZERO
                }
                Err(e) => {
                    let snapshot_running = self.snapshots.as_ref().is_some_and(|s| !s.windows.finished());
                    if e.class != ErrorClass::Transient || snapshot_running || stop.is_cancelled() {
                        break;
                    }
                    metrics().error(e.class);
                    attempt += 1;
                    health().set_phase(Phase::Reconnecting { attempt, error: e.message.clone() });
                    let wait = reconnect_delay(attempt);
                    tracing::warn!(error = %e.message, retry_in_ms = wait.as_millis() as u64, attempt, "replication connection lost; reconnecting");
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.reconnect(sinks).await {
                Ok(()) => {
                    if attempt > 0 {
                        metrics().reconnects.inc();
                        tracing::info!("reconnected");
                    }
                    attempt = 0;
                    result = self.pump(sinks, state, target, &stop).await;
                }
                Err(e) if e.class == ErrorClass::Transient => result = Err(e),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Drain the sinks whatever happened, so what they received is committed.
        retention.abort();
        health().set_phase(Phase::Stopping);
        let sink_result = finish_all(sinks).await;
        if let Some(p) = min_durable(sinks) {
            let _ = self.conn.send_status(p.pg_ack_lsn(), false).await;
        }
        self.conn.close().await;
        result.map(|_| ()).and(sink_result)
    }

    /// New connections after a loss (or to re-attach a sink), streaming
    /// again from what every sink has made durable. The old connection is
    /// ended first; the slot its walsender held is free a moment later, and
    /// one still held after a few tries is a transient condition.
    async fn reconnect(&mut self, sinks: &[SinkHandle]) -> Result<()> {
        self.catalog = Catalog::connect(&self.params).await?;
        let old = std::mem::replace(&mut self.conn, ReplicationConn::connect(&self.params).await?);
        old.close().await;
        let mut tries = 0;
        loop {
            match self.start_replication(sinks).await {
                Err(e) if e.message.contains("is in use by another process") => {
                    tries += 1;
                    if tries >= 20 {
                        return Err(Error::transient(e.message));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.conn = ReplicationConn::connect(&self.params).await?;
                }
                other => return other,
            }
        }
    }

    /// START_REPLICATION from the minimum durable position over the sinks.
    async fn start_replication(&mut self, sinks: &[SinkHandle]) -> Result<()> {
        let start = min_durable(sinks).map(|p| p.pg_ack_lsn()).unwrap_or(0);
        let sql = format!(
            "START_REPLICATION SLOT \"{}\" LOGICAL {} (proto_version '1', publication_names '{}', messages 'true')",
            self.slot.replace('"', "\"\""),
            format_lsn(start),
            super::catalog::ident(&self.publication).replace('\'', "''"),
        );
        self.conn.start_replication(&sql).await.map_err(|e| match e {
            QueryError::Server(se) if se.code == "55006" => Error::fatal(
                format!("replication slot {:?} is in use by another process: {}", self.slot, se.message),
                "stop the other consumer, or give this pipeline its own [source] slot",
            ),
            QueryError::Server(se) if se.code == "42704" => Error::fatal(
                format!("replication slot {:?} does not exist: {}", self.slot, se.message),
                "the slot was dropped; reset the sinks' offsets and run again to create it",
            ),
            other => query_error("START_REPLICATION", other),
        })?;
        tracing::info!(slot = %self.slot, lsn = %format_lsn(start), "streaming");
        health().set_phase(Phase::Streaming);
        Ok(())
    }

    async fn pump(
        &mut self,
        sinks: &mut [SinkHandle],
        state: Option<&StateDir>,
        target: Option<u64>,
        stop: &CancellationToken,
    ) -> Result<Flow> {
        let mut snapshots = self.snapshots.take().or_else(|| self.start_snapshots());
        if let Some(state) = state {
            self.take_snapshot_requests(state, &mut snapshots);
        }
        let result = self.pump_with(sinks, state, target, stop, &mut snapshots).await;
        self.snapshots = snapshots;
        result
    }

    async fn pump_with(
        &mut self,
        sinks: &mut [SinkHandle],
        state: Option<&StateDir>,
        target: Option<u64>,
        stop: &CancellationToken,
        snapshots: &mut Option<Snapshots>,
    ) -> Result<Flow> {
        let mut decoder = PgDecoder::new();
        let mut batch: Vec<StreamItem> = Vec::with_capacity(BATCH_ITEMS);
        let mut decoded: Vec<StreamItem> = Vec::new();
        let mut acked = min_durable(sinks).map(|p| p.pg_ack_lsn()).unwrap_or(0);
        let mut last_heartbeat = 0u64;
        let mut last_emitted: Option<Position> = None;
        let mut reached = target.is_none();
        let mut durable_changed: Vec<_> = sinks.iter().map(|s| s.durable_watch()).collect();
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        let mut poll_tick = tokio::time::interval(Duration::from_millis(250));
        poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut request_tick = tokio::time::interval(Duration::from_secs(1));
        let mut rejoin_tick = tokio::time::interval(Duration::from_millis(250));

        loop {
            let snapshot_done = snapshots.as_ref().is_none_or(|s| s.windows.finished());
            let done =
                if self.exit_after_snapshot { snapshot_done } else { target.is_some() && reached && snapshot_done };
            // Done only once every sink has everything: a detached one first rejoins.
            if done && !any_detached(sinks) {
                break;
            }
            let msg = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                m = self.conn.next_replication_message() => m?,
                r = receive(snapshots) => {
                    r?;
                    continue;
                }
                _ = any_changed(&mut durable_changed) => {
                    acked = self.report(sinks, acked).await?;
                    continue;
                }
                _ = status_tick.tick() => {
                    acked = self.report(sinks, acked).await?;
                    continue;
                }
                _ = poll_tick.tick(), if !reached && !decoder.in_transaction() => {
                    // Ask for a keepalive: its WAL end tells us how far the server has sent.
                    self.conn.send_status(acked, true).await?;
                    continue;
                }
                _ = rejoin_tick.tick(), if snapshot_done && any_detached(sinks) => {
                    match rejoin_ready(sinks) {
                        Some(flow) => return Ok(flow),
                        None => continue,
                    }
                }
                _ = request_tick.tick(), if state.is_some() => {
                    if let Some(state) = state {
                        self.take_snapshot_requests(state, snapshots);
                    }
                    continue;
                }
            };
            let Some(msg) = msg else {
                return Err(Error::transient("postgres ended the replication stream"));
            };
            match msg {
                ReplicationMessage::XLogData { wal_start, data } => {
                    health().server_end(wal_start);
                    self.decode(&mut decoder, wal_start, &data, &mut decoded).await?;
                    for item in decoded.drain(..) {
                        match &item {
                            StreamItem::SchemaChange(schema) => {
                                if let Some(state) = state {
                                    state.record_schema(&schema.id.to_string(), schema_json(schema))?;
                                }
                            }
                            StreamItem::Commit { position, .. } => {
                                reached |= target.is_some_and(|t| position.pg_ack_lsn() >= t);
                            }
                            StreamItem::Change(ev) => {
                                if let Some(s) = snapshots.as_mut() {
                                    s.windows.on_change(ev);
                                }
                            }
                            StreamItem::Message(m) => {
                                if let Some(s) = snapshots.as_mut() {
                                    if s.windows.on_message(m, &mut batch).await? {
                                        continue;
                                    }
                                }
                            }
                            _ => {}
                        }
                        batch.push(item);
                    }
                    if let Some(p) = batch.iter().rev().find_map(StreamItem::position) {
                        last_emitted = Some(p.clone());
                    }
                }
                ReplicationMessage::Keepalive { wal_end, reply_requested } => {
                    health().server_end(wal_end);
                    // A keepalive right after a non-transactional message
                    // (a watermark, its snapshot chunk) reports the message's
                    // own LSN, which sorts before the message (`lsn:M` <
                    // `lsn:M:1`): only a position past what was emitted is news.
                    let heartbeat = Position::pg(wal_end);
                    if !decoder.in_transaction()
                        && wal_end > last_heartbeat
                        && last_emitted.as_ref().is_none_or(|l| heartbeat > *l)
                    {
                        last_heartbeat = wal_end;
                        batch.push(StreamItem::Heartbeat { position: heartbeat });
                        reached |= target.is_some_and(|t| wal_end >= t);
                    }
                    if reply_requested {
                        // The server waits for our confirmation (at shutdown a
                        // walsender stays until all it sent is confirmed, holding
                        // up a fast shutdown): sinks that commit in larger units
                        // (Parquet files) make what they have durable now. The
                        // reply carries what is durable now: while the server asks
                        // again at once, replication messages are always ready and
                        // the durable-change branch above would never run.
                        ask_durable_now(sinks);
                        acked = self.report(sinks, acked).await?;
                    }
                }
            }
            if !batch.is_empty() && (batch.len() >= BATCH_ITEMS || reached || !self.conn.has_buffered_message()) {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                if send_all(sinks, full).await.is_err() {
                    return Ok(Flow::Done); // a sink stopped; `finish` reports why
                }
            }
        }
        // Whole items decoded before the stop (e.g. the last snapshot chunk
        // for `initial_only`) still go to the sinks.
        if !batch.is_empty() {
            let _ = send_all(sinks, batch).await;
        }
        Ok(Flow::Done)
    }

    /// Starts the readers of this run's snapshot plan, if any.
    fn start_snapshots(&mut self) -> Option<Snapshots> {
        let plan = self.snapshot.take()?;
        let mut snapshots = Snapshots::new(format!("{:x}", rand_seed()), plan.parallelism, plan.chunk_size);
        for (table, progress) in plan.tables {
            if !progress.done {
                self.spawn_reader(&mut snapshots, table, progress);
            }
        }
        Some(snapshots)
    }

    fn spawn_reader(&self, snapshots: &mut Snapshots, table: TableId, progress: TableSnapshot) {
        let (params, run, chunk_size) =
            (self.params.clone(), snapshots.windows.run().to_string(), snapshots.chunk_size);
        snapshots.spawn(move |tx, parallel| async move {
            super::snapshot::snapshot_table(&params, &run, table, progress, chunk_size, parallel, &tx).await
        });
    }

    /// Starts a snapshot for each table `outflow snapshot --table` asked for.
    fn take_snapshot_requests(&mut self, state: &StateDir, snapshots: &mut Option<Snapshots>) {
        for name in state.snapshot_requests() {
            let Some(table) = self.tables.iter().find(|t| t.to_string() == name).cloned() else {
                tracing::warn!(table = %name, "snapshot asked for a table that is not captured; ignoring it");
                state.take_snapshot_request(&name);
                continue;
            };
            let snapshots = snapshots.get_or_insert_with(|| Snapshots::new(format!("{:x}", rand_seed()), 2, 10_000));
            tracing::info!(table = %table, "snapshot requested");
            self.spawn_reader(snapshots, table, TableSnapshot::default());
            state.take_snapshot_request(&name);
        }
    }

    /// Decodes one XLogData payload, first looking up any user-defined
    /// column types a Relation message mentions.
    async fn decode(
        &self,
        decoder: &mut PgDecoder,
        wal_start: u64,
        data: &[u8],
        out: &mut Vec<StreamItem>,
    ) -> Result<()> {
        let mut msg = pgoutput::parse(data).map_err(|e| decode_error(wal_start, &e))?;
        if let pgoutput::PgMessage::Relation(rel) = &mut msg {
            // pgoutput flags the replica identity's columns (all of them under
            // FULL); the key users expect, like Debezium's, is the primary key.
            let pk = self.catalog.primary_key(rel.rel_id).await?;
            if !pk.is_empty() {
                for col in &mut rel.columns {
                    col.key = pk.iter().any(|k| k == col.name);
                }
            }
        }
        for oid in PgDecoder::unknown_types(&msg, decoder.types()) {
            let (name, ty) = self.catalog.lookup_type(oid).await?;
            decoder.types_mut().register_name(oid, name);
            decoder.types_mut().register(oid, ty);
        }
        decoder.decode_message(wal_start, msg, out).map_err(|e| decode_error(wal_start, &e))
    }

    /// Reports the minimum durable position to the server (also a sign of
    /// life, so the server does not time the connection out).
    async fn report(&mut self, sinks: &[SinkHandle], acked: u64) -> Result<u64> {
        let durable = min_durable(sinks).map(|p| p.pg_ack_lsn()).unwrap_or(acked).max(acked);
        self.conn.send_status(durable, false).await?;
        Ok(durable)
    }
}

/// Which server, database and slot `cfg` points at, read without
/// creating anything (to compare with a state directory's `source.json`).
pub async fn probe_identity(cfg: &SourceConfig) -> Result<crate::state::SourceIdentity> {
    let params = PgParams::from_url(&cfg.url)?;
    let catalog = Catalog::connect(&params).await?;
    Ok(crate::state::SourceIdentity {
        kind: "postgres".into(),
        system_identifier: catalog.system_identifier().await?,
        database: params.dbname.clone(),
        slot: cfg.slot.clone(),
    })
}

/// A run id for watermarks: differs between runs (pid, clock, random hasher keys).
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// Waits until any sink publishes a new durable position.
async fn any_changed(watches: &mut [tokio::sync::watch::Receiver<Option<Position>>]) {
    if watches.is_empty() {
        return std::future::pending().await;
    }
    let futures = watches.iter_mut().map(|w| Box::pin(w.changed()));
    let (result, _, _) = futures::future::select_all(futures).await;
    if result.is_err() {
        // The sink is gone; its error surfaces through `finish`.
        std::future::pending::<()>().await;
    }
}

fn check_slot(info: &SlotInfo, slot: &str, params: &PgParams) -> Result<()> {
    if info.plugin.as_deref() != Some("pgoutput") {
        return Err(Error::fatal(
            format!(
                "replication slot {slot:?} exists but uses plugin {:?}, not pgoutput",
                info.plugin.as_deref().unwrap_or("none")
            ),
            "choose another [source] slot name, or drop that slot",
        ));
    }
    if info.database.as_deref() != Some(params.dbname.as_str()) {
        return Err(Error::fatal(
            format!(
                "replication slot {slot:?} belongs to database {:?}, not {:?}",
                info.database.as_deref().unwrap_or(""),
                params.dbname
            ),
            "choose another [source] slot name: slots are per database",
        ));
    }
    if info.wal_status.as_deref() == Some("lost") {
        // Streaming from it would silently skip what the server removed.
        return Err(Error::fatal(
            format!("replication slot {slot:?} was invalidated (wal_status lost): the server removed WAL it still needed"),
            format!(
                "the changes in between are gone: SELECT pg_drop_replication_slot('{}'); then `outflow offsets reset --sink NAME` for every sink (they re-snapshot)",
                slot.replace('\'', "''")
            ),
        ));
    }
    if info.active {
        return Err(Error::fatal(
            format!("replication slot {slot:?} is in use by process {}", info.active_pid.unwrap_or(0)),
            "stop the other consumer, or give this pipeline its own [source] slot",
        ));
    }
    Ok(())
}

fn query_error(what: &str, e: QueryError) -> Error {
    match e {
        QueryError::Server(se) => server_error(what, &se),
        QueryError::Io(e) => e,
    }
}

fn decode_error(lsn: u64, e: &outflow_decoders::DecodeError) -> Error {
    Error::fatal(
        format!("cannot decode the change at lsn {}: {e}", format_lsn(lsn)),
        "nothing after it was acknowledged; please report this with the server version and the table's definition",
    )
}

fn schema_json(schema: &outflow_model::TableSchema) -> serde_json::Value {
    serde_json::json!({
        "version": schema.version,
        "recorded_at": crate::state::now_rfc3339(),
        "columns": schema.columns.iter().map(|c| serde_json::json!({
            "name": c.name,
            "type": c.type_name,
            "type_id": c.type_id,
            "type_modifier": c.type_modifier,
            "key": c.key,
        })).collect::<Vec<_>>(),
    })
}
