//! Progress of long work: an indicatif bar per task on a terminal, plain
//! periodic log lines (every 10 s) otherwise, so logs collected by a service
//! manager stay readable.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

fn bars() -> Option<&'static MultiProgress> {
    static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();
    BARS.get_or_init(|| std::io::stderr().is_terminal().then(MultiProgress::new)).as_ref()
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
        let now = Instant::now();
        RowProgress { label, bar, estimate, done, started: now, last_log: now }
    }

    pub fn advance(&mut self, rows: u64) {
        self.done += rows;
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
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
