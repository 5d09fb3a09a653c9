//! The contract every sink implements.
//!
//! The pipeline hands a sink batches of stream items in source order (events
//! the sink already has are filtered out before it sees them), and asks it,
//! from time to time, to make what it has written durable. Only the
//! checkpoint returned by `flush` — the sink's own recovery data, stored with
//! its offset — makes a position count as delivered; whatever was written
//! after the last flush may be lost in a crash and is replayed on restart.
//!
//! Sinks run on their own thread, so `write` and `flush` are blocking calls.

use outflow_model::{Dialect, Position, StreamItem};

use crate::snapshot_marks::SnapshotRecord;
use serde_json::Value as Json;
use thiserror::Error;

/// Sink-specific recovery data stored atomically with the sink's offset (e.g.
/// the JSONL file's committed length). `Json::Null` when the sink has none.
pub type Checkpoint = Json;

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

    /// Snapshot progress read back from the sink's own commit record, for
    /// sinks whose record can be ahead of the state directory (see
    /// [`crate::snapshot_marks`]). None: the state directory's is the truth.
    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        None
    }
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
    /// Debezium's connector name (`postgresql` or `mysql`), for the
    /// Debezium `source` block only: values render by their logical types.
    pub connector: &'static str,
    /// The SQL dialect of the source's type names, for DDL that copies them
    /// (see [`Dialect`]).
    pub dialect: Dialect,
    /// The source database name.
    pub db: String,
}

#[cfg(test)]
impl SinkContext {
    /// A PostgreSQL pipeline's context, for tests.
    pub(crate) fn for_tests(pipeline: &str, db: &str) -> SinkContext {
        SinkContext { pipeline: pipeline.into(), connector: "postgresql", dialect: Dialect::Postgres, db: db.into() }
    }
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
