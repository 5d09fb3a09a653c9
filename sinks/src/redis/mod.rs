//! `kind = "redis"`: every change event as an entry of a Redis stream (one
//! stream per table, from the `stream` template), exactly-once by the
//! entries' IDs.
//!
//! Each change is `XADD <stream> [MAXLEN ~ n] <id> key <json key> value
//! <format bytes> op <r|c|u|d|t> table <schema.table> position <position>`.
//! The key is a JSON object of the key columns (`null` without a key or for
//! a truncate); the value is the configured format's bytes (the Debezium
//! envelope by default). Transaction boundaries, logical decoding messages
//! and schema changes carry no entry.
//!
//! Exactly-once ([`ids`]): the entry ID is derived from the source position
//! (PostgreSQL: `<lsn>-<index>`, the position itself) or counted on from
//! the stream's last ID (MySQL/MariaDB, whose GTID and file positions do not
//! fit two u64s in order), and Redis refuses an `XADD` whose ID is not above
//! the stream's last: such a refusal means "already there" and is skipped.
//! On first use of a stream the sink reads its last entry and skips every
//! change at or before that entry's `position`, so neither a crash between
//! an `XADD` and the next checkpoint nor a lost state directory duplicates
//! an entry. outflow must be the only writer of its streams. The sink keeps
//! no snapshot progress of its own: snapshot rows of a chunk written after
//! the last checkpoint are written again (with new positions) when a
//! restarted snapshot redoes that chunk.
//!
//! Delivery: XADDs are pipelined, `pipeline` of them at a time; `write`
//! sends a full pipeline and waits for its replies, `flush` sends the rest
//! and waits, so memory stays bounded and a slow Redis holds the source. A
//! lost or refused connection is retried with backoff, resending the
//! unanswered pipeline (entries that had landed are refused by their IDs);
//! definite errors (credentials, WRONGTYPE, OOM, an entry larger than the
//! server's `proto-max-bulk-len`, checked before sending) stop the run with
//! one line and its fix ([`errors`]).

mod config;
mod errors;
mod factory;
pub mod ids;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use outflow_model::{ChangeEvent, Op, Position, StreamItem, TableId};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::runtime::Handle;

pub use config::RedisConfig;
use config::redact;
use ids::{EntryId, StreamTail};

use crate::format::envelope::EventWriter;
use crate::format::routing::{write_key, NameTemplate};
use crate::format::values::ValueStyle;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

/// How often a wait on Redis says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The part of Redis's refusal of an ID at or below the stream's last one.
const ID_REFUSED: &str = "equal or smaller than the target stream top item";

pub struct RedisSink {
    cfg: RedisConfig,
    template: NameTemplate,
    ctx: SinkContext,
    writer: EventWriter,
    style: ValueStyle,
    runtime: Handle,
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    /// Per stream: its last ID and what it held on first use.
    streams: HashMap<String, StreamTail>,
    table_streams: HashMap<TableId, String>,
    /// XADDs not yet answered.
    pending: redis::Pipeline,
    pending_len: usize,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Bytes of entry keys and values written by this instance.
    bytes: u64,
    /// The server's `proto-max-bulk-len`: the largest value one XADD may carry.
    max_bulk: u64,
}

/// Redis's default `proto-max-bulk-len` (512 MB), assumed when the server
/// does not say (`CONFIG GET` refused to the sink's user).
const DEFAULT_MAX_BULK: u64 = 512 * 1024 * 1024;

/// The server's `proto-max-bulk-len`.
async fn max_bulk_len(mut conn: MultiplexedConnection) -> u64 {
    let reply: Result<Vec<String>, RedisError> =
        redis::cmd("CONFIG").arg("GET").arg("proto-max-bulk-len").query_async(&mut conn).await;
    reply.ok().and_then(|kv| kv.get(1).and_then(|v| v.parse().ok())).unwrap_or(DEFAULT_MAX_BULK)
}

