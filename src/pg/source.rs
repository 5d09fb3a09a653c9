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
//! sinks to make everything durable now (`Emit::ask_durable_now`) rather
//! than at their next roll.
//!
//! Reconnects (with backoff, by the driver in `src/stream.rs`) and rejoins
//! stream again from the minimum durable position over the sinks, which
//! skip what they already have. A rejoin waits for a running snapshot to
//! complete: its windows are watermarks in the stream.
//!
//! While streaming, a task watches the WAL the slot retains (see
//! `retention.rs`), and the live state (`src/health.rs`) learns the
//! server's WAL end.

use std::time::Duration;

use outflow_decoders::pg_decoder::PgDecoder;
use outflow_decoders::pgoutput;
use outflow_decoders::pgtypes::binary;
use outflow_model::position::format_lsn;
use outflow_model::{Position, StreamItem, TableFilter, TableId};
use outflow_sinks::SinkContext;

use super::catalog::{Catalog, SlotInfo};
use super::publication::Published;
use super::config::PgConfig;
use outflow_pgconn::PgParams;
use super::replication::{server_error, QueryError, ReplicationConn, ReplicationMessage};
use super::sql::ident;
use crate::error::{Error, Result};
use crate::health::health;
use crate::snapshot::Snapshots;
use crate::source::{Emit, Source, SourceFactory};
use crate::state::{SourceIdentity, TableSnapshot};
use crate::transform::Transforms;

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
    /// The patterns, to find tables created later.
    filter: TableFilter,
    /// The global transforms, whose exclusions a new table's column list carries.
    transforms: Transforms,
    /// New tables that could not be added to the publication (warned once).
    unaddable: Vec<TableId>,
    /// `conn` is the one `prepare` opened, not yet streaming.
    fresh: bool,
    /// A transient error in `start`: connect the catalog again first.
    stale_catalog: bool,
    /// The task watching the WAL the slot retains (`retention.rs`).
    retention: Option<tokio::task::JoinHandle<()>>,
    /// `--until-caught-up`: the server's WAL position at start.
    target: Option<u64>,
    /// The target has been handed over (true without a target).
    reached: bool,
    /// The message `recv` took, for `read`.
    pending: Option<ReplicationMessage>,
    /// `[source] binary`, until a column of a type outflow cannot decode
    /// in binary turns up (then text for the rest of the run).
    binary: bool,
    /// This connection streams in binary mode.
    binary_now: bool,
    /// On a standby: the WAL end of the last keepalive between two
    /// transactions — everything before it is decoded, and any later
    /// transaction commits at or after it (see [`PgSource::place_on_standby`]).
    room: u64,
    /// On a standby: snapshot windows or chunks wait for their place.
    placing: bool,
    decoder: PgDecoder,
    decoded: Vec<StreamItem>,
    /// What the server was last told is durable.
    acked: u64,
    last_heartbeat: u64,
    /// The last position handed over (keepalives are compared with it).
    last_emitted: Option<Position>,
}

