//! Fan-out from one source to its sinks, and the durable positions that flow
//! back.
//!
//! Each sink runs on its own OS thread behind a bounded channel of batches,
//! so a slow sink pushes back on the source (bounded memory) without blocking
//! the others' writes. The thread is not one of the runtime's: the worker
//! and the sink block on the runtime's handle (the worker to wait for a
//! batch, sinks for their async destinations; the contract is in
//! `outflow_sinks::sink`). A sink worker:
//! 1. drops items at or before its own progress (its stored offset at start,
//!    then the last item it wrote — so a replay after reconnect is skipped);
//! 2. writes the rest;
//! 3. every `commit_interval`, and when the channel closes, flushes the sink,
//!    stores `{position, events, checkpoint}` atomically in the state
//!    directory, and only then publishes the position as durable. The
//!    position is the last item written, or less when the sink says its
//!    commits trail its writes (`Sink::durable`, Parquet's rolled files).
//!    A source can ask for everything written to become durable at the next
//!    transaction boundary ([`ask_durable_now`]: Parquet closes its open
//!    files), when the server waits for a confirmation, e.g. while shutting
//!    down: a PostgreSQL walsender holds a fast shutdown until the client
//!    confirms all it sent, which would otherwise wait for the next roll.
//!
//! The source reads the minimum durable position over all sinks and
//! acknowledges only that to the database.
//!
//! **A stuck sink holds back only acknowledgement.** [`send_all`] waits for a
//! sink whose queue is full at most [`DETACH_AFTER`]; then the sink is
//! *detached*: the source stops feeding it and goes on with the others. The
//! detached sink keeps its place: it drains what it has queued and commits
//! it, and its durable position still counts in [`min_durable`], so the
//! database is acknowledged no further than the slowest sink and nothing is
//! lost. A detached sink can never be fed again from where the others are
//! (it missed batches), so once it waits idle with an empty queue the source
//! restarts streaming from [`min_durable`] — the same path as a reconnect
//! after a lost connection ([`Flow::Rejoin`]) — and re-attaches it; the other
//! sinks skip the replayed part (step 1), the detached one takes what it
//! lacks. The last attached sink is never detached: with nobody left to feed
//! the source waits, as with a single sink. Detach and re-attach are logged
//! as warnings naming the sink and stored in the state directory
//! (`detached.json`) so that `status` shows them.
//!
//! Workers count what they write in the metrics (`src/metrics.rs`) and
//! report failures to the live state (`src/health.rs`); sources hand batches
//! over with [`send_all`], which records them there too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use outflow_model::{Position, SnapshotProgress, StreamItem};
use outflow_sinks::{Durable, Sink};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::failpoints;
use crate::health::health;
use crate::metrics::{metrics, EventLabels, SinkLabel, TableLabel};
use crate::state::{now_rfc3339, SinkOffset, StateDir, TableSnapshot};
use crate::transform::Transforms;

pub type Batch = Arc<Vec<StreamItem>>;

/// Batches a sink may have queued before the source waits for it.
const QUEUE_BATCHES: usize = 16;
/// How long the source waits for a sink's full queue before detaching it.
pub const DETACH_AFTER: Duration = Duration::from_secs(5);

pub struct SinkHandle {
    pub name: String,
    tx: Option<mpsc::Sender<Batch>>,
    durable: watch::Receiver<Option<Position>>,
    join: Option<JoinHandle<Result<()>>>,
    /// The worker waits for a batch (it is not writing or committing).
    idle: Arc<AtomicBool>,
    /// Set by [`ask_durable_now`]; the worker clears it when it commits.
    durable_asked: Arc<AtomicBool>,
    /// The source stopped feeding this sink (see the module doc), and when.
    detached: Option<String>,
    /// Paused by a signal: detached, and not re-attached until resumed.
    paused: bool,
    state: Option<Arc<StateDir>>,
}

/// Why a source's streaming loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Stopped, caught up, or a sink stopped (`finish` reports why).
    Done,
    /// A detached sink can take more: stream again from [`min_durable`]
    /// after [`reattach`].
    Rejoin,
}

