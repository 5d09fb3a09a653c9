//! The one stream driver: runs any [`Source`] into the sinks. What every
//! source shares lives here, once:
//!
//! - **Start and reconnect.** [`Source::start`] is retried with backoff
//!   while its errors are transient (the server may restart between setup
//!   and streaming: the sinks' start takes a while). A lost connection is
//!   retried with exponential backoff ([`reconnect_delay`]), transient
//!   errors only and not while a snapshot runs (its windows are tied to the
//!   stream), by opening the source again from the minimum durable position
//!   over the sinks, which skip what they already have. A stop during the
//!   wait ends the run cleanly.
//! - **Rejoin.** A detached sink (see `src/pipeline.rs`) that can take more
//!   is re-attached the same way, at once ([`Flow::Rejoin`]); sources whose
//!   snapshot windows are watermarks in the stream wait for the snapshot to
//!   complete first ([`Source::rejoin_during_snapshot`]).
//! - **Signals** (`src/signal/`): taken when one arrives and every second
//!   (`outflow snapshot --table` requests in the state directory with
//!   them), between two reads; the signal table's rows are taken out of the
//!   batch as it is read. With every sink paused the source is not read.
//! - **Ticks.** Every 250 ms a
//!   detached sink is checked for rejoining and, while catching up, the
//!   source may probe the server's position ([`Source::probe`]); a change of
//!   any sink's durable position, and every 10 s, is acknowledged to the
//!   source ([`Source::acknowledge`]). A reply-requested keepalive
//!   ([`Emit::ask_durable_now`]) asks the sinks to make everything durable
//!   now and acknowledges at once. Every 5 s the source looks for new
//!   tables the patterns match ([`Source::discover_tables`]); those whose
//!   existing rows the stream lacks are snapshotted (unless the run reads
//!   no snapshots).
//! - **Fan-out.** Items are handed over in batches of up to
//!   [`BATCH_ITEMS`] with [`send_all`]; a source may hold a batch while more
//!   is buffered ([`Source::hold_batch`]).
//! - **Snapshots.** The plan's readers start with the first connection;
//!   their chunks reach the stream side ([`receive`]) and are placed by the
//!   source (watermarks, or [`Source::place_snapshots`]).
//! - **Schema history** is recorded as items pass ([`Emit::push`]).
//! - **Stop.** Plain `run` streams until stopped; `--until-caught-up` until
//!   [`Source::caught_up`] and the snapshot is complete; `initial_only` once
//!   the snapshot is complete — each only once no sink is detached. Items
//!   decoded before the stop still go to the sinks; then every sink drains
//!   and commits ([`finish_all`]) and the source confirms the final durable
//!   position and closes ([`Source::close`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use outflow_model::{Position, StreamItem, TableId};
use outflow_sinks::SinkContext;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorClass, Result};
use crate::health::{health, Phase};
use crate::metrics::metrics;
use crate::pipeline::{
    all_paused, any_detached, ask_durable_now, finish_all, min_durable, reattach, reconnect_delay, rejoin_ready,
    send_all, Flow, SinkHandle,
};
use crate::signal::run::SnapshotSignal;
use crate::signal::table::take_signals;
use crate::signal::{signals, Action};
use crate::snapshot::{receive, SnapshotPlan, Snapshots};
use crate::source::{AnySource, Emit, Source, StreamRun, BATCH_ITEMS};
use crate::state::{SourceIdentity, StateDir, TableSnapshot};
use crate::transform::{dropped_so_far, Transforms};

/// How often the durable position is acknowledged when nothing else prompts it.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// How often the source looks for new tables that match the patterns.
const DISCOVER_INTERVAL: Duration = Duration::from_secs(5);

impl<S: Source> AnySource for S {
    fn identity(&self) -> SourceIdentity {
        Source::identity(self)
    }

    fn sink_context(&self, pipeline: &str) -> SinkContext {
        Source::sink_context(self, pipeline)
    }

    fn tables(&self) -> Vec<TableId> {
        Source::tables(self).to_vec()
    }

    fn stream<'a>(self: Box<Self>, run: StreamRun<'a>) -> BoxFuture<'a, Result<()>> {
        Box::pin(drive(*self, run))
    }
}

