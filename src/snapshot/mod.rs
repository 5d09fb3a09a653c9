//! Snapshots of existing rows, consistent with the change stream, without
//! locks: the watermark algorithm of Netflix's DBLog (also Debezium's
//! incremental snapshots).
//!
//! For each chunk of a table, in primary-key order, the reader
//! 1. writes a *low* watermark into the change stream,
//! 2. reads the chunk with a plain `SELECT ... ORDER BY key LIMIT n`,
//! 3. writes a *high* watermark.
//!
//! The stream side ([`Windows`]) remembers the keys of the table's changes it
//! sees between the two watermarks; at the high watermark it emits the
//! chunk's rows as `op: r` events, minus the rows whose keys changed in the
//! window (the change events already carry a newer state). Each chunk goes
//! out as one group — Begin, the reads, a [`SnapshotProgress`], Commit — at
//! the high watermark's position, so sinks store the table's progress with
//! their offset and never commit half a chunk. After a crash the snapshot
//! resumes after the last chunk every sink made durable; a sink that was
//! ahead of the others sees the chunks in between again (at-least-once for
//! `r` events in fan-out after a crash; exactly-once with one sink).
//!
//! Tables without a primary key cannot be deduplicated against the stream
//! (no key to compare): their chunks are emitted whole, with a warning.
//!
//! DBLog's gap — a transaction whose commit record precedes the low
//! watermark but which is not yet visible when the chunk's SELECT takes its
//! snapshot — is closed on PostgreSQL by waiting, after the low watermark,
//! until the transactions then in progress are visible (see
//! `src/pg/snapshot.rs`); MySQL/MariaDB reads each chunk in a consistent
//! snapshot whose exact binlog position the server reports (see
//! `src/mysql/snapshot/`).
//!
//! The readers (one per source, in its folder: `src/pg/snapshot.rs`) send
//! each chunk before writing its high watermark; the PostgreSQL reader
//! reads the next chunk while the stream side emits the previous one and
//! waits for that before going further, so at most two chunks per reader
//! (`parallelism` readers) are in memory.
//!
//! Key ranges: a big keyed table that nothing has been read of yet is split
//! at keys found by `ORDER BY key OFFSET n LIMIT 1` into as many ranges as
//! there are free reader slots ([`Parallel`]), each read by its own
//! connection. Each range's progress ([`KeyRange`]: upper bound, last key,
//! done) is stored; chunks carry their range's update ([`RangeUpdate`]) and
//! the stream side folds it into the table's progress when it emits the
//! chunk, so the stored progress always describes exactly the chunks
//! emitted before it, in any interleaving. A resumed table goes on with its
//! stored ranges; a table stored as one range (`last_key`) stays one.
//!
//! MySQL/MariaDB (`src/mysql/snapshot/`) writes nothing into the source:
//! the reader asks the stream side to open the chunk's window
//! ([`ReaderEvent::Open`], opened between two transactions), reads the chunk
//! in a consistent snapshot whose exact binlog position it learns, and the
//! chunk carries that position as its `high`; the source emits it once its
//! stream is past it ([`Windows::emit_reached`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use outflow_model::{
    ChangeEvent, KeyRange, KeyText, Op, Position, Row, SnapshotProgress, SourceInfo, StreamItem, TableId, TableSchema,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::state::TableSnapshot;

/// What to snapshot in this run.
#[derive(Debug, Clone)]
pub struct SnapshotPlan {
    /// Tables and where each one resumes.
    pub tables: Vec<(TableId, TableSnapshot)>,
    pub chunk_size: u64,
    pub parallelism: usize,
}

/// What readers tell the stream side. (A chunk moves once per chunk through
/// a channel: its size next to the small variants costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
pub enum ReaderEvent {
    Chunk(Chunk),
    /// Open chunk `id`'s window on `table` (`schema.table`) between two
    /// transactions, and say at which stream position it opened (sources
    /// without watermarks in their stream).
    Open {
        id: u64,
        table: String,
        opened: oneshot::Sender<Position>,
    },
    /// A table's reader ended (its snapshot is complete, or stopped).
    TableDone(TableId),
    Failed(Error),
}