/// How long to wait before reconnection attempt `attempt` (1, 2, ...):
/// exponential from 1 s, at most 30 s.
pub fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Where a sink starts: its stored offset (None: from the slot's start).
#[derive(Default)]
pub struct SinkStart {
    pub position: Option<Position>,
    pub events: u64,
    pub snapshot: BTreeMap<String, TableSnapshot>,
}

pub fn spawn_sink(
    name: String,
    mut sink: Box<dyn Sink>,
    state: Option<Arc<StateDir>>,
    start: SinkStart,
    commit_interval: Duration,
    transforms: Transforms,
) -> SinkHandle {
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUE_BATCHES);
    let (durable_tx, durable) = watch::channel(start.position.clone());
    health().add_sink(&name, durable.clone());
    let runtime = tokio::runtime::Handle::current();
    let thread_name = format!("sink-{name}");
    let sink_name = name.clone();
    let label = SinkLabel { sink: name.clone() };
    let idle = Arc::new(AtomicBool::new(true));
    let worker_idle = idle.clone();
    let durable_asked = Arc::new(AtomicBool::new(false));
    let worker_durable_asked = durable_asked.clone();
    let handle_state = state.clone();
    // Carried over from the stored offset until a newer commit is durable.
    let last_commit_ts_us =
        state.as_ref().and_then(|s| s.sink_offset(&name).ok().flatten()).and_then(|o| o.last_commit_ts_us);
    let join = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let mut worker = Worker {
                name: sink_name,
                state,
                written: start.position.clone(),
                durable: start.position,
                events: start.events,
                durable_tx,
                group_open: false,
                snapshot: start.snapshot,
                pending_snapshot: Vec::new(),
                last_commit_ts_us,
                pending_commits: VecDeque::new(),
                label,
                bytes: 0,
                idle: worker_idle,
                durable_asked: worker_durable_asked,
                transforms,
            };
            let result = worker.run(sink.as_mut(), &mut rx, &runtime, commit_interval);
            if let Err(e) = &result {
                health().sink_failed(&worker.name, &e.message);
                metrics().error(e.class);
            }
            result
        })
        .expect("spawning a sink thread");
    SinkHandle {
        name,
        tx: Some(tx),
        durable,
        join: Some(join),
        idle,
        durable_asked,
        detached: None,
        paused: false,
        state: handle_state,
    }
}

struct Worker {
    name: String,
    state: Option<Arc<StateDir>>,
    /// The last item handed to the sink.
    written: Option<Position>,
    /// The last position stored as durable.
    durable: Option<Position>,
    events: u64,
    durable_tx: watch::Sender<Option<Position>>,
    /// Inside a Begin..Commit group: timed commits wait for its end, so a
    /// snapshot chunk is never stored half-delivered.
    group_open: bool,
    /// Durable snapshot progress per table, stored with the offset.
    snapshot: BTreeMap<String, TableSnapshot>,
    /// Progress written but not yet durable, in stream order.
    pending_snapshot: Vec<SnapshotProgress>,
    /// Commit time of the last transaction made durable.
    last_commit_ts_us: Option<i64>,
    /// Last commit (position, time) of each batch written but not yet durable.
    pending_commits: VecDeque<(Position, i64)>,
    label: SinkLabel,
    /// Bytes the sink had written when last counted.
    bytes: u64,
    /// Set while waiting for a batch, for [`rejoin_ready`].
    idle: Arc<AtomicBool>,
    /// [`ask_durable_now`] was called: commit everything at the next boundary.
    durable_asked: Arc<AtomicBool>,
    /// The transforms this sink alone gets (after the global ones).
    transforms: Transforms,
}

impl Worker {
    fn run(
        &mut self,
        sink: &mut dyn Sink,
        rx: &mut mpsc::Receiver<Batch>,
        runtime: &tokio::runtime::Handle,
        commit_interval: Duration,
    ) -> Result<()> {
        let mut next_commit = Instant::now() + commit_interval;
        loop {
            // A commit that falls due inside a group (a transaction or a
            // snapshot chunk split over batches) waits for the group's end,
            // not for another interval: under back-to-back transactions a
            // reset timer could keep missing the boundaries.
            let wait =
                if self.group_open { commit_interval } else { next_commit.saturating_duration_since(Instant::now()) };
            self.idle.store(true, Ordering::SeqCst);
            let received = runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            self.idle.store(false, Ordering::SeqCst);
            match received {
                Ok(Some(batch)) => self.write(sink, &batch)?,
                Ok(None) => return self.commit(sink, true),
                Err(_elapsed) => sink.idle().map_err(|e| sink_error(&self.name, e))?,
            }
            if self.group_open {
                continue;
            }
            if self.durable_asked.swap(false, Ordering::SeqCst) {
                self.commit(sink, true)?;
                next_commit = Instant::now() + commit_interval;
            } else if Instant::now() >= next_commit {
                self.commit(sink, false)?;
                next_commit = Instant::now() + commit_interval;
            }
        }
    }

