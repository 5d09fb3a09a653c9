//! The contract between a source (a folder under `src/`: `pg/`, `mysql/`)
//! and the rest of outflow. Two traits:
//!
//! - [`SourceFactory`], implemented by each source's config type: what the
//!   commands need before or without streaming — validation, preflight
//!   (`outflow check`), status (`outflow status`), offset validation
//!   (`outflow offsets set`), and connecting. A source is registered by one
//!   line in `src/config.rs` (`sources! { ... }`), which makes its config a
//!   variant of `SourceConfig`.
//! - [`Source`], implemented by the connected source: reading the change
//!   stream, acknowledging, snapshot readers. The driver (`src/stream.rs`)
//!   owns everything around it once for every source: reconnects with
//!   backoff, the snapshot-request and rejoin ticks, fan-out to the sinks,
//!   snapshot windows, schema recording, draining on stop, until-caught-up.
//!
//! Shape: [`Source`] uses native `async fn`s (declared as `impl Future +
//! Send`), so the driver is generic over it and its per-message calls cost
//! no allocation. It is not object safe; [`AnySource`] is its boxed,
//! object-safe face (a blanket impl in `src/stream.rs`), which is what
//! [`SourceFactory::connect`] returns and the commands hold. The factory's
//! few calls return boxed futures ([`BoxFuture`]).
//!
//! Ordering contract of the stream: items leave [`Source::read`] in commit
//! order with increasing positions (a source that inserts snapshot chunks
//! re-positions what follows, see `src/mysql/source.rs`); transactions are
//! bracketed by `Begin`/`Commit`. The driver hands them to the sinks in that
//! order; each sink skips what it already has, so a source restarted from
//! the minimum durable position ([`Source::open`]) may send items again.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use outflow_model::{Position, StreamItem, TableFilter, TableId, TableSchema};
use outflow_sinks::SinkContext;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::pipeline::SinkHandle;
use crate::report::Checklist;
use crate::snapshot::{SnapshotPlan, Snapshots};
use crate::state::{SourceIdentity, StateDir, TableSnapshot};
use crate::transform::Transforms;

/// What the source is being prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `run`: durable server-side state (a slot). `has_offsets` says sinks
    /// have stored positions, so that state must already exist.
    Run { has_offsets: bool },
    /// `tail`: nothing left behind on the server.
    Tail,
}

/// A source kind's handling of its `[source]` config: everything the
/// commands ask of a source before (or without) streaming.
pub trait SourceFactory: Send + Sync {
    /// The configured table patterns (`[source] tables`: globs over
    /// `schema.table`, or regexes after `re:`), checked by the config.
    fn tables(&self) -> &[String];

    /// `[source] exclude_tables`: patterns of tables not captured.
    fn exclude_tables(&self) -> &[String];

    /// `[source] signal_table` (`schema.table`), if set.
    fn signal_table(&self) -> Option<&str>;

    /// The signal table as a table id; an error when it is not `schema.table`.
    fn signal_table_id(&self) -> Result<Option<TableId>> {
        let Some(name) = self.signal_table() else { return Ok(None) };
        match name.split_once('.') {
            Some((schema, table)) if !schema.is_empty() && !table.is_empty() && !table.contains('.') => {
                Ok(Some(TableId::new(schema, table)))
            }
            _ => Err(Error::config(
                format!("[source] signal_table {name:?} is not of the form schema.table"),
                "e.g. signal_table = \"outflow.signals\"",
            )),
        }
    }

    /// Captures these table patterns too (the signal table, tables added by
    /// signals in earlier runs).
    fn capture_more(&mut self, patterns: &[String]);

    /// The captured tables' filter: `tables` minus `exclude_tables`.
    fn table_filter(&self) -> Result<TableFilter> {
        TableFilter::new(self.tables(), self.exclude_tables()).map_err(|e| {
            Error::config(
                format!("[source] tables or exclude_tables: {e}"),
                "write tables as \"schema.table\" globs (* and ? within a name) or as \"re:<regular expression>\"",
            )
        })
    }

    /// Checks the config without connecting (a malformed URL, a value the
    /// server would refuse), as a config error; runs before anything is
    /// created anywhere.
    fn validate(&self) -> Result<()>;