/// One connection attempt, with the timeouts the sink uses.
pub(crate) async fn connect_once(client: &redis::Client) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    client.get_multiplexed_async_connection_with_config(&config).await
}

impl RedisConfig {
    /// Connects (waiting while Redis is down) on the pipeline's runtime.
    pub fn open(&self, ctx: SinkContext, runtime: Handle) -> Result<RedisSink, SinkError> {
        let template = self.check()?;
        let client = self.client()?;
        let style = ValueStyle::new(self.unavailable_value_placeholder.clone());
        let mut pending = redis::pipe();
        pending.ignore_errors();
        let mut sink = RedisSink {
            cfg: self.clone(),
            template,
            writer: EventWriter::new(self.format, style.clone(), ctx.clone()),
            ctx,
            style,
            runtime,
            client,
            conn: None,
            streams: HashMap::new(),
            table_streams: HashMap::new(),
            pending,
            pending_len: 0,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            bytes: 0,
            max_bulk: DEFAULT_MAX_BULK,
        };
        sink.connection()?;
        Ok(sink)
    }
}

impl RedisSink {
    /// The open connection, connecting (with backoff while Redis cannot be
    /// reached) when there is none.
    fn connection(&mut self) -> Result<MultiplexedConnection, SinkError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let mut backoff = Duration::from_millis(100);
        let mut logged: Option<Instant> = None;
        loop {
            match self.runtime.block_on(connect_once(&self.client)) {
                Ok(c) => {
                    self.max_bulk = self.runtime.block_on(max_bulk_len(c.clone()));
                    self.conn = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => self.retry_or_fail(e, &mut backoff, &mut logged, "cannot connect to redis")?,
            }
        }
    }