    fn write(&mut self, sink: &mut dyn Sink, batch: &[StreamItem]) -> Result<()> {
        let fresh: Cow<'_, [StreamItem]> = match &self.written {
            None => Cow::Borrowed(batch),
            Some(done) => {
                // Items arrive in order: skip the prefix the sink already
                // has. A replay re-announces table shapes inside it (schema
                // changes carry no position): those are kept, and do not end
                // the prefix.
                let skip = batch.iter().position(|i| i.position().is_some_and(|p| p > done)).unwrap_or(batch.len());
                let (old, new) = batch.split_at(skip);
                if old.iter().all(|i| i.position().is_some()) {
                    Cow::Borrowed(new)
                } else {
                    Cow::Owned(old.iter().filter(|i| i.position().is_none()).chain(new).cloned().collect())
                }
            }
        };
        let fresh = match self.transforms.is_empty() {
            true => fresh,
            false => {
                let mut own = fresh.into_owned();
                self.transforms.apply(&mut own)?;
                Cow::Owned(own)
            }
        };
        let fresh = &fresh[..];
        // The furthest position, never a step back: sources order their
        // items, this keeps a slip from moving the offset backwards.
        let Some(last) = fresh.iter().filter_map(StreamItem::position).max() else {
            return Ok(());
        };
        let last = last.clone();
        sink.write(fresh).map_err(|e| sink_error(&self.name, e))?;
        failpoints::hit("sink.after_write");
        for item in fresh {
            match item {
                StreamItem::Begin { .. } => self.group_open = true,
                StreamItem::Commit { .. } => self.group_open = false,
                StreamItem::SnapshotProgress(p) => self.pending_snapshot.push(p.clone()),
                _ => {}
            }
        }
        self.events +=
            fresh.iter().filter(|i| matches!(i, StreamItem::Change(_) | StreamItem::Message(_))).count() as u64;
        self.count(fresh);
        self.count_bytes(sink);
        if let Some((position, ts)) = fresh.iter().rev().find_map(|i| match i {
            StreamItem::Commit { position, commit_ts_us, .. } => Some((position.clone(), *commit_ts_us)),
            _ => None,
        }) {
            self.pending_commits.push_back((position, ts));
        }

