//! The Prometheus metrics of one `outflow` process, served by the admin
//! server's `/metrics` (see `src/admin.rs`). Every metric name is a constant
//! here; counters get Prometheus' `_total` suffix when encoded.
//!
//! Counters are bumped where the thing happens (a sink worker after a write
//! succeeded, the source when it reconnects); the lag and durable-position
//! gauges are set from the live pipeline state (`src/health.rs`) just before
//! each encoding, so they are never stale.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Change events written to a sink, by sink, table and op (`r c u d t`, `m` for messages).
pub const EVENTS: &str = "outflow_events";
/// Bytes a sink wrote (JSONL lines, Kafka keys and values, committed Parquet files).
pub const SINK_BYTES: &str = "outflow_sink_bytes";
/// How far a sink's durable position is behind the server's WAL end (postgres).
pub const LAG_BYTES: &str = "outflow_source_lag_bytes";
/// How long ago the oldest change not yet durable in a sink was committed (0 when caught up).
pub const LAG_SECONDS: &str = "outflow_source_lag_seconds";
/// A sink's durable position as a number: the PostgreSQL LSN.
pub const DURABLE_LSN: &str = "outflow_sink_durable_lsn";
/// How long a sink's commit (flush, then offset write) took.
pub const COMMIT_SECONDS: &str = "outflow_sink_commit_seconds";
/// Rows read by snapshots, by table.
pub const SNAPSHOT_ROWS: &str = "outflow_snapshot_rows";
/// Successful reconnections of the source after a lost connection.
pub const RECONNECTS: &str = "outflow_reconnects";
/// Errors, by class: `transient` (retried), `fatal` (the run stops), `config`.
pub const ERRORS: &str = "outflow_errors";
/// WAL the replication slot keeps on the server (postgres).
pub const WAL_RETAINED_BYTES: &str = "outflow_wal_retained_bytes";
/// 1 while the retained WAL is over `wal_warn_bytes`, else 0.
pub const WAL_WARNING: &str = "outflow_wal_retention_warning";
/// Gauge per sink: 1 while the source does not feed it (see `pipeline`).
pub const SINK_DETACHED: &str = "outflow_sink_detached";
/// Counter: events dropped by a transform's filter (or a failing expression).
pub const DROPPED: &str = "outflow_transform_dropped_events";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub sink: String,
    pub table: String,
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

/// An event a transform dropped: its table, the transform, and why
/// (`filter`: the filter was false; `error`: an expression failed with
/// `on_error = "skip"` or `"null"`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    pub transform: String,
    pub table: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

type HistogramFamily = Family<SinkLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub events: Family<EventLabels, Counter>,
    pub sink_bytes: Family<SinkLabel, Counter>,
    pub lag_bytes: Family<SinkLabel, Gauge>,
    pub lag_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    pub durable_lsn: Family<SinkLabel, Gauge>,
    pub commit_seconds: HistogramFamily,
    pub snapshot_rows: Family<TableLabel, Counter>,
    pub reconnects: Counter,
    pub errors: Family<ClassLabel, Counter>,
    pub wal_retained_bytes: Gauge,
    pub wal_warning: Gauge,
    pub sink_detached: Family<SinkLabel, Gauge>,
    pub dropped: Family<DroppedLabels, Counter>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn commit_histogram() -> Histogram {
    // 1 ms .. about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            events: Family::default(),
            sink_bytes: Family::default(),
            lag_bytes: Family::default(),
            lag_seconds: Family::default(),
            durable_lsn: Family::default(),
            commit_seconds: Family::new_with_constructor(commit_histogram as fn() -> Histogram),
            snapshot_rows: Family::default(),
            reconnects: Counter::default(),
            errors: Family::default(),
            wal_retained_bytes: Gauge::default(),
            wal_warning: Gauge::default(),
            sink_detached: Family::default(),
            dropped: Family::default(),
        };
        let mut r = Registry::default();
        r.register(EVENTS, "Change events written to a sink, by table and op", m.events.clone());
        r.register(SINK_BYTES, "Bytes a sink wrote", m.sink_bytes.clone());
        r.register(
            LAG_BYTES,
            "Bytes of WAL between the server's end and a sink's durable position",
            m.lag_bytes.clone(),
        );
        r.register(
            LAG_SECONDS,
            "Seconds since the commit of the oldest change not yet durable in a sink (0 when caught up)",
            m.lag_seconds.clone(),
        );
        r.register(DURABLE_LSN, "A sink's durable position (PostgreSQL LSN)", m.durable_lsn.clone());
        r.register(COMMIT_SECONDS, "Duration of a sink's commit: flush and offset write", m.commit_seconds.clone());
        r.register(SNAPSHOT_ROWS, "Rows read by snapshots", m.snapshot_rows.clone());
        r.register(RECONNECTS, "Reconnections of the source after a lost connection", m.reconnects.clone());
        r.register(ERRORS, "Errors by class: transient (retried), fatal, config", m.errors.clone());
        r.register(WAL_RETAINED_BYTES, "WAL the replication slot keeps on the server", m.wal_retained_bytes.clone());
        r.register(WAL_WARNING, "1 while the retained WAL is over wal_warn_bytes", m.wal_warning.clone());
        r.register(
            SINK_DETACHED,
            "1 while a slow sink is detached from the source (it holds the slot)",
            m.sink_detached.clone(),
        );
        r.register(DROPPED, "Change events a transform dropped, by transform, table and reason", m.dropped.clone());
        // Every class shows from the start, at 0.
        for class in ["config", "fatal", "transient"] {
            m.errors.get_or_create(&ClassLabel { class: class.into() }).inc_by(0);
        }
        Metrics { registry: r, ..m }
    }

    /// Counts one error of `class`.
    pub fn error(&self, class: crate::error::ErrorClass) {
        let class = match class {
            crate::error::ErrorClass::Config => "config",
            crate::error::ErrorClass::Fatal => "fatal",
            crate::error::ErrorClass::Transient => "transient",
        };
        self.errors.get_or_create(&ClassLabel { class: class.into() }).inc();
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_encode_as_prometheus_text() {
        let m = Metrics::new();
        let labels = EventLabels { sink: "events".into(), table: "public.t".into(), op: "c".into() };
        m.events.get_or_create(&labels).inc_by(3);
        m.lag_seconds.get_or_create(&SinkLabel { sink: "events".into() }).set(1.5);
        m.commit_seconds.get_or_create(&SinkLabel { sink: "events".into() }).observe(0.002);
        m.error(crate::error::ErrorClass::Transient);
        let text = m.encode();
        assert!(text.contains("# TYPE outflow_events_total counter"), "{text}");
        assert!(text.contains(r#"outflow_events_total{sink="events",table="public.t",op="c"} 3"#), "{text}");
        assert!(text.contains(r#"outflow_source_lag_seconds{sink="events"} 1.5"#), "{text}");
        assert!(text.contains(r#"outflow_sink_commit_seconds_count{sink="events"} 1"#), "{text}");
        assert!(text.contains(r#"outflow_errors_total{class="transient"} 1"#), "{text}");
        assert!(text.contains(r#"outflow_errors_total{class="fatal"} 0"#), "{text}");
        assert!(text.contains("outflow_reconnects_total 0"), "{text}");
    }
}