/// One chunk read by a reader, waiting for its high watermark.
pub struct Chunk {
    pub id: u64,
    pub table: Arc<TableSchema>,
    pub rows: Vec<Row>,
    /// Whether rows can be matched with changes by key.
    pub keyed: bool,
    /// Progress once this chunk is delivered; for a table read as key
    /// ranges, its progress when this reader started (see `range`).
    pub progress: TableSnapshot,
    /// Tables read as key ranges: the range this chunk advances. Ranges are
    /// read concurrently and their chunks emitted in watermark order, so the
    /// stream side combines them into the table's progress at emission.
    pub range: Option<RangeUpdate>,
    /// Sources without watermarks in their stream: the position the chunk's
    /// rows are consistent with; it is emitted once the stream is past it.
    pub high: Option<Position>,
    /// The events' `source` block as the reader knows it (e.g. where in
    /// the binlog the rows were read); the stream side adds the snapshot
    /// flag, the time and, at a watermark, its position.
    pub source: SourceInfo,
    /// Told once the chunk is emitted (or dropped), so the reader goes on.
    pub emitted: oneshot::Sender<()>,
}

/// One key range's progress after a chunk (see [`Chunk::range`]).
pub struct RangeUpdate {
    /// Which reader of the table (a table snapshotted again in one run gets
    /// a new one, and its progress starts over).
    pub reader: u64,
    pub index: usize,
    pub range: KeyRange,
}

struct Window {
    /// `schema.table`, as in the watermark.
    table: String,
    changed: HashSet<String>,
}

/// The stream side of the algorithm.
pub struct Windows {
    run: String,
    open: HashMap<u64, Window>,
    stash: HashMap<u64, Chunk>,
    /// Windows asked for, waiting for a point between two transactions.
    pending_open: Vec<(u64, String, oneshot::Sender<Position>)>,
    chunks: mpsc::Receiver<ReaderEvent>,
    /// Tables read as key ranges: their reader and progress as emitted so far.
    ranged: HashMap<TableId, (u64, TableSnapshot)>,
    /// Readers still running (the plan's and those asked for later).
    pub readers: usize,
    /// The same, per table.
    running: HashMap<TableId, usize>,
    /// Tables whose snapshot was stopped: their chunks are dropped, the
    /// first one's place taking a final progress marked done (`true` once
    /// written), until their readers end.
    stopped: HashMap<TableId, bool>,
    /// Tables whose reader ended since [`Windows::take_ended`].
    ended: Vec<TableId>,
    /// Chunks already emitted: a watermark of theirs read again (the stream
    /// restarted from a durable position inside this run, to re-attach a
    /// sink) is ignored.
    emitted: HashSet<u64>,
    warned_keyless: HashSet<TableId>,
}

impl Windows {
    pub fn new(run: String, chunks: mpsc::Receiver<ReaderEvent>, readers: usize) -> Self {
        Windows {
            run,
            open: HashMap::new(),
            stash: HashMap::new(),
            pending_open: Vec::new(),
            chunks,
            ranged: HashMap::new(),
            readers,
            running: HashMap::new(),
            stopped: HashMap::new(),
            ended: Vec::new(),
            emitted: HashSet::new(),
            warned_keyless: HashSet::new(),
        }
    }

    /// This run's id, in every watermark it writes.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// True when no reader runs and no chunk waits: the snapshot is complete.
    pub fn finished(&self) -> bool {
        self.readers == 0 && self.open.is_empty() && self.stash.is_empty() && self.pending_open.is_empty()
    }