        self.written = Some(last);
        Ok(())
    }

    /// Adds the batch's events to the per-table, per-op counters.
    fn count(&self, items: &[StreamItem]) {
        let mut counts: Vec<(&outflow_model::TableId, &'static str, u64)> = Vec::new();
        let mut messages = 0;
        for item in items {
            match item {
                StreamItem::Change(ev) => {
                    let op = ev.op.code();
                    match counts.iter_mut().find(|(t, o, _)| *o == op && **t == ev.table.id) {
                        Some(entry) => entry.2 += 1,
                        None => counts.push((&ev.table.id, op, 1)),
                    }
                }
                StreamItem::Message(_) => messages += 1,
                _ => {}
            }
        }
        let m = metrics();
        let sink = &self.label.sink;
        for (table, op, n) in counts {
            let labels = EventLabels { sink: sink.clone(), table: table.to_string(), op: op.into() };
            m.events.get_or_create(&labels).inc_by(n);
        }
        if messages > 0 {
            let labels = EventLabels { sink: sink.clone(), table: String::new(), op: "m".into() };
            m.events.get_or_create(&labels).inc_by(messages);
        }
    }

    fn count_bytes(&mut self, sink: &dyn Sink) {
        let now = sink.bytes_written();
        if now > self.bytes {
            metrics().sink_bytes.get_or_create(&self.label).inc_by(now - self.bytes);
            self.bytes = now;
        }
    }

    /// Flushes the sink (`everything`: the stream ended or a source asked,
    /// everything written must become durable) and stores the position its
    /// durable data reaches.
    fn commit(&mut self, sink: &mut dyn Sink, everything: bool) -> Result<()> {
        if self.written == self.durable || (self.group_open && !everything) {
            return Ok(());
        }
        let started = Instant::now();
        let checkpoint =
            if everything { sink.finish() } else { sink.flush() }.map_err(|e| sink_error(&self.name, e))?;
        failpoints::hit("sink.after_flush");
        self.count_bytes(sink);
        let position = match sink.durable() {
            Durable::All => self.written.clone(),
            Durable::Through(p) => Some(p),
            Durable::Nothing => None,
        };
        let Some(position) = position else { return Ok(()) };
        if self.durable.as_ref() == Some(&position) {
            return Ok(());
        }
        let durable_progress = self.pending_snapshot.iter().take_while(|p| p.position <= position).count();
        for p in self.pending_snapshot.drain(..durable_progress) {
            let table =
                TableSnapshot { last_key: p.last_key, resume: p.resume, ranges: p.ranges, rows: p.rows, done: p.done };
            self.snapshot.insert(p.table.to_string(), table);
        }
        while self.pending_commits.front().is_some_and(|(p, _)| *p <= position) {
            self.last_commit_ts_us = self.pending_commits.pop_front().map(|(_, ts)| ts);
        }
        if let Some(state) = &self.state {
            let offset = SinkOffset {
                position: position.to_string(),
                events: self.events,
                checkpoint,
                committed_at: now_rfc3339(),
                snapshot: self.snapshot.clone(),
                last_commit_ts_us: self.last_commit_ts_us,
            };
            state.write_sink_offset(&self.name, &offset)?;
            failpoints::hit("sink.after_offset");
        }
        tracing::debug!(sink = %self.name, position = %position, "committed");
        self.durable = Some(position.clone());
        let _ = self.durable_tx.send(Some(position));
        metrics().commit_seconds.get_or_create(&self.label).observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn sink_error(name: &str, e: outflow_sinks::SinkError) -> Error {
    // A definite error carries its own fix.
    if let outflow_sinks::SinkError::Fatal { message, hint } = e {
        let prefix = format!("sink {name:?}");
        let message = if message.starts_with(&prefix) { message } else { format!("{prefix}: {message}") };
        return Error::fatal(message, hint);
    }
    let full = matches!(&e, outflow_sinks::SinkError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC));
    let hint = if full {
        "free space on the sink's file system and run again; outflow resumes from its last committed offset (what was written after it is replaced)"
    } else {
        "fix the sink's destination; outflow resumes from its last committed offset"
    };
    Error::fatal(format!("sink {name:?} failed: {e}"), hint)
}

impl SinkHandle {
    /// Hands a batch to the sink, waiting while its queue is full. Fails when
    /// the sink has stopped (its error is reported by `finish`).
    pub async fn send(&self, batch: Batch) -> std::result::Result<(), ()> {
        match &self.tx {
            Some(tx) => tx.send(batch).await.map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Whether the source does not feed this sink now (detached or paused).
    pub fn is_detached(&self) -> bool {
        self.detached.is_some()
    }

    pub fn durable(&self) -> Option<Position> {
        self.durable.borrow().clone()
    }

    pub fn durable_watch(&self) -> watch::Receiver<Option<Position>> {
        self.durable.clone()
    }

    /// Closes the queue, lets the sink drain and commit, and returns its result.
    pub async fn finish(&mut self) -> Result<()> {
        self.tx.take();
        let Some(join) = self.join.take() else { return Ok(()) };
        tokio::task::spawn_blocking(move || join.join())
            .await
            .map_err(|e| Error::fatal(format!("sink thread failed: {e}"), "this is a bug; please report it"))?
            .unwrap_or_else(|_| Err(Error::fatal("a sink thread panicked", "this is a bug; please report it")))
    }
}

/// Asks every sink to make all it has written durable at its next
/// transaction boundary (instead of at its next roll), so the minimum durable
/// position reaches what was handed over: for a server that waits for the
/// client to confirm everything it sent (a PostgreSQL walsender while the
/// server shuts down).
pub fn ask_durable_now(sinks: &[SinkHandle]) {
    for s in sinks {
        s.durable_asked.store(true, Ordering::SeqCst);
    }
}

/// Closes every sink's queue and waits for each to drain and commit;
/// returns the first sink's error, after all have finished.
pub async fn finish_all(sinks: &mut [SinkHandle]) -> Result<()> {
    let mut result = Ok(());
    for s in sinks.iter_mut() {
        let r = s.finish().await;
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// Hands one batch to every attached sink (recording it for lag and
/// snapshot metrics), detaching a sink whose queue stays full for
/// [`DETACH_AFTER`] while another sink is still attached; fails when a sink
/// has stopped (its error comes from `finish`).
pub async fn send_all(sinks: &mut [SinkHandle], items: Vec<StreamItem>) -> std::result::Result<(), ()> {
    health().sent(&items, min_durable(sinks).as_ref());
    count_snapshot_rows(&items);
    let batch: Batch = Arc::new(items);
    for i in 0..sinks.len() {
        if sinks[i].detached.is_some() {
            continue;
        }
        let Some(tx) = &sinks[i].tx else { return Err(()) };
        let batch = match tx.try_send(batch.clone()) {
            Ok(()) => continue,
            Err(TrySendError::Closed(_)) => return Err(()),
            Err(TrySendError::Full(batch)) => batch,
        };
        let others = sinks.iter().enumerate().any(|(j, s)| j != i && s.detached.is_none());
        if !others {
            tx.send(batch).await.map_err(|_| ())?;
            continue;
        }
        match tokio::time::timeout(DETACH_AFTER, tx.send(batch)).await {
            Ok(sent) => sent.map_err(|_| ())?,
            Err(_elapsed) => {
                sinks[i].detached = Some(now_rfc3339());
                tracing::warn!(
                    sink = %sinks[i].name,
                    durable = %sinks[i].durable().map_or("-".into(), |p| p.to_string()),
                    "sink {:?} has not taken a batch for {} s: detached, the other sinks go on; \
                     the source is acknowledged no further than this sink's durable position",
                    sinks[i].name,
                    DETACH_AFTER.as_secs()
                );
                publish_detached(sinks);
            }
        }
    }
    Ok(())
}

/// Whether the source has stopped feeding some sink.
pub fn any_detached(sinks: &[SinkHandle]) -> bool {
    sinks.iter().any(|s| s.detached.is_some())
}

/// For the sources' periodic check while a sink is detached: what to do
/// now. `Flow::Rejoin` once a detached sink waits idle with an empty queue
/// (it can take a replay), `Flow::Done` when a detached sink has stopped
/// (its error comes from `finish`), else nothing.
pub fn rejoin_ready(sinks: &[SinkHandle]) -> Option<Flow> {
    let mut ready = false;
    for s in sinks.iter().filter(|s| s.detached.is_some() && !s.paused) {
        match &s.tx {
            Some(tx) if !tx.is_closed() => {
                ready |= tx.capacity() == tx.max_capacity() && s.idle.load(Ordering::SeqCst);
            }
            _ => return Some(Flow::Done),
        }
    }
    ready.then_some(Flow::Rejoin)
}

/// Re-attaches every detached sink that is ready (see [`rejoin_ready`]);
/// the source must then stream again from [`min_durable`].
pub fn reattach(sinks: &mut [SinkHandle]) {
    let from = min_durable(sinks).map_or("the slot's start".to_string(), |p| p.to_string());
    let mut changed = false;
    for s in sinks.iter_mut().filter(|s| s.detached.is_some() && !s.paused) {
        let ready = s.tx.as_ref().is_some_and(|tx| tx.capacity() == tx.max_capacity());
        if ready && s.idle.load(Ordering::SeqCst) {
            tracing::warn!(
                sink = %s.name,
                from = %from,
                "sink {:?} has caught up with what it was given: re-attached, streaming again from {from}",
                s.name
            );
            s.detached = None;
            changed = true;
        }
    }
    if changed {
        publish_detached(sinks);
    }
}

/// Pauses sink `name` (a `pause-sink` signal): the source stops feeding it,
/// as if it were detached, until [`resume`]; its durable position still
/// holds back what the source acknowledges. With every sink paused the
/// source stops reading ([`all_paused`]).
pub fn pause(sinks: &mut [SinkHandle], name: &str) -> std::result::Result<(), String> {
    let sink = find(sinks, name)?;
    if sink.paused {
        return Err(format!("sink {name:?} is already paused"));
    }
    sink.paused = true;
    sink.detached.get_or_insert_with(now_rfc3339);
    tracing::warn!(sink = %name, "sink {name:?} paused by a signal: the source is acknowledged no further than its durable position until it is resumed");
    publish_detached(sinks);
    Ok(())
}

/// Resumes a paused sink: it re-attaches (catching up from its durable
/// position) like a detached sink that caught up.
pub fn resume(sinks: &mut [SinkHandle], name: &str) -> std::result::Result<(), String> {
    let sink = find(sinks, name)?;
    if !sink.paused {
        return Err(format!("sink {name:?} is not paused"));
    }
    sink.paused = false;
    tracing::info!(sink = %name, "sink {name:?} resumed: it re-attaches once it has taken what it was given");
    publish_detached(sinks);
    Ok(())
}

/// Pauses the sinks a previous run left paused (stored in the state directory).
pub fn restore_paused(sinks: &mut [SinkHandle], paused: &[String]) {
    for name in paused {
        if let Some(sink) = sinks.iter_mut().find(|s| &s.name == name) {
            sink.paused = true;
            sink.detached.get_or_insert_with(now_rfc3339);
            tracing::warn!(sink = %name, "sink {name:?} stays paused (paused by a signal before the restart); resume it to feed it");
        }
    }
    publish_detached(sinks);
}

/// Whether every sink is paused: the source then reads nothing.
pub fn all_paused(sinks: &[SinkHandle]) -> bool {
    !sinks.is_empty() && sinks.iter().all(|s| s.paused)
}

fn find<'a>(sinks: &'a mut [SinkHandle], name: &str) -> std::result::Result<&'a mut SinkHandle, String> {
    let names: Vec<String> = sinks.iter().map(|s| s.name.clone()).collect();
    sinks.iter_mut().find(|s| s.name == name).ok_or_else(|| format!("no sink named {name:?}; the sinks are {names:?}"))
}

/// Tells `status` (through the state directory) which sinks are detached
/// and which are paused.
fn publish_detached(sinks: &[SinkHandle]) {
    for s in sinks {
        let label = crate::metrics::SinkLabel { sink: s.name.clone() };
        crate::metrics::metrics().sink_detached.get_or_create(&label).set(i64::from(s.detached.is_some()));
    }
    let detached: BTreeMap<String, String> =
        sinks.iter().filter_map(|s| Some((s.name.clone(), s.detached.clone()?))).collect();
    let paused: Vec<String> = sinks.iter().filter(|s| s.paused).map(|s| s.name.clone()).collect();
    if let Some(state) = sinks.iter().find_map(|s| s.state.as_ref()) {
        if let Err(e) = state.write_detached(&detached).and_then(|()| state.write_paused(&paused)) {
            tracing::warn!(error = %e.message, "cannot record the detached and paused sinks for `status`");
        }
    }
}

fn count_snapshot_rows(items: &[StreamItem]) {
    let mut table: Option<(&outflow_model::TableId, u64)> = None;
    for item in items {
        if let StreamItem::Change(ev) = item {
            if ev.op == outflow_model::Op::Read {
                match &mut table {
                    Some((t, n)) if **t == ev.table.id => *n += 1,
                    _ => {
                        flush_rows(table.take());
                        table = Some((&ev.table.id, 1));
                    }
                }
            }
        }
    }
    flush_rows(table);
}

fn flush_rows(rows: Option<(&outflow_model::TableId, u64)>) {
    if let Some((t, n)) = rows {
        metrics().snapshot_rows.get_or_create(&TableLabel { table: t.to_string() }).inc_by(n);
    }
}

/// The position every sink has made durable (None until all have one).
pub fn min_durable(sinks: &[SinkHandle]) -> Option<Position> {
    let mut min: Option<Position> = None;
    for s in sinks {
        let d = s.durable()?;
        if min.as_ref().is_none_or(|m| d < *m) {
            min = Some(d);
        }
    }
    min
}