/// Streams `source` into the sinks until stopped or done (see the module
/// doc); returns after the sinks have drained and committed.
async fn drive<S: Source>(mut source: S, run: StreamRun<'_>) -> Result<()> {
    let StreamRun {
        sinks,
        state,
        snapshot,
        snapshot_settings,
        exit_after_snapshot,
        until_caught_up,
        stop,
        transforms,
        signal_table,
    } = run;
    let snapshot_new_tables = snapshot.is_some();
    let mut driver = Driver {
        sinks,
        state,
        plan: snapshot,
        snapshots: None,
        exit_after_snapshot,
        stop,
        transforms,
        snapshot_new_tables,
        snapshot_settings,
        dropped_before: state.map(|s| s.dropped()).unwrap_or_default(),
        signal_table,
        snapshot_signals: Vec::new(),
        deferred_signals: Vec::new(),
    };
    let result = driver.run(&mut source, until_caught_up).await;
    health().set_phase(Phase::Stopping);
    let sink_result = finish_all(driver.sinks).await;
    driver.record_dropped();
    source.close(min_durable(driver.sinks)).await;
    result.and(sink_result)
}

pub(crate) struct Driver<'a> {
    pub(crate) sinks: &'a mut [SinkHandle],
    pub(crate) state: Option<&'a StateDir>,
    /// This run's snapshot plan, until the first connection starts it.
    plan: Option<SnapshotPlan>,
    /// The running snapshot's readers and windows, once started.
    pub(crate) snapshots: Option<Snapshots>,
    exit_after_snapshot: bool,
    stop: CancellationToken,
    /// Applied to every batch before the fan-out.
    transforms: Transforms,
    /// Tables found mid-run are snapshotted (not with `[snapshot] mode = "never"`).
    pub(crate) snapshot_new_tables: bool,
    /// Readers and rows per chunk of snapshots started while streaming.
    snapshot_settings: (usize, u64),
    /// Changes transforms dropped in earlier runs, per table.
    dropped_before: BTreeMap<String, u64>,
    /// `[source] signal_table` (see `src/signal/`).
    pub(crate) signal_table: Option<TableId>,
    /// Running ad-hoc snapshot signals (see `src/signal/run.rs`).
    pub(crate) snapshot_signals: Vec<SnapshotSignal>,
    /// Snapshot signals waiting for a running snapshot of their tables.
    pub(crate) deferred_signals: Vec<(String, Action)>,
}