    /// Takes the next event from the readers (cancel-safe, for `select!`);
    /// a reader's error is returned as such. `Ok(None)`: no reader is left.
    pub async fn receive(&mut self) -> Result<Option<()>> {
        match self.chunks.recv().await {
            Some(ReaderEvent::Chunk(chunk)) => {
                self.stash.insert(chunk.id, chunk);
                Ok(Some(()))
            }
            Some(ReaderEvent::Open { id, table, opened }) => {
                self.pending_open.push((id, table, opened));
                Ok(Some(()))
            }
            Some(ReaderEvent::TableDone(table)) => {
                self.readers = self.readers.saturating_sub(1);
                let left = self.running.get_mut(&table).map(|n| {
                    *n = n.saturating_sub(1);
                    *n
                });
                if left == Some(0) {
                    self.running.remove(&table);
                    self.release_stopped(&table);
                    self.ended.push(table);
                }
                Ok(Some(()))
            }
            Some(ReaderEvent::Failed(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// Opens the windows readers asked for, at stream position `at` (the
    /// caller is between two transactions: every change after `at` is
    /// noted in them).
    pub fn open_pending(&mut self, at: &Position) {
        for (id, table, opened) in self.pending_open.drain(..) {
            self.open.insert(id, Window { table, changed: HashSet::new() });
            let _ = opened.send(at.clone());
        }
    }

    /// Emits, in reading order, every received chunk whose `high` position
    /// `reached` says the stream is past. The caller is between two
    /// transactions; `next` gives each emitted item its position.
    pub fn emit_reached(
        &mut self,
        reached: impl Fn(&Position) -> bool,
        next: &mut dyn FnMut() -> Position,
        out: &mut Vec<StreamItem>,
    ) {
        let mut ready: Vec<u64> =
            self.stash.iter().filter(|(_, c)| c.high.as_ref().is_some_and(&reached)).map(|(id, _)| *id).collect();
        ready.sort_unstable();
        for id in ready {
            let Some(chunk) = self.stash.remove(&id) else { continue };
            let changed = self.open.remove(&id).map(|w| w.changed).unwrap_or_default();
            let source = chunk.source.clone();
            self.emit(chunk, &changed, source, next, out);
        }
    }

    /// Another table's reader was started (a snapshot asked for while
    /// running; never while a stopped one of the table drains, see
    /// [`Windows::is_running`]).
    pub fn reader_started(&mut self, table: &TableId) {
        self.readers += 1;
        *self.running.entry(table.clone()).or_default() += 1;
    }

    /// Whether a reader of `table` runs (or waits for its turn), or a
    /// stopped snapshot of it still has chunks to drop.
    pub fn is_running(&self, table: &TableId) -> bool {
        self.running.contains_key(table) || self.stopped.contains_key(table)
    }

    /// Whether a window waits to be opened or a chunk for its place.
    pub fn waiting(&self) -> bool {
        !self.pending_open.is_empty() || !self.stash.is_empty()
    }

    /// Tables being read now (or whose stopped snapshot still drains).
    pub fn running_tables(&self) -> Vec<TableId> {
        let mut tables: Vec<TableId> = self.running.keys().chain(self.stopped.keys()).cloned().collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// Forgets a stopped table once nothing of its snapshot is left: its
    /// readers ended and no chunk of it waits (a chunk sent just before its
    /// reader ended is still dropped when its place comes).
    fn release_stopped(&mut self, table: &TableId) {
        let name = table.to_string();
        let left = self.running.contains_key(table)
            || self.stash.values().any(|c| c.table.id == *table)
            || self.open.values().any(|w| w.table == name);
        if !left {
            self.stopped.remove(table);
        }
    }

    /// Stops `table`'s snapshot: its chunks are dropped from now on (their
    /// readers see that and end) and the table's progress is stored as done,
    /// so no later run resumes it. False when no reader of it runs.
    pub fn stop(&mut self, table: &TableId) -> bool {
        if !self.running.contains_key(table) {
            return false;
        }
        self.stopped.entry(table.clone()).or_insert(false);
        true
    }

    /// The tables whose readers ended since the last call.
    pub fn take_ended(&mut self) -> Vec<TableId> {
        std::mem::take(&mut self.ended)
    }

    /// Notes a change for every open window on its table.
    pub fn on_change(&mut self, ev: &ChangeEvent) {
        if self.open.is_empty() {
            return;
        }
        let table = ev.table.id.to_string();
        for window in self.open.values_mut().filter(|w| w.table == table) {
            for row in [&ev.before, &ev.after].into_iter().flatten() {
                window.changed.insert(key_string(&ev.table, row));
            }
        }
    }

    /// Opens chunk `id`'s window on `table` (`schema.table`) here: every
    /// change the stream passes from now on is noted in it (sources that
    /// mark windows in their stream, e.g. PostgreSQL's low watermark).
    pub fn open_window(&mut self, id: u64, table: String) {
        if !self.emitted.contains(&id) {
            self.open.insert(id, Window { table, changed: HashSet::new() });
        }
    }

    /// Closes chunk `id`'s window here and returns the chunk with the keys
    /// changed in the window, waiting for its reader to hand it over
    /// (PostgreSQL's high watermark); emit it with [`Windows::emit`].
    /// None for a chunk emitted before (its watermark read again).
    pub async fn close_window(&mut self, id: u64) -> Result<Option<(Chunk, HashSet<String>)>> {
        if self.emitted.contains(&id) {
            return Ok(None);
        }
        let window = self.open.remove(&id);
        let chunk = loop {
            if let Some(c) = self.stash.remove(&id) {
                break c;
            }
            if self.receive().await?.is_none() {
                return Err(Error::fatal(
                    format!("snapshot chunk {id} vanished before its window closed"),
                    "this is a bug; please report it",
                ));
            }
        };
        Ok(Some((chunk, window.map(|w| w.changed).unwrap_or_default())))
    }

    /// Appends a chunk's group to `out`: Begin, its rows as reads (minus the
    /// keys in `changed`), its progress, Commit; `position` gives each item
    /// its position, `source` the events' source block.
    pub fn emit(
        &mut self,
        chunk: Chunk,
        changed: &HashSet<String>,
        source: SourceInfo,
        position: &mut dyn FnMut() -> Position,
        out: &mut Vec<StreamItem>,
    ) {
        self.emitted.insert(chunk.id);
        if let Some(marked) = self.stopped.get_mut(&chunk.table.id) {
            // Dropping the chunk's `emitted` ends its reader.
            if !std::mem::replace(marked, true) {
                let now_us = now_micros();
                let progress = TableSnapshot { done: true, ..chunk.progress };
                out.push(StreamItem::Begin { tx_id: None, commit_ts_us: now_us, position: position() });
                out.push(progress_item(&chunk.table.id, progress, position()));
                out.push(StreamItem::Commit { tx_id: None, commit_ts_us: now_us, position: position() });
            }
            // The chunk (and its `emitted`) is dropped on return.
            let table = chunk.table.id.clone();
            self.release_stopped(&table);
            return;
        }
        if !chunk.keyed && self.warned_keyless.insert(chunk.table.id.clone()) {
            tracing::warn!(table = %chunk.table.id, "table has no primary key: snapshot rows cannot be deduplicated against concurrent changes");
        }
        let now_us = now_micros();
        out.push(StreamItem::Begin { tx_id: None, commit_ts_us: now_us, position: position() });
        let source = SourceInfo { commit_ts_us: now_us, tx_id: None, snapshot: true, ..source };
        let progress = match chunk.range {
            None => chunk.progress,
            Some(update) => self.advance_range(&chunk.table.id, chunk.progress, update, chunk.rows.len() as u64),
        };
        for row in chunk.rows {
            if chunk.keyed && !changed.is_empty() && changed.contains(&key_string(&chunk.table, &row)) {
                continue;
            }
            out.push(StreamItem::Change(ChangeEvent {
                op: Op::Read,
                table: chunk.table.clone(),
                before: None,
                after: Some(row),
                source: source.clone(),
                position: position(),
            }));
        }
        out.push(progress_item(&chunk.table.id, progress, position()));
        out.push(StreamItem::Commit { tx_id: None, commit_ts_us: now_us, position: position() });
        let _ = chunk.emitted.send(());
    }
}

impl Windows {
    /// The table's progress once a chunk of `rows` rows advanced one range.
    fn advance_range(&mut self, table: &TableId, base: TableSnapshot, update: RangeUpdate, rows: u64) -> TableSnapshot {
        let entry = self.ranged.entry(table.clone()).or_insert_with(|| (update.reader, base.clone()));
        if entry.0 != update.reader {
            *entry = (update.reader, base);
        }
        let progress = &mut entry.1;
        if let Some(range) = progress.ranges.get_mut(update.index) {
            *range = update.range;
        }
        progress.rows += rows;
        progress.done = progress.ranges.iter().all(|r| r.done);
        progress.clone()
    }
}

/// A table's snapshot progress as the item sinks store with their offset.
fn progress_item(table: &TableId, progress: TableSnapshot, position: Position) -> StreamItem {
    StreamItem::SnapshotProgress(SnapshotProgress {
        table: table.clone(),
        last_key: progress.last_key,
        resume: progress.resume,
        ranges: progress.ranges,
        rows: progress.rows,
        done: progress.done,
        position,
    })
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Where `table`'s snapshot resumes: the least advanced sink's progress (a
/// sink without any is at the start).
pub fn least_progress(sinks: &[&BTreeMap<String, TableSnapshot>], table: &TableId) -> TableSnapshot {
    let name = table.to_string();
    sinks.iter().map(|p| p.get(&name).cloned().unwrap_or_default()).min_by_key(|p| (p.done, p.rows)).unwrap_or_default()
}

/// The ranges a keyed table's snapshot goes on with: those stored, or one
/// range over the whole key space (from `last_key`, as stored by earlier
/// versions and by tables read as one range).
pub fn stored_ranges(progress: &TableSnapshot) -> Vec<KeyRange> {
    if progress.ranges.is_empty() {
        vec![KeyRange { upper: None, last_key: progress.last_key.clone(), done: progress.done }]
    } else {
        progress.ranges.clone()
    }
}

/// Whether a keyed table is worth reading as `workers` key ranges: nothing
/// of it read yet, and at least four chunks per range.
pub fn worth_splitting(progress: &TableSnapshot, estimated_rows: u64, chunk_size: u64, workers: usize) -> bool {
    workers > 1
        && progress.rows == 0
        && progress.last_key.is_none()
        && progress.ranges.is_empty()
        && estimated_rows >= chunk_size.saturating_mul(4).saturating_mul(workers as u64)
}

/// Ranges worth having for a table of `rows` rows: four chunks each at least.
pub fn ranges_wanted(rows: u64, chunk_size: u64) -> usize {
    (rows / chunk_size.max(1) / 4).clamp(1, 64) as usize
}

/// Key ranges ending at `uppers` (ascending boundary keys) and one open range after them.
pub fn ranges_between(uppers: Vec<KeyText>) -> Vec<KeyRange> {
    uppers.into_iter().map(Some).chain([None]).map(|upper| KeyRange { upper, last_key: None, done: false }).collect()
}

/// `n - 1` boundaries splitting the integer keys `min..=max` into `n`
/// ranges of equal width, ascending and distinct. For a single integer key
/// this replaces looking the boundaries up by row count (an `OFFSET` scan of
/// up to the whole table: 8% of a 1M-row snapshot); gaps in the keys only
/// make the ranges' row counts unequal.
pub fn interpolated_uppers(min: i128, max: i128, n: usize) -> Vec<KeyText> {
    let mut uppers: Vec<i128> = (1..n as i128).map(|i| min + (max - min) * i / n as i128).collect();
    uppers.dedup();
    uppers.retain(|&u| u < max);
    uppers.into_iter().map(|u| vec![Some(u.to_string())]).collect()
}

/// The key a range's next chunk starts after: its own last key, else the
/// previous range's upper bound (None: from the start of the table).
pub fn range_start(ranges: &[KeyRange], index: usize) -> Option<KeyText> {
    ranges[index].last_key.clone().or_else(|| index.checked_sub(1).and_then(|i| ranges[i].upper.clone()))
}

/// Reader slots beyond the one a table's reader holds, for reading its key
/// ranges at once. Never waits: slots busy with other tables stay theirs.
#[derive(Clone)]
pub struct Parallel {
    limit: Arc<tokio::sync::Semaphore>,
}

impl Parallel {
    /// Up to `n` free slots, held until the permits are dropped.
    pub fn take(&self, n: usize) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        (0..n).map_while(|_| self.limit.clone().try_acquire_owned().ok()).collect()
    }
}

/// The chunks a reader has sent and not yet seen emitted. A reader reads
/// its next chunk while the stream side emits the one before (at most one
/// in flight), so the database and outflow work at the same time.
#[derive(Default)]
pub struct InFlight(std::collections::VecDeque<oneshot::Receiver<()>>);

impl InFlight {
    /// Hands `chunk` to the stream side. False when the stream side stopped
    /// (the snapshot resumes in the next run).
    pub async fn send(&mut self, out: &mpsc::Sender<ReaderEvent>, mut chunk: Chunk) -> bool {
        let (emitted, wait) = oneshot::channel();
        chunk.emitted = emitted;
        self.0.push_back(wait);
        out.send(ReaderEvent::Chunk(chunk)).await.is_ok()
    }

    /// Waits until at most the last chunk sent is still to be emitted;
    /// false if an earlier one never was.
    pub async fn settle(&mut self) -> bool {
        self.wait_until(1).await
    }

    /// Waits until every chunk sent is emitted; false if one never was.
    pub async fn drain(&mut self) -> bool {
        self.wait_until(0).await
    }

    async fn wait_until(&mut self, left: usize) -> bool {
        while self.0.len() > left {
            if let Some(oldest) = self.0.pop_front() {
                if oldest.await.is_err() {
                    return false;
                }
            }
        }
        true
    }
}

/// The key columns' values of `row` as one comparable string.
fn key_string(table: &TableSchema, row: &Row) -> String {
    let mut s = String::new();
    for i in table.key_indexes() {
        let _ = write!(s, "{:?}\u{1f}", row.get(i));
    }
    s
}

/// A run's snapshot readers — at most `parallelism` tables read at once —
/// and the stream side that places their chunks. Shared by both sources;
/// each passes its own reader to [`Snapshots::spawn`].
pub struct Snapshots {
    pub windows: Windows,
    /// Rows per chunk for the readers started by this run.
    pub chunk_size: u64,
    tx: mpsc::Sender<ReaderEvent>,
    limit: Arc<tokio::sync::Semaphore>,
}

impl Snapshots {
    /// `run`: the id in this run's watermarks (empty where none are written).
    pub fn new(run: String, parallelism: usize, chunk_size: u64) -> Snapshots {
        let parallelism = parallelism.max(1);
        let (tx, rx) = mpsc::channel(parallelism * 2);
        Snapshots {
            windows: Windows::new(run, rx, 0),
            chunk_size,
            tx,
            limit: Arc::new(tokio::sync::Semaphore::new(parallelism)),
        }
    }

    /// Starts a reader for one table once a slot is free; its end (or its
    /// error) reaches the stream side as a [`ReaderEvent`].
    pub fn spawn<F, Fut>(&mut self, table: TableId, read: F)
    where
        F: FnOnce(mpsc::Sender<ReaderEvent>, Parallel) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.windows.reader_started(&table);
        let (tx, limit) = (self.tx.clone(), self.limit.clone());
        tokio::spawn(async move {
            let Ok(_permit) = limit.clone().acquire_owned().await else { return };
            let event = match read(tx.clone(), Parallel { limit }).await {
                Ok(()) => ReaderEvent::TableDone(table),
                Err(e) => ReaderEvent::Failed(e),
            };
            let _ = tx.send(event).await;
        });
    }
}

/// The next reader event, or never when no snapshot runs (for `select!`).
pub async fn receive(snapshots: &mut Option<Snapshots>) -> Result<()> {
    match snapshots {
        Some(s) if !s.windows.finished() || s.windows.readers > 0 => s.windows.receive().await.map(|_| ()),
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
