//! The live state of the running pipeline that `/readyz` and `/metrics`
//! read: the source's phase (starting, streaming, reconnecting, stopping),
//! each sink's durable position and failure, the server's WAL end, and a
//! timeline of what the source handed to the sinks.
//!
//! Lag in seconds: for each sink, how long ago the oldest change it has not
//! made durable yet was committed; 0 when it holds everything the source
//! handed out. So an idle database shows no lag, and a stuck sink shows a
//! lag that grows. The timeline keeps, per second of commit time, the last
//! position handed out in that second and the second's first commit time
//! (so the lag is at most a second too high), and forgets what every sink
//! has made durable. Heartbeats count as commits at the time they were sent.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use outflow_model::{Position, StreamItem};
use tokio::sync::watch;

use crate::metrics::{metrics, SinkLabel};

/// What the source is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and preparing, not streaming yet.
    Starting,
    /// Connected, streaming (and snapshotting, if a snapshot runs).
    Streaming,
    /// Waiting to reconnect after a lost connection.
    Reconnecting { attempt: u32, error: String },
    /// Draining the sinks before exit.
    Stopping,
}

pub struct Health {
    inner: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    sinks: Vec<SinkLive>,
    timeline: Timeline,
    /// PostgreSQL: the server's WAL end, from keepalives and changes.
    server_end: Option<u64>,
}

struct SinkLive {
    name: String,
    durable: watch::Receiver<Option<Position>>,
    failed: Option<String>,
}

/// One sink's lag, as `/metrics` and `/readyz` see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkLag {
    pub name: String,
    pub durable: Option<Position>,
    pub lag_seconds: f64,
    pub lag_bytes: Option<u64>,
}

/// The process's pipeline state.
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(|| Health {
        inner: Mutex::new(Inner {
            phase: Phase::Starting,
            sinks: Vec::new(),
            timeline: Timeline::default(),
            server_end: None,
        }),
    })
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    pub fn add_sink(&self, name: &str, durable: watch::Receiver<Option<Position>>) {
        self.lock().sinks.push(SinkLive { name: name.to_string(), durable, failed: None });
    }

    pub fn sink_failed(&self, name: &str, error: &str) {
        if let Some(s) = self.lock().sinks.iter_mut().find(|s| s.name == name) {
            s.failed = Some(error.to_string());
        }
    }

    /// PostgreSQL: the server has WAL up to `lsn`.
    pub fn server_end(&self, lsn: u64) {
        let mut inner = self.lock();
        inner.server_end = Some(inner.server_end.unwrap_or(0).max(lsn));
    }

    /// The source handed `items` to the sinks; `all_durable` is what every
    /// sink has made durable.
    pub fn sent(&self, items: &[StreamItem], all_durable: Option<&Position>) {
        let now = now_us();
        let mut inner = self.lock();
        for item in items {
            match item {
                StreamItem::Commit { commit_ts_us, position, .. } => {
                    let ts = if *commit_ts_us > 0 { *commit_ts_us } else { now };
                    inner.timeline.record(position, ts);
                }
                StreamItem::Heartbeat { position } => inner.timeline.record(position, now),
                _ => {}
            }
        }
        if let Some(d) = all_durable {
            inner.timeline.prune(d);
        }
    }

    pub fn lags(&self) -> Vec<SinkLag> {
        let now = now_us();
        let inner = self.lock();
        inner
            .sinks
            .iter()
            .map(|s| {
                let durable = s.durable.borrow().clone();
                let lag_us = inner.timeline.lag_us(durable.as_ref(), now);
                let lag_bytes = match (&durable, inner.server_end) {
                    (Some(p @ Position::Pg { .. }), Some(end)) => Some(end.saturating_sub(p.pg_ack_lsn())),
                    _ => None,
                };
                SinkLag { name: s.name.clone(), durable, lag_seconds: lag_us as f64 / 1e6, lag_bytes }
            })
            .collect()
    }

    /// Sets the lag and durable-position gauges from the current state.
    pub fn update_gauges(&self) {
        let m = metrics();
        for lag in self.lags() {
            let label = SinkLabel { sink: lag.name.clone() };
            m.lag_seconds.get_or_create(&label).set(lag.lag_seconds);
            if let Some(bytes) = lag.lag_bytes {
                m.lag_bytes.get_or_create(&label).set(bytes.min(i64::MAX as u64) as i64);
            }
            if let Some(p @ Position::Pg { .. }) = &lag.durable {
                m.durable_lsn.get_or_create(&label).set(p.pg_ack_lsn().min(i64::MAX as u64) as i64);
            }
        }
    }

    /// Ready: streaming, no sink failed, every sink's lag under `max_lag`;
    /// otherwise why not, in one line.
    pub fn readiness(&self, max_lag: Duration) -> Result<(), String> {
        {
            let inner = self.lock();
            match &inner.phase {
                Phase::Streaming => {}
                Phase::Starting => return Err("starting: not streaming from the source yet".into()),
                Phase::Reconnecting { attempt, error } => {
                    return Err(format!("reconnecting to the source (attempt {attempt}): {error}"))
                }
                Phase::Stopping => return Err("shutting down".into()),
            }
            if let Some(s) = inner.sinks.iter().find(|s| s.failed.is_some()) {
                return Err(format!("sink {:?} failed: {}", s.name, s.failed.as_deref().unwrap_or("")));
            }
        }
        match self.lags().into_iter().find(|l| l.lag_seconds > max_lag.as_secs_f64()) {
            Some(l) => Err(format!(
                "sink {:?} is {:.1} s behind the source (ready_max_lag is {} s)",
                l.name,
                l.lag_seconds,
                max_lag.as_secs_f64()
            )),
            None => Ok(()),
        }
    }
}

