//! Progress of long work: an indicatif bar per task on a terminal, plain
//! periodic log lines (every 10 s) otherwise, so logs collected by a service
//! manager stay readable. Each table's row estimate and rows read are also
//! published in-process ([`snapshot_tables`]) for the web console's bars.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

fn bars() -> Option<&'static MultiProgress> {
    static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();
    BARS.get_or_init(|| std::io::stderr().is_terminal().then(MultiProgress::new)).as_ref()
}

/// One table's snapshot as this process reads it (see [`snapshot_tables`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    /// The server's row estimate when the read started (0: unknown).
    pub estimate: u64,
    /// Rows read so far, including those of earlier runs.
    pub read: u64,
    /// The read finished in this process.
    pub finished: bool,
}

fn live() -> &'static Mutex<BTreeMap<String, LiveTable>> {
    static LIVE: OnceLock<Mutex<BTreeMap<String, LiveTable>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn publish(label: &str, update: impl FnOnce(&mut LiveTable)) {
    let mut tables = live().lock().unwrap_or_else(|e| e.into_inner());
    let entry = tables.entry(label.to_string()).or_insert(LiveTable { estimate: 0, read: 0, finished: false });
    update(entry);
}

/// The tables this process has snapshotted or is snapshotting, by label
/// (`schema.table`): the row estimate each read started with and the rows
/// read. Rows read are not yet durable in every sink (`status` says that).
pub fn snapshot_tables() -> BTreeMap<String, LiveTable> {
    live().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Rows done out of an estimate, for one table's snapshot.
pub struct RowProgress {
    label: String,
    bar: Option<ProgressBar>,
    estimate: u64,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl RowProgress {
    pub fn new(label: String, estimate: u64, done: u64) -> Self {
        let bar = bars().map(|m| {
            let bar = m.add(ProgressBar::new(estimate.max(done)));
            bar.set_style(
                ProgressStyle::with_template("{prefix:30} {bar:30} {pos}/{len} rows {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.clone());
            bar.set_position(done);
            bar
        });
        publish(&label, |t| *t = LiveTable { estimate, read: done, finished: false });
        let now = Instant::now();
        RowProgress { label, bar, estimate, done, started: now, last_log: now }
    }

    pub fn advance(&mut self, rows: u64) {
        self.done += rows;
        publish(&self.label, |t| t.read = self.done);
        if let Some(bar) = &self.bar {
            if self.done > bar.length().unwrap_or(0) {
                bar.set_length(self.done);
            }
            bar.set_position(self.done);
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(table = %self.label, rows = self.done, estimate = self.estimate, rows_per_sec = rate as u64, "snapshot progress");
        }
    }

    pub fn finish(self) {
        publish(&self.label, |t| t.finished = true);
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
