//! Named fault-injection points on the durable path, so tests can crash the
//! process at an exact step instead of hoping a random kill lands there.
//!
//! `OUTFLOW_FAILPOINTS="sink.after_flush=3"` makes the 3rd pass through
//! `sink.after_flush` abort the process (like kill -9: no destructors, no
//! flushing). Several points are separated by commas. Unset, every point is
//! a no-op costing one atomic load.
//!
//! Points: `sink.after_write` (batch written, not flushed),
//! `sink.after_flush` (data durable, offset not yet stored),
//! `sink.after_offset` (offset stored, not yet acknowledged to the source)
//! (all three in the binary's pipeline), and inside sinks
//! `iceberg.before_swap` (an upsert commit's files and metadata written,
//! the catalog not yet pointing at them); and, not aborting ([`fires`]),
//! `kinesis.lost_reply` (the Kinesis sink drops the reply of a PutRecords
//! call Kinesis took, as a broken connection would).
//!
//! It lives in the sinks crate so that sinks can name points on their own
//! durable path; the binary re-exports it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn points() -> &'static HashMap<String, (u64, AtomicU64)> {
    static POINTS: OnceLock<HashMap<String, (u64, AtomicU64)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let spec = std::env::var("OUTFLOW_FAILPOINTS").unwrap_or_default();
        spec.split(',')
            .filter_map(|p| {
                let (name, n) = p.trim().split_once('=').unwrap_or((p.trim(), "1"));
                let n = n.parse().ok()?;
                (!name.is_empty()).then(|| (name.to_string(), (n, AtomicU64::new(0))))
            })
            .collect()
    })
}

/// Whether `name` is armed and this is its pass, without aborting: for
/// faults a sink stages itself (`kinesis.lost_reply`: a PutRecords call's
/// reply is dropped as if the connection broke after Kinesis took it).
pub fn fires(name: &str) -> bool {
    let points = points();
    if points.is_empty() {
        return false;
    }
    points.get(name).is_some_and(|(at, count)| count.fetch_add(1, Ordering::SeqCst) + 1 == *at)
}

/// Aborts the process if `name` is armed and this is its fatal pass.
pub fn hit(name: &str) {
    let points = points();
    if points.is_empty() {
        return;
    }
    if let Some((at, count)) = points.get(name) {
        if count.fetch_add(1, Ordering::SeqCst) + 1 == *at {
            eprintln!("failpoint {name} reached: aborting");
            std::process::abort();
        }
    }
}