/// What the source handed out, coarsened to one entry per second of commit time.
#[derive(Default)]
struct Timeline {
    buckets: VecDeque<Bucket>,
}

struct Bucket {
    second: i64,
    /// The last position handed out in this second.
    last: Position,
    /// The first commit time in this second (microseconds since the epoch).
    first_ts_us: i64,
}

impl Timeline {
    fn record(&mut self, position: &Position, ts_us: i64) {
        let second = ts_us.div_euclid(1_000_000);
        match self.buckets.back_mut() {
            Some(b) if b.second == second => {
                if *position > b.last {
                    b.last = position.clone();
                }
                b.first_ts_us = b.first_ts_us.min(ts_us);
            }
            _ => self.buckets.push_back(Bucket { second, last: position.clone(), first_ts_us: ts_us }),
        }
    }

    /// Forgets what every sink has made durable.
    fn prune(&mut self, durable: &Position) {
        while self.buckets.front().is_some_and(|b| b.last <= *durable) {
            self.buckets.pop_front();
        }
    }

    /// Microseconds since the commit of the oldest change past `durable`.
    fn lag_us(&self, durable: Option<&Position>, now_us: i64) -> i64 {
        self.buckets
            .iter()
            .find(|b| durable.is_none_or(|d| b.last > *d))
            .map_or(0, |b| now_us.saturating_sub(b.first_ts_us).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn lag_is_the_age_of_the_oldest_undurable_commit() {
        let mut t = Timeline::default();
        t.record(&Position::pg(10), 100 * S);
        t.record(&Position::pg(20), 100 * S + 500_000);
        t.record(&Position::pg(30), 103 * S);
        // Nothing durable: the first commit's age.
        assert_eq!(t.lag_us(None, 110 * S), 10 * S);
        // Durable inside the first second: that second's first commit (at most 1 s too high).
        assert_eq!(t.lag_us(Some(&Position::pg(10)), 110 * S), 10 * S);
        assert_eq!(t.lag_us(Some(&Position::pg(20)), 110 * S), 7 * S);
        // Caught up: no lag, however old the last commit is.
        assert_eq!(t.lag_us(Some(&Position::pg(30)), 999 * S), 0);
        t.prune(&Position::pg(20));
        assert_eq!(t.buckets.len(), 1);
        assert_eq!(t.lag_us(Some(&Position::pg(20)), 110 * S), 7 * S);
        // A clock behind a commit time is no negative lag.
        assert_eq!(t.lag_us(None, 0), 0);
    }
}