    /// Which server and stream the config points at, read without creating
    /// anything, for sources whose [`connect`](Self::connect) creates
    /// server-side state (so that a state directory of another source is
    /// refused first); `None` for sources that create nothing.
    fn probe_identity(&self) -> BoxFuture<'_, Result<Option<SourceIdentity>>>;

    /// Connects, checks the server's settings and privileges (each refusal
    /// an error saying what to change), and sets up what streaming needs.
    /// `transforms` are the global ones: a source may push their column
    /// exclusions down to the server (PostgreSQL's publication column lists).
    fn connect<'a>(&'a self, purpose: Purpose, transforms: &'a Transforms)
        -> BoxFuture<'a, Result<Box<dyn AnySource>>>;

    /// The current shape of every table the patterns select, as a snapshot
    /// reads it: what the transforms are checked against before a run.
    fn table_schemas(&self) -> BoxFuture<'_, Result<Vec<Arc<TableSchema>>>>;

    /// `outflow check`: one [`Checklist::item`] per condition `connect` and
    /// streaming rely on, each failure with its exact fix (SQL or setting).
    /// An unreachable server is one failed item, not an error; `snapshots`
    /// says whether the config reads snapshots (their privileges count).
    fn preflight<'a>(&'a self, snapshots: bool, report: &'a mut Checklist) -> BoxFuture<'a, Result<()>>;

    /// `outflow status`: the `source` block (at least `kind`, `server`, the
    /// server's current position and `error` when it cannot be asked) and
    /// each sink's lag fields. Never fails for an unreachable server: that
    /// is the block's `error`.
    fn status(&self) -> BoxFuture<'_, Result<SourceStatus>>;

    /// Prints [`status`](Self::status)'s block as the first lines of the
    /// human `outflow status`.
    fn print_status(&self, block: &Value);

    /// `outflow offsets set`: refuses a position that is not of this kind,
    /// that the server can no longer replay, or that it has not reached.
    fn check_position<'a>(&'a self, target: &'a Position) -> BoxFuture<'a, Result<()>>;
}

/// A sink's lag fields for `status`, from its durable position.
pub type Lag = Box<dyn Fn(&Position) -> Map<String, Value> + Send + Sync>;

/// The source's part of `outflow status`.
pub struct SourceStatus {
    pub block: Value,
    pub lag: Lag,
}