impl PgSource {
    /// Connects, checks the server, and creates what is missing. A
    /// `temporary` slot disappears when the connection ends (for `tail`).
    /// With `slot_must_exist` a missing slot is an error instead of being
    /// created (sinks have offsets: a new slot would silently skip changes).
    pub async fn prepare(
        cfg: &PgConfig,
        slot: &str,
        temporary: bool,
        slot_must_exist: bool,
        transforms: &Transforms,
    ) -> Result<PgSource> {
        let params = PgParams::from_url(&cfg.url, "[source] url")?;
        let catalog = Catalog::connect(&params).await?;
        catalog.check_wal_level().await?;
        catalog.check_standby().await?;
        let filter = cfg.table_filter()?;
        let tables = catalog.resolve_tables(&filter).await?;
        catalog.ensure_publication(&cfg.publication, &Published::all(&tables, transforms)).await?;
        let mut binary = cfg.binary;
        if binary {
            if let Some(column) = catalog.first_non_binary_column(&tables).await? {
                tracing::info!(column = %column, "binary = true, but this column's type has no binary decoding in outflow: streaming in text");
                binary = false;
            }
        }
        let failover = cfg.failover && !temporary;
        if failover && (catalog.standby || catalog.version_num().await? < 170000) {
            return Err(Error::config(
                format!("[source] failover = true needs the primary of PostgreSQL 17 or later; {} is not", params.display()),
                "set failover = false, or point [source] url at a PostgreSQL 17+ primary",
            ));
        }
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
        let quoted = slot.replace('"', "\"\"");
        if failover && existing.as_ref().is_some_and(|s| s.failover == Some(false)) {
            conn.simple_query(&format!("ALTER_REPLICATION_SLOT \"{quoted}\" (FAILOVER true)"))
                .await
                .map_err(|e| query_error("making the slot a failover slot", e))?;
            tracing::info!(slot, "made the replication slot a failover slot");
        }
        if existing.is_none() {
            let sql = format!(
                "CREATE_REPLICATION_SLOT \"{quoted}\" {}LOGICAL pgoutput {}",
                if temporary { "TEMPORARY " } else { "" },
                if failover { "(SNAPSHOT 'nothing', FAILOVER true)" } else { "NOEXPORT_SNAPSHOT" }
            );
            let create = conn.simple_query(&sql);
            tokio::pin!(create);
            let created = tokio::select! {
                created = &mut create => created,
                never = note_standby_wait(catalog.standby) => match never {},
            };
            created.map_err(|e| match e {
                QueryError::Server(se) if se.code == "42501" => Error::fatal(
                    format!("user {:?} may not create replication slots: {}", params.user, se.message),
                    format!("ALTER ROLE {} WITH REPLICATION;", super::sql::ident(&params.user)),
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
            filter,
            transforms: transforms.clone(),
            unaddable: Vec::new(),
            fresh: true,
            stale_catalog: false,
            retention: None,
            target: None,
            reached: true,
            pending: None,
            binary,
            binary_now: false,
            room: 0,
            placing: false,
            decoder: PgDecoder::new(),
            decoded: Vec::new(),
            acked: 0,
            last_heartbeat: 0,
            last_emitted: None,
        })
    }

    /// New connections after a loss (or to re-attach a sink), streaming
    /// again from what every sink has made durable. The old connection is
    /// ended first; the slot its walsender held is free a moment later, and
    /// one still held after a few tries is a transient condition.
    async fn reconnect(&mut self, start: u64) -> Result<()> {
        self.catalog = Catalog::connect(&self.params).await?;
        let old = std::mem::replace(&mut self.conn, ReplicationConn::connect(&self.params).await?);
        old.close().await;
        let mut tries = 0;
        loop {
            match self.start_replication(start).await {
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

    /// START_REPLICATION from `start`, the minimum durable position over the sinks.
    async fn start_replication(&mut self, start: u64) -> Result<()> {
        self.binary_now = self.binary;
        let sql = format!(
            "START_REPLICATION SLOT \"{}\" LOGICAL {} (proto_version '1', publication_names '{}', messages 'true'{})",
            self.slot.replace('"', "\"\""),
            format_lsn(start),
            ident(&self.publication).replace('\'', "''"),
            if self.binary_now { ", binary 'true'" } else { "" },
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
        Ok(())
    }

    /// Decodes one XLogData payload, first looking up any user-defined
    /// column types a Relation message mentions.
    async fn decode(&mut self, wal_start: u64, data: &[u8]) -> Result<()> {
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
            // Nor does it send nullability (a record schema's `optional`).
            let not_null = self.catalog.not_null_columns(rel.rel_id).await?;
            for col in &mut rel.columns {
                col.not_null = not_null.iter().any(|n| n == col.name);
            }
        }
        for oid in PgDecoder::unknown_types(&msg, self.decoder.types()) {
            let (name, ty) = self.catalog.lookup_type(oid).await?;
            self.decoder.types_mut().register_name(oid, name);
            self.decoder.types_mut().register(oid, ty);
        }
        if let (true, pgoutput::PgMessage::Relation(rel)) = (self.binary_now, &msg) {
            // Its rows would come in binary form outflow cannot decode: the
            // stream starts again (from what the sinks have) in text mode.
            let types = self.decoder.types();
            if let Some(col) = rel.columns.iter().find(|c| !binary::supported(&types.resolve(c.type_oid))) {
                self.binary = false;
                tracing::info!(table = %format!("{}.{}", rel.namespace, rel.name), column = %col.name, "binary = true, but this column's type has no binary decoding in outflow: streaming in text from now on");
                return Err(Error::transient("switching the stream to text mode"));
            }
        }
        self.decoder.decode_message(wal_start, msg, &mut self.decoded).map_err(|e| decode_error(wal_start, &e))
    }
}

impl Source for PgSource {
    fn identity(&self) -> SourceIdentity {
        SourceIdentity {
            kind: "postgres".into(),
            system_identifier: self.system_identifier.clone(),
            database: self.params.dbname.clone(),
            slot: self.slot.clone(),
        }
    }

    fn sink_context(&self, pipeline: &str) -> SinkContext {
        SinkContext {
            pipeline: pipeline.to_string(),
            dialect: outflow_model::Dialect::Postgres,
            db: self.params.dbname.clone(),
        }
    }

    fn tables(&self) -> &[TableId] {
        &self.tables
    }

    async fn start(&mut self, _saved: Option<&Position>, until_caught_up: bool) -> Result<()> {
        if std::mem::take(&mut self.stale_catalog) {
            self.catalog = Catalog::connect(&self.params).await?;
        }
        if until_caught_up {
            match self.catalog.wal_insert_end().await {
                Ok(end) => self.target = Some(end),
                Err(e) => {
                    self.stale_catalog = true;
                    return Err(e);
                }
            }
        }
        if self.retention.is_none() {
            let watch = super::retention::watch(self.params.clone(), self.slot.clone(), self.wal_warn_bytes);
            self.retention = Some(tokio::spawn(watch));
        }
        Ok(())
    }

    async fn open(&mut self, from: Option<&Position>) -> Result<()> {
        let start = from.map(|p| p.pg_ack_lsn()).unwrap_or(0);
        // The server may restart between this run's setup and here (the
        // sinks' start takes a while): a failed first start reconnects too.
        if std::mem::take(&mut self.fresh) {
            self.start_replication(start).await?;
        } else {
            self.reconnect(start).await?;
        }
        self.decoder = PgDecoder::new();
        self.decoded.clear();
        self.pending = None;
        self.acked = start;
        self.room = 0;
        self.last_heartbeat = 0;
        // Items outflow adds on a standby must sort after what the sinks have.
        self.last_emitted = from.cloned();
        self.reached = self.target.is_none();
        Ok(())
    }

    async fn recv(&mut self) -> Result<()> {
        match self.conn.next_replication_message().await? {
            Some(msg) => {
                self.pending = Some(msg);
                Ok(())
            }
            None => Err(Error::transient("postgres ended the replication stream")),
        }
    }

    async fn read(&mut self, out: &mut Emit<'_>) -> Result<()> {
        match self.pending.take() {
            None => {}
            Some(ReplicationMessage::XLogData { wal_start, data }) => {
                health().server_end(wal_start);
                self.decode(wal_start, &data).await?;
                for item in self.decoded.drain(..) {
                    match &item {
                        StreamItem::Commit { position, .. } => {
                            self.reached |= self.target.is_some_and(|t| position.pg_ack_lsn() >= t);
                        }
                        StreamItem::Message(m) => {
                            if let (Some(s), batch) = out.snapshots_and_batch() {
                                if super::watermark::on_message(&mut s.windows, m, batch).await? {
                                    continue;
                                }
                            }
                        }
                        _ => {}
                    }
                    out.push(item)?;
                }
                if let Some(p) = out.last_position() {
                    self.last_emitted = Some(p.clone());
                }
            }
            Some(ReplicationMessage::Keepalive { wal_end, reply_requested }) => {
                health().server_end(wal_end);
                if self.catalog.standby {
                    if !self.decoder.in_transaction() && wal_end > self.room {
                        self.room = wal_end;
                        self.place_on_standby(out);
                        self.reached |= self.target.is_some_and(|t| wal_end >= t);
                    }
                    if reply_requested {
                        out.ask_durable_now();
                    }
                    return Ok(());
                }
                // A keepalive right after a non-transactional message
                // (a watermark, its snapshot chunk) reports the message's
                // own LSN, which sorts before the message (`lsn:M` <
                // `lsn:M:1`): only a position past what was emitted is news.
                let heartbeat = Position::pg(wal_end);
                if !self.decoder.in_transaction()
                    && wal_end > self.last_heartbeat
                    && self.last_emitted.as_ref().is_none_or(|l| heartbeat > *l)
                {
                    self.last_heartbeat = wal_end;
                    out.push_heartbeat(heartbeat);
                    self.reached |= self.target.is_some_and(|t| wal_end >= t);
                }
                if reply_requested {
                    // The server waits for our confirmation (at shutdown a
                    // walsender stays until all it sent is confirmed, holding
                    // up a fast shutdown).
                    out.ask_durable_now();
                }
            }
        }
        Ok(())
    }

    /// On a standby, between two transactions: opens the snapshot windows
    /// readers asked for and places the chunks the stream is past (see
    /// [`PgSource::place_on_standby`]).
    fn place_snapshots(&mut self, out: &mut Emit<'_>) {
        if self.catalog.standby && !self.decoder.in_transaction() {
            self.place_on_standby(out);
        }
    }

    fn caught_up(&self) -> bool {
        self.target.is_some() && self.reached
    }

    /// Until the target is reached, messages already buffered join the batch.
    fn hold_batch(&self) -> bool {
        !self.reached && self.conn.has_buffered_message()
    }

    /// Reports the minimum durable position to the server (also a sign of
    /// life, so the server does not time the connection out); never less
    /// than what it was told before.
    async fn acknowledge(&mut self, durable: Option<&Position>) -> Result<()> {
        let durable = durable.map(|p| p.pg_ack_lsn()).unwrap_or(self.acked).max(self.acked);
        self.conn.send_status(durable, false).await?;
        self.acked = durable;
        Ok(())
    }

    /// Also while a chunk read on a standby waits for the stream to pass
    /// its position (an idle stream moves only with keepalives).
    fn wants_probe(&self) -> bool {
        (!self.reached || self.placing) && !self.decoder.in_transaction()
    }

    /// Asks for a keepalive: its WAL end tells how far the server has sent.
    async fn probe(&mut self) -> Result<()> {
        self.conn.send_status(self.acked, true).await
    }

    fn rejoin_during_snapshot(&self) -> bool {
        false
    }

    /// Adds new matching tables to the publication; they are snapshotted,
    /// as rows written before they were added are not in the stream.
    async fn discover_tables(&mut self) -> Vec<TableId> {
        let filter = self.filter.clone();
        match self.capture_new(&filter).await {
            Ok(new) => {
                for table in &new {
                    tracing::info!(table = %table, "captured a new table that matches [source] tables");
                }
                new
            }
            Err((new, e)) => {
                if new.is_empty() {
                    tracing::debug!(error = %e.message, "cannot look for new tables");
                }
                for table in &new {
                    tracing::warn!(table = %table, error = %e.message, hint = e.hint.as_deref().unwrap_or(""), "a new table matches [source] tables but cannot be added to the publication; it is not captured");
                }
                self.unaddable.extend(new);
                Vec::new()
            }
        }
    }

    async fn add_tables(&mut self, patterns: &[String]) -> Result<Vec<TableId>> {
        let filter = self.filter.including(patterns).map_err(|e| {
            Error::config(format!("tables to add: {e}"), "write tables as \"schema.table\" globs or \"re:<regex>\"")
        })?;
        self.unaddable.clear();
        let new = self.capture_new(&filter).await.map_err(|(_, e)| e)?;
        self.filter = filter;
        Ok(new)
    }

    fn check_condition(&self, table: &TableId, condition: &str) -> impl std::future::Future<Output = Result<()>> + Send {
        let (params, table, condition) = (self.params.clone(), table.clone(), condition.to_string());
        async move { super::snapshot::check_condition(&params, &table, &condition).await }
    }

    fn spawn_reader(&self, snapshots: &mut Snapshots, table: TableId, progress: TableSnapshot, condition: Option<String>) {
        let (params, run, chunk_size) =
            (self.params.clone(), snapshots.windows.run().to_string(), snapshots.chunk_size);
        let exclude: Vec<String> = self.transforms.excluded_columns(&table).into_iter().map(String::from).collect();
        snapshots.spawn(table.clone(), move |tx, parallel| async move {
            let condition = condition.as_deref();
            super::snapshot::snapshot_table(&params, &run, table, progress, chunk_size, parallel, &tx, &exclude, condition)
                .await
        });
    }

    async fn close(self, durable: Option<Position>) {
        if let Some(retention) = &self.retention {
            retention.abort();
        }
        let mut conn = self.conn;
        if let Some(p) = durable {
            let _ = conn.send_status(p.pg_ack_lsn(), false).await;
        }
        conn.close().await;
    }
}

impl PgSource {
    /// Snapshots on a standby (no watermarks, see `snapshot.rs`), and its
    /// heartbeats: items outflow adds between transactions need positions
    /// strictly after everything emitted and strictly before any later
    /// transaction. A keepalive's WAL end W gives that room: every later
    /// transaction commits at W or after, so `lsn:<W-1>:<n>` fits (after an
    /// item at W-1 itself, its next indexes). A chunk consistent with replay
    /// position H is emitted once W reaches H; the heartbeat follows it.
    /// Windows the readers asked for open at any point between transactions.
    fn place_on_standby(&mut self, out: &mut Emit<'_>) {
        let w = self.room;
        if let (Some(s), _) = out.snapshots_and_batch() {
            s.windows.open_pending(&Position::pg(w));
            self.placing = s.windows.waiting();
        }
        let last = out.last_position().cloned().max(self.last_emitted.clone());
        let (lsn, mut index) = match last {
            _ if w == 0 => return,
            Some(Position::Pg { lsn, index }) if lsn == w - 1 => (lsn, index),
            Some(Position::Pg { lsn, .. }) if lsn >= w => return,
            _ => (w - 1, 0),
        };
        let mut next = || {
            index += 1;
            Position::Pg { lsn, index }
        };
        let (snapshots, batch) = out.snapshots_and_batch();
        if let Some(s) = snapshots {
            s.windows.emit_reached(|high| *high <= Position::pg(w), &mut next, batch);
            self.placing = s.windows.waiting();
        }
        if w > self.last_heartbeat {
            self.last_heartbeat = w;
            out.push_heartbeat(next());
        }
        self.last_emitted = out.last_position().cloned().or(self.last_emitted.take());
    }

    /// Captures the tables `filter` matches that are not captured yet: adds
    /// them to the publication and to the stream. On error, the new tables
    /// and why they could not be added.
    async fn capture_new(&mut self, filter: &TableFilter) -> std::result::Result<Vec<TableId>, (Vec<TableId>, Error)> {
        let found = self.catalog.matching_tables(filter).await.map_err(|e| (Vec::new(), e))?;
        let new: Vec<TableId> = found
            .iter()
            .map(|(s, t)| TableId::new(s, t))
            .filter(|t| !self.tables.contains(t) && !self.unaddable.contains(t))
            .collect();
        if new.is_empty() {
            return Ok(new);
        }
        let published = Published::all(&found, &self.transforms);
        if let Err(e) = self.catalog.ensure_publication(&self.publication, &published).await {
            return Err((new, e));
        }
        self.tables.extend(new.iter().cloned());
        Ok(new)
    }
}

/// On a standby, creating a slot waits for the primary to log its running
/// transactions, which an idle primary does only every few minutes: says
/// what to run after a few seconds (never returns).
async fn note_standby_wait(standby: bool) -> std::convert::Infallible {
    if standby {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tracing::warn!(
            "creating the replication slot on a standby waits for the primary to log a standby snapshot; \
             an idle primary does so only every few minutes: run SELECT pg_log_standby_snapshot(); on the primary"
        );
    }
    std::future::pending().await
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
