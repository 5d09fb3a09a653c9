//! The contract every sink implements, and the factory that builds it.
//!
//! **Threads and the runtime.** Each sink runs on its own OS thread (the
//! pipeline's sink worker, `src/pipeline.rs`), so [`Sink`]'s methods are
//! blocking calls. Destinations that are async (object stores, PostgreSQL,
//! Iceberg catalogs) run their futures on the pipeline's one tokio runtime:
//! [`SinkFactory::build`] runs on that runtime and hands the sink its
//! `tokio::runtime::Handle`, and the sink blocks on it
//! (`handle.block_on(..)`) from its own thread, which is never a runtime
//! thread. No sink builds a runtime of its own; tasks a sink spawns (a
//! connection's driver) run on the pipeline's runtime.
//!
//! **Ordering.** The pipeline hands a sink batches of stream items in source
//! order; items at or before the sink's stored offset are filtered out
//! before it sees them (table shapes re-announced by a replay are kept). A
//! sink may rely on positions never going backwards within a run.
//!
//! **Durability.** From time to time the pipeline asks the sink to make
//! what it has written durable ([`Sink::flush`]). Only a flush makes a
//! position count as delivered: the pipeline stores the checkpoint the flush
//! returns with the sink's offset, then publishes the position
//! [`Sink::durable`] reports; the source is acknowledged no further than the
//! least durable sink. Whatever was written after the last flush may be lost
//! in a crash and is replayed on restart. Exactly-once sinks also keep their
//! own commit record in the destination (see [`crate::exactly_once`]) and
//! skip on start what it says they already hold.
//!
//! **Back-pressure.** `write` may block while the destination cannot take
//! more (Kafka's full queue): the sink's bounded queue then fills and the
//! source waits (or, with other sinks, detaches this one).
//!
//! **Shutdown.** When the stream ends the pipeline calls [`Sink::finish`]
//! once: everything written must become durable; then the sink is dropped
//! on its thread. A sink that fails returns its error; the pipeline stops
//! without storing anything past its last flush.

use async_trait::async_trait;
use outflow_model::{Dialect, Position, StreamItem};
use serde_json::Value as Json;
use thiserror::Error;

use crate::preflight::Probe;
use crate::snapshot_marks::SnapshotRecord;

/// Sink-specific recovery data stored atomically with the sink's offset (e.g.
/// the JSONL file's committed length). `Json::Null` when the sink has none.
pub type Checkpoint = Json;

/// What a sink does with the items the pipeline hands it (see the module
/// doc for ordering, durability, back-pressure and shutdown).
pub trait Sink: Send {
    /// Appends items, in order. They need not be durable when this returns.
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError>;

    /// Makes everything written so far durable and returns the checkpoint
    /// that recovers exactly this state after a crash.
    fn flush(&mut self) -> Result<Checkpoint, SinkError>;

    /// Whether a crash can leave events the sink already received twice in
    /// its output (at-least-once) or never (exactly-once).
    fn exactly_once(&self) -> bool;

    /// Bytes written so far by this sink instance (for metrics): rendered
    /// lines, record keys and values, committed files.
    fn bytes_written(&self) -> u64;

    /// How far the last `flush` made the written items durable. Sinks that
    /// commit in units larger than one flush (Parquet files rolled by rows,
    /// bytes or age) report the position their committed data reaches; the
    /// pipeline stores and acknowledges that instead of the last item written.
    fn durable(&self) -> Durable {
        Durable::All
    }

    /// The last flush, when the stream ends: everything written must become
    /// durable (Parquet closes its open files).
    fn finish(&mut self) -> Result<Checkpoint, SinkError> {
        self.flush()
    }

    /// Called when no items came for a while (about once per commit
    /// interval while the source is quiet), for sinks that write something
    /// on a clock of their own (Kafka's heartbeat records).
    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Snapshot progress read back from the sink's own commit record, for
    /// sinks whose record can be ahead of the state directory (see
    /// [`crate::snapshot_marks`]). None: the state directory's is the truth.
    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        None
    }
}

/// Builds one kind of sink from its `[[sink]]` settings; implemented by each
/// sink's config and listed once in the `sinks!` list of `lib.rs`.
#[async_trait]
pub trait SinkFactory: Send + Sync {
    /// The sink's name (its offsets are stored under it).
    fn name(&self) -> &str;

    /// What `build` would refuse in the settings alone: no I/O. Called when
    /// the config is loaded, before the source is touched.
    fn validate(&self) -> Result<(), SinkError>;

    /// Opens the destination and recovers from `checkpoint` (what the last
    /// flush returned, stored with the offset; None on a first run). Runs
    /// on the pipeline's runtime; blocking work goes to a blocking thread,
    /// and the sink keeps the runtime's handle for its async calls.
    async fn build(&self, ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError>;

    /// The checks `outflow check` prints for this sink (destination
    /// reachable, writable, privileges), each with its fix. Changes
    /// nothing a run would not (probe objects are deleted again).
    async fn preflight(&self) -> Vec<Probe>;
}

/// What a flush made durable (see [`Sink::durable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durable {
    /// Everything written so far.
    All,
    /// Everything up to and including this position.
    Through(Position),
    /// Nothing yet since the sink started.
    Nothing,
}

/// What every sink may need to know about the pipeline it belongs to.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The pipeline's logical name (Debezium's topic prefix, `source.name`).
    pub pipeline: String,
    /// The kind of source: which Debezium connector's `source` block the
    /// envelope writes, and whether DDL may copy type names (see
    /// [`Dialect`]). Values render by their logical types, never by this.
    pub dialect: Dialect,
    /// The source database name.
    pub db: String,
}

#[cfg(test)]
impl SinkContext {
    /// A PostgreSQL pipeline's context, for tests.
    pub(crate) fn for_tests(pipeline: &str, db: &str) -> SinkContext {
        SinkContext { pipeline: pipeline.into(), dialect: Dialect::Postgres, db: db.into() }
    }
}

/// For a factory's `build`: runs `open`, which blocks (it may wait on
/// the destination through the runtime's handle it is given), on a blocking
/// thread of the pipeline's runtime, and boxes the sink it opens. `kind`
/// names the sink in the error when that thread fails.
pub async fn open_blocking<S: Sink + 'static>(
    kind: &'static str,
    open: impl FnOnce(tokio::runtime::Handle) -> Result<S, SinkError> + Send + 'static,
) -> Result<Box<dyn Sink>, SinkError> {
    let runtime = tokio::runtime::Handle::current();
    let sink = tokio::task::spawn_blocking(move || open(runtime))
        .await
        .map_err(|e| SinkError::Data(format!("the {kind} sink's setup thread failed: {e}")))??;
    Ok(Box::new(sink))
}

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("invalid checkpoint for this sink: {0}")]
    Checkpoint(String),
    /// This input cannot be written (definite: retrying will not help).
    #[error("{0}")]
    Data(String),
    /// The destination refuses (wrong address, credentials, privileges):
    /// what failed, and the fix.
    #[error("{message}; {hint}")]
    Fatal { message: String, hint: String },
}

impl SinkError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SinkError::Io { what: what.into(), source }
    }

    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> Self {
        SinkError::Fatal { message: message.into(), hint: hint.into() }
    }
}