/// A connected source, for the driver. Methods are called from one task,
/// in this order: [`start`](Self::start) once; then per connection
/// [`open`](Self::open) followed by rounds of
/// [`place_snapshots`](Self::place_snapshots) / [`recv`](Self::recv) /
/// [`read`](Self::read) and the occasional [`acknowledge`](Self::acknowledge)
/// and [`probe`](Self::probe); after an error or a rejoin, `open` again
/// (the driver waits with backoff between attempts); finally
/// [`close`](Self::close), after every sink has drained.
pub trait Source: Send + Sized + 'static {
    /// Which server, database and stream this is (a state directory
    /// belongs to one).
    fn identity(&self) -> SourceIdentity;

    /// What sinks put in the events' `source` block.
    fn sink_context(&self, pipeline: &str) -> SinkContext;

    /// The captured tables (what snapshots may read).
    fn tables(&self) -> &[TableId];

    /// Before streaming: `saved` is the minimum durable position over the
    /// sinks (None: no sink has one). A source refuses a position not its
    /// own or no longer on the server (fatal), decides where a sink-less
    /// start begins, and with `until_caught_up` reads the server's current
    /// end as the target. A transient error is retried by the driver.
    fn start(&mut self, saved: Option<&Position>, until_caught_up: bool) -> impl Future<Output = Result<()>> + Send;

    /// (Re)connects and starts streaming from `from`, the minimum durable
    /// position over the sinks (None: where `start` decided). Transient
    /// errors are retried with backoff, unless a snapshot is running.
    fn open(&mut self, from: Option<&Position>) -> impl Future<Output = Result<()>> + Send;

    /// Waits for the next message from the server and keeps it for
    /// [`read`](Self::read). Cancel-safe: the driver polls it in a
    /// `select!` and drops it when something else is ready; nothing may be
    /// lost then. A lost connection is a transient error.
    fn recv(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Decodes what [`recv`](Self::recv) kept (and, when cheap, what else
    /// has already arrived), handing the items to `out` in stream order.
    /// Not cancelled. A message that cannot be decoded is a fatal error:
    /// nothing after it is delivered or acknowledged.
    fn read(&mut self, out: &mut Emit<'_>) -> impl Future<Output = Result<()>> + Send;

    /// Called before each send and stop check: a source whose snapshot
    /// chunks are placed by stream position (no watermarks in its stream)
    /// opens the windows readers asked for and emits the chunks the stream
    /// is past, when it is between two transactions.
    fn place_snapshots(&mut self, _out: &mut Emit<'_>) {}

    /// Whether the server position read by `start` for `until_caught_up`
    /// has been handed over (false without one).
    fn caught_up(&self) -> bool;

    /// Whether the driver should hold the batch for more items instead of
    /// sending it now (more is already buffered and the stream is not yet
    /// caught up); full batches are sent regardless.
    fn hold_batch(&self) -> bool {
        false
    }

    /// Confirms `durable` — the minimum durable position over all sinks —
    /// to the server (PostgreSQL: the slot's confirmed position), also as a
    /// sign of life. Called when a sink's durable position changes, every
    /// few seconds, and after [`Emit::ask_durable_now`]. Never past what
    /// `durable` says. Sources with nothing to confirm do nothing.
    fn acknowledge(&mut self, _durable: Option<&Position>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Whether [`probe`](Self::probe) is wanted now (waiting to catch up
    /// between transactions, on a server that sends its position only when asked).
    fn wants_probe(&self) -> bool {
        false
    }

    /// Asks the server to say how far it has written (every 250 ms while
    /// [`wants_probe`](Self::wants_probe)).
    fn probe(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Whether a detached sink may rejoin (streaming restarts from the
    /// minimum durable position) while a snapshot runs. False where the
    /// snapshot's windows are marked by watermarks in the stream, which a
    /// restart would replay out of context.
    fn rejoin_during_snapshot(&self) -> bool {
        true
    }

    /// Tables created since the start that the patterns match: the source
    /// starts capturing them and returns those whose existing rows the
    /// stream does not carry (to be snapshotted). Called every few seconds;
    /// a failure to look is logged, not an error.
    fn discover_tables(&mut self) -> impl Future<Output = Vec<TableId>> + Send {
        async { Vec::new() }
    }

    /// Adds the tables `patterns` match to the capture (an `add-tables`
    /// signal): from now on their changes are streamed. Returns the tables
    /// that were not captured before (to be snapshotted); an error says why
    /// they cannot be captured (e.g. the publication is not outflow's).
    fn add_tables(&mut self, patterns: &[String]) -> impl Future<Output = Result<Vec<TableId>>> + Send;

    /// Checks an ad-hoc snapshot's SQL `condition` on `table` without
    /// reading anything: an error in the server's words when it is not a
    /// valid condition there. Only a checked condition reaches
    /// [`spawn_reader`](Self::spawn_reader).
    fn check_condition(&self, table: &TableId, condition: &str) -> impl Future<Output = Result<()>> + Send;

    /// Starts the snapshot reader for one table on `snapshots`, from
    /// `progress`; `condition`: only the rows matching this SQL condition.
    fn spawn_reader(
        &self,
        snapshots: &mut Snapshots,
        table: TableId,
        progress: TableSnapshot,
        condition: Option<String>,
    );

    /// Ends the connections after the sinks drained; `durable` is their
    /// final minimum durable position, confirmed first where the source
    /// acknowledges.
    fn close(self, durable: Option<Position>) -> impl Future<Output = ()> + Send;
}

/// Items per batch handed to the sinks.
pub const BATCH_ITEMS: usize = 2048;

/// How the driver is asked to stream.
pub struct StreamRun<'a> {
    pub sinks: &'a mut [SinkHandle],
    pub state: Option<&'a StateDir>,
    /// Tables to snapshot in this run.
    pub snapshot: Option<SnapshotPlan>,
    /// (readers, rows per chunk) of snapshots started while streaming
    /// (signals, tables found later).
    pub snapshot_settings: (usize, u64),
    /// Stop once the snapshot is complete (`mode = "initial_only"`).
    pub exit_after_snapshot: bool,
    pub until_caught_up: bool,
    pub stop: CancellationToken,
    /// The transforms every sink gets (see `src/transform/`).
    pub transforms: Transforms,
    /// `[source] signal_table`: its rows are signals, not changes (see
    /// `src/signal/`). Only `run` takes signals.
    pub signal_table: Option<TableId>,
}

/// A connected [`Source`], boxed: what the commands hold.
pub trait AnySource: Send {
    fn identity(&self) -> SourceIdentity;
    fn sink_context(&self, pipeline: &str) -> SinkContext;
    fn tables(&self) -> Vec<TableId>;
    /// Streams into the sinks until stopped or caught up (see
    /// `src/stream.rs`); returns after the sinks have drained and committed.
    fn stream<'a>(self: Box<Self>, run: StreamRun<'a>) -> BoxFuture<'a, Result<()>>;
}

/// Where [`Source::read`] hands its items: the batch being filled for the
/// sinks, with the driver's per-item work done on the way in (schema
/// history, snapshot windows).
pub struct Emit<'a> {
    pub(crate) batch: &'a mut Vec<StreamItem>,
    pub(crate) snapshots: &'a mut Option<Snapshots>,
    pub(crate) state: Option<&'a StateDir>,
    pub(crate) durable_asked: bool,
    /// The global transforms: the schema history records the shape sinks see.
    pub(crate) transforms: &'a mut Transforms,
}

impl<'a> Emit<'a> {
    /// Adds one item in stream order: a schema change is recorded in the
    /// state's schema history (with the statement behind it when the source
    /// knows it), a change is noted in the open snapshot windows.
    pub fn push(&mut self, item: StreamItem) -> Result<()> {
        match &item {
            StreamItem::SchemaChange(change) => {
                self.record_schema(&change.schema, change.ddl.as_ref().map(|d| d.statement.as_str()))?
            }
            StreamItem::Change(ev) => {
                if let Some(s) = self.snapshots.as_mut() {
                    s.windows.on_change(ev);
                }
            }
            _ => {}
        }
        self.batch.push(item);
        Ok(())
    }

    /// Whether the batch not yet sent is full ([`BATCH_ITEMS`]): a source
    /// reading what has already arrived stops there.
    pub fn full(&self) -> bool {
        self.batch.len() >= BATCH_ITEMS
    }

    /// The last position in the batch not yet sent.
    pub fn last_position(&self) -> Option<&Position> {
        self.batch.iter().rev().find_map(StreamItem::position)
    }

    /// Adds a heartbeat (no per-item work), e.g. to announce where a stream
    /// without sink offsets starts.
    pub fn push_heartbeat(&mut self, position: Position) {
        self.batch.push(StreamItem::Heartbeat { position });
    }

    /// Whether a snapshot runs.
    pub fn snapshotting(&self) -> bool {
        self.snapshots.is_some()
    }

    /// The running snapshot (if any) and the batch, for a source placing
    /// snapshot chunks itself (see [`Source::place_snapshots`]).
    pub fn snapshots_and_batch(&mut self) -> (Option<&mut Snapshots>, &mut Vec<StreamItem>) {
        (self.snapshots.as_mut(), self.batch)
    }

    /// The state directory, if this run has one (`tail` has none).
    pub fn state(&self) -> Option<&'a StateDir> {
        self.state
    }

    /// Appends a table's shape, with the DDL that caused it, to the schema
    /// history (unless the last entry already has these columns: a restart
    /// re-announces every table it meets); nothing without a state directory.
    pub fn record_schema(&mut self, schema: &Arc<TableSchema>, ddl: Option<&str>) -> Result<()> {
        match self.state {
            Some(state) => record_schema(state, &*self.transforms.schema(schema)?, ddl),
            None => Ok(()),
        }
    }

    /// The server waits for a confirmation: the driver asks every sink to
    /// make all it has written durable now, then acknowledges.
    pub fn ask_durable_now(&mut self) {
        self.durable_asked = true;
    }
}

/// See [`Emit::record_schema`].
pub fn record_schema(state: &StateDir, schema: &TableSchema, ddl: Option<&str>) -> Result<()> {
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