    /// Fails on a definite error; otherwise logs (now and then), waits and
    /// drops the connection so the next attempt reconnects.
    fn retry_or_fail(
        &mut self,
        e: RedisError,
        backoff: &mut Duration,
        logged: &mut Option<Instant>,
        what: &str,
    ) -> Result<(), SinkError> {
        if let Some(fatal) = errors::definite(&e, &self.cfg.url) {
            return Err(fatal);
        }
        self.conn = None;
        if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
            tracing::warn!(sink = %self.cfg.name, url = %redact(&self.cfg.url), error = %e,
                "{what}; retrying (nothing after the last acknowledged entry is acknowledged to the source)");
            *logged = Some(Instant::now());
        }
        std::thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }

    /// The stream's state, reading its last entry the first time.
    fn tail(&mut self, stream: &str) -> Result<&mut StreamTail, SinkError> {
        if !self.streams.contains_key(stream) {
            let tail = self.read_tail(stream)?;
            if let Some(p) = &tail.recovered {
                tracing::info!(sink = %self.cfg.name, stream, position = %p,
                    "stream already holds changes up to this position; skipping those");
            }
            self.streams.insert(stream.to_string(), tail);
        }
        Ok(self.streams.get_mut(stream).expect("inserted above"))
    }

    /// `XREVRANGE stream + - COUNT 1`: the last entry's ID and position.
    fn read_tail(&mut self, stream: &str) -> Result<StreamTail, SinkError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(stream).arg("+").arg("-").arg("COUNT").arg(1);
        let mut backoff = Duration::from_millis(100);
        let mut logged = None;
        let reply: StreamRangeReply = loop {
            let mut conn = self.connection()?;
            match self.runtime.block_on(cmd.query_async(&mut conn)) {
                Ok(r) => break r,
                Err(e) => self.retry_or_fail(e, &mut backoff, &mut logged, "cannot read a stream's last entry")?,
            }
        };
        let Some(last) = reply.ids.first() else { return Ok(StreamTail::default()) };
        let recovered = last.get::<String>("position").and_then(|p| p.parse::<Position>().ok());
        if recovered.is_none() {
            tracing::warn!(sink = %self.cfg.name, stream, id = %last.id,
                "the stream's last entry has no outflow position; new entries go after its ID");
        }
        Ok(StreamTail { last_id: EntryId::parse(&last.id), recovered })
    }

    fn table_stream(&mut self, table: &TableId) -> String {
        if let Some(s) = self.table_streams.get(table) {
            return s.clone();
        }
        let s = self.template.render(&self.ctx.pipeline, &self.ctx.db, &table.schema, &table.name, String::push_str);
        self.table_streams.insert(table.clone(), s.clone());
        s
    }

    /// Adds the change's XADD to the pipeline (unless the stream holds it).
    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        let stream = self.table_stream(&ev.table.id);
        let tail = self.tail(&stream)?;
        if tail.holds(&ev.position) {
            return Ok(());
        }
        let Some(id) = tail.next_id(&ev.position) else {
            tracing::debug!(stream, position = %ev.position, "the stream is past this change; skipping it");
            return Ok(());
        };
        self.key.clear();
        self.value.clear();
        if ev.op == Op::Truncate || !write_key(&mut self.key, ev, &self.style) {
            self.key.clear();
            self.key.extend_from_slice(b"null");
        }
        self.writer.write_change(&mut self.value, ev);
        self.value.pop(); // the line's newline
        let size = self.value.len().max(self.key.len()) as u64;
        if size > self.max_bulk {
            return Err(SinkError::fatal(
                format!(
                    "sink {:?}: the change of {} at {} is {size} bytes, over redis's proto-max-bulk-len of {} bytes",
                    self.cfg.name, ev.table.id, ev.position, self.max_bulk
                ),
                "raise proto-max-bulk-len on the server (CONFIG SET proto-max-bulk-len <bytes>), or leave the large column out of the capture",
            ));
        }
        self.bytes += (self.key.len() + self.value.len()) as u64;
        let cmd = self.pending.cmd("XADD").arg(&stream);
        if let Some(n) = self.cfg.maxlen {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg(id.to_string())
            .arg("key")
            .arg(self.key.as_slice())
            .arg("value")
            .arg(self.value.as_slice())
            .arg("op")
            .arg(ev.op.code())
            .arg("table")
            .arg(ev.table.id.to_string())
            .arg("position")
            .arg(ev.position.to_string());
        self.pending_len += 1;
        if self.pending_len >= self.cfg.pipeline {
            self.send_pending()?;
        }
        Ok(())
    }

    /// Sends the pending XADDs and waits for every reply, resending after a
    /// lost connection. A refused ID means the entry is already there.
    fn send_pending(&mut self) -> Result<(), SinkError> {
        if self.pending_len == 0 {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(100);
        let mut logged = None;
        let replies: Vec<Value> = loop {
            let mut conn = self.connection()?;
            match self.runtime.block_on(self.pending.query_async(&mut conn)) {
                Ok(r) => break r,
                Err(e) => self.retry_or_fail(e, &mut backoff, &mut logged, "redis did not answer the XADDs")?,
            }
        };
        let mut refused = 0usize;
        for reply in replies {
            if let Value::ServerError(e) = reply {
                if e.details().is_some_and(|d| d.contains(ID_REFUSED)) {
                    refused += 1;
                    continue;
                }
                let e = RedisError::from(e);
                return Err(errors::definite(&e, &self.cfg.url)
                    .unwrap_or_else(|| SinkError::Data(format!("redis refused an XADD: {e}"))));
            }
        }
        if refused > 0 {
            tracing::info!(sink = %self.cfg.name, refused, "entries already in their streams were skipped");
        }
        self.pending.clear();
        self.pending_len = 0;
        Ok(())
    }
}

impl Sink for RedisSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.writer.start_batch();
        for item in items {
            if let StreamItem::Change(ev) = item {
                self.write_change(ev)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        self.send_pending()?;
        Ok(Checkpoint::Null)
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}