impl Driver<'_> {
    async fn run<S: Source>(&mut self, source: &mut S, until_caught_up: bool) -> Result<()> {
        let mut attempt = 0u32;
        loop {
            match source.start(min_durable(self.sinks).as_ref(), until_caught_up).await {
                Ok(()) => break,
                Err(e) if e.class == ErrorClass::Transient && !self.stop.is_cancelled() => {
                    attempt += 1;
                    let wait = reconnect_delay(attempt);
                    tracing::warn!(error = %e.message, retry_in_ms = wait.as_millis() as u64, attempt, "source connection lost before streaming; reconnecting");
                    tokio::select! {
                        _ = self.stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut attempt = 0u32;
        loop {
            let result = match source.open(min_durable(self.sinks).as_ref()).await {
                Ok(()) => {
                    health().set_phase(Phase::Streaming);
                    if attempt > 0 {
                        metrics().reconnects.inc();
                        tracing::info!("reconnected");
                        attempt = 0;
                    }
                    self.session(source).await
                }
                Err(e) => Err(e),
            };
            let wait = match result {
                Ok(Flow::Done) => return Ok(()),
                Ok(Flow::Rejoin) => {
                    reattach(self.sinks);
                    Duration::ZERO
                }
                Err(e) => {
                    let snapshot_running = self.snapshots.as_ref().is_some_and(|s| !s.windows.finished());
                    if e.class != ErrorClass::Transient || snapshot_running || self.stop.is_cancelled() {
                        return Err(e);
                    }
                    metrics().error(e.class);
                    attempt += 1;
                    health().set_phase(Phase::Reconnecting { attempt, error: e.message.clone() });
                    let wait = reconnect_delay(attempt);
                    tracing::warn!(error = %e.message, retry_in_ms = wait.as_millis() as u64, attempt, "source connection lost; reconnecting");
                    wait
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection's stream, until stopped, done, a rejoin or an error.
    async fn session<S: Source>(&mut self, source: &mut S) -> Result<Flow> {
        if let Some(plan) = self.plan.take() {
            let mut snapshots = Snapshots::new(run_id(), plan.parallelism, plan.chunk_size);
            for (table, progress) in plan.tables {
                if !progress.done && Some(&table) != self.signal_table.as_ref() {
                    let condition = self.resumed_signal(&table);
                    source.spawn_reader(&mut snapshots, table, progress, condition);
                }
            }
            self.snapshots = Some(snapshots);
            self.settle_resumed_signals();
        }
        signals().set_captured(source.tables().to_vec());
        self.handle_signals(source).await;
        let mut batch: Vec<StreamItem> = Vec::with_capacity(BATCH_ITEMS);
        let mut durable_changed: Vec<_> = self.sinks.iter().map(|s| s.durable_watch()).collect();
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        let mut probe_tick = tokio::time::interval(Duration::from_millis(250));
        probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut request_tick = tokio::time::interval(Duration::from_secs(1));
        let mut rejoin_tick = tokio::time::interval(Duration::from_millis(250));
        let mut discover_tick = tokio::time::interval(DISCOVER_INTERVAL);
        discover_tick.reset(); // not at once: the start just resolved the tables

        loop {
            source.place_snapshots(&mut self.emit(&mut batch));
            if !batch.is_empty() && (batch.len() >= BATCH_ITEMS || !source.hold_batch()) {
                let mut full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                self.transforms.apply(&mut full)?;
                if send_all(self.sinks, full).await.is_err() {
                    return Ok(Flow::Done); // a sink stopped; `finish` reports why
                }
            }
            let snapshot_done = self.snapshots.as_ref().is_none_or(|s| s.windows.finished());
            let done = snapshot_done && (self.exit_after_snapshot || source.caught_up());
            // Done only once every sink has everything: a detached one first rejoins.
            let detached = any_detached(self.sinks);
            if done && !detached {
                break;
            }
            let probe = source.wants_probe();
            let rejoin = detached && (snapshot_done || source.rejoin_during_snapshot());
            let reading = !all_paused(self.sinks);
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                r = source.recv(), if reading => {
                    r?;
                    let from = batch.len();
                    let mut out = self.emit(&mut batch);
                    source.read(&mut out).await?;
                    let durable_asked = out.durable_asked;
                    if let Some(table) = &self.signal_table {
                        take_signals(&mut batch, from, table);
                    }
                    if durable_asked {
                        // The server waits for our confirmation: sinks that
                        // commit in larger units make what they have durable
                        // now, and the reply carries what is durable now (while
                        // the server asks again at once, messages are always
                        // ready and the durable-change branch would never run).
                        ask_durable_now(self.sinks);
                        source.acknowledge(min_durable(self.sinks).as_ref()).await?;
                    }
                }
                r = receive(&mut self.snapshots) => r?,
                _ = any_changed(&mut durable_changed) => source.acknowledge(min_durable(self.sinks).as_ref()).await?,
                _ = status_tick.tick() => {
                    source.acknowledge(min_durable(self.sinks).as_ref()).await?;
                    self.record_dropped();
                }
                _ = probe_tick.tick(), if probe => source.probe().await?,
                _ = rejoin_tick.tick(), if rejoin => {
                    if let Some(flow) = rejoin_ready(self.sinks) {
                        return Ok(flow);
                    }
                }
                _ = request_tick.tick() => self.handle_signals(source).await,
                _ = signals().arrived() => self.handle_signals(source).await,
                _ = discover_tick.tick() => {
                    let found = source.discover_tables().await;
                    let signal_table = self.signal_table.clone();
                    for table in found.into_iter().filter(|t| Some(t) != signal_table.as_ref()) {
                        if self.snapshot_new_tables {
                            source.spawn_reader(self.snapshots_mut(), table, TableSnapshot::default(), None);
                        }
                    }
                    signals().set_captured(source.tables().to_vec());
                }
            }
            self.snapshots_ended();
        }
        // Whole items decoded before the stop (e.g. the last snapshot chunk
        // for `initial_only`) still go to the sinks.
        if !batch.is_empty() {
            self.transforms.apply(&mut batch)?;
            let _ = send_all(self.sinks, batch).await;
        }
        Ok(Flow::Done)
    }

    fn emit<'b>(&'b mut self, batch: &'b mut Vec<StreamItem>) -> Emit<'b> {
        Emit {
            batch,
            snapshots: &mut self.snapshots,
            state: self.state,
            durable_asked: false,
            transforms: &mut self.transforms,
        }
    }

    /// Stores how many changes transforms dropped so far, over every run (for `status`).
    fn record_dropped(&self) {
        let (Some(state), now) = (self.state, dropped_so_far()) else { return };
        if now.is_empty() {
            return;
        }
        let mut total = self.dropped_before.clone();
        for (table, n) in now {
            *total.entry(table).or_default() += n;
        }
        if let Err(e) = state.write_dropped(&total) {
            tracing::warn!(error = %e.message, "cannot store the dropped-changes counts");
        }
    }

    /// The running snapshot's readers, started now if none runs.
    pub(crate) fn snapshots_mut(&mut self) -> &mut Snapshots {
        let (parallelism, chunk_size) = self.snapshot_settings;
        self.snapshots.get_or_insert_with(|| Snapshots::new(run_id(), parallelism, chunk_size))
    }
}

/// A run id for watermarks: differs between runs (pid, clock, random hasher keys).
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:x}", h.finish())
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
