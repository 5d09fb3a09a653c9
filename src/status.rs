//! `outflow status`: where the source and every sink stand, as one JSON
//! object (`--json`) or an aligned table. It reads the state directory and
//! asks the server, so it works while `run` runs and while it does not. Each
//! source fills in its own `source` block and each sink's lag; the rest is
//! shared. The admin server's `/status` serves the same report ([`build`]).
//!
//! `held_back_by` names the sink the source's acknowledgement follows: the
//! one with the least durable position (a sink without an offset counts as
//! least), and whether the running process has detached it (stopped feeding
//! it because it did not keep up; see `src/pipeline.rs`). Each sink also
//! says whether it is `detached`.
//!
//! A sink's `lag_seconds` comes from its offset file: 0 when the server has
//! nothing the sink lacks (`lag_bytes` or `lag_transactions` is 0), else the
//! time since the commit of the last transaction the sink holds. That is an
//! upper bound: on a quiet database whose server still writes WAL (other
//! databases, checkpoints) it keeps growing. A running process's exact
//! figure is `outflow_source_lag_seconds` on `/metrics`.

use std::path::Path;

use outflow_model::{Position, TableId};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::error::Result;
use crate::report::text;
use crate::snapshot::least_progress;
use crate::state::{format_rfc3339, SinkOffset, StateDir};

pub async fn status(config_path: &Path, as_json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let report = build(&config).await?;
    if as_json {
        println!("{report}");
    } else {
        print_report(&config, &report);
    }
    Ok(())
}

/// The report `status --json` prints.
pub async fn build(config: &Config) -> Result<Value> {
    let state = StateDir::open_read_only(&config.state.dir);
    let source = config.source.factory().status().await?;
    Ok(report(config, &state, source.block, source.lag))
}

/// The report around a source block: sinks (with `lag` adding each sink's
/// lag fields), snapshot progress and the running process.
pub fn report(
    config: &Config,
    state: &StateDir,
    source: Value,
    lag: impl Fn(&Position) -> Map<String, Value>,
) -> Value {
    let mut sinks = Vec::new();
    let now_us = crate::health::now_us();
    let detached = state.detached();
    let paused = state.paused().unwrap_or_default();
    // (position, name) of the sink with the least durable position.
    let mut least: Option<(Option<Position>, &str)> = None;
    for sink in &config.sinks {
        let name = sink.name();
        let path = state.sink_offset_path(name);
        let mut entry = json!({"name": name, "kind": sink.kind(), "position": null, "events": 0, "committed_at": null});
        entry["detached"] = json!(detached.contains_key(name));
        entry["detached_since"] = json!(detached.get(name));
        entry["paused"] = json!(paused.iter().any(|p| p == name));
        let offset = state.sink_offset(name);
        let position = offset.as_ref().ok().and_then(|o| o.as_ref()?.position(&path).ok());
        if least.as_ref().is_none_or(|(p, _)| position < *p) {
            least = Some((position, name));
        }
        match offset {
            Ok(Some(o)) => {
                entry["position"] = json!(o.position);
                entry["events"] = json!(o.events);
                entry["committed_at"] = json!(o.committed_at);
                entry["last_commit_at"] = json!(o.last_commit_ts_us.map(|ts| format_rfc3339(ts.div_euclid(1_000_000))));
                if let Ok(p) = o.position(&path) {
                    entry.as_object_mut().expect("an object").extend(lag(&p));
                }
                let caught_up =
                    entry.get("lag_bytes") == Some(&json!(0)) || entry.get("lag_transactions") == Some(&json!(0));
                entry["lag_seconds"] = match o.last_commit_ts_us {
                    _ if caught_up => json!(0),
                    Some(ts) => json!(now_us.saturating_sub(ts).max(0) / 1_000_000),
                    None => Value::Null,
                };
            }
            Ok(None) => {}
            Err(e) => {
                entry["events"] = Value::Null;
                entry["error"] = json!(e.message);
            }
        }
        sinks.push(entry);
    }
    let held_back_by = least.map(|(position, name)| {
        json!({
            "sink": name,
            "position": position.map(|p| p.to_string()),
            "detached": detached.contains_key(name),
        })
    });
    json!({
        "source": source,
        "held_back_by": held_back_by,
        "sinks": sinks,
        "snapshot": snapshot(config, state),
        "dropped_by_transforms": state.dropped(),
        "signals": crate::signal::stored(state.path()),
        "process": state.running().map(|i| json!({"pid": i.pid, "started_at": i.started_at})),
    })
}

/// Snapshot progress per table over all sinks: the least advanced sink's.
fn snapshot(config: &Config, state: &StateDir) -> Value {
    let offsets: Vec<Option<SinkOffset>> =
        config.sinks.iter().map(|s| state.sink_offset(s.name()).ok().flatten()).collect();
    let none = Default::default();
    let refs: Vec<&_> = offsets.iter().map(|o| o.as_ref().map_or(&none, |o| &o.snapshot)).collect();
    let mut tables: std::collections::BTreeSet<String> =
        offsets.iter().flatten().flat_map(|o| o.snapshot.keys().cloned()).collect();
    let requested = state.snapshot_requests();
    tables.extend(requested.iter().cloned());
    let running = state.running().is_some();
    let list: Vec<_> = tables
        .into_iter()
        .map(|name| {
            let (schema, table) = name.split_once('.').unwrap_or(("", &name));
            let p = least_progress(&refs, &TableId::new(schema, table));
            let status = if requested.contains(&name) {
                "requested"
            } else if p.done {
                "done"
            } else if running {
                "running"
            } else {
                "pending"
            };
            json!({"table": name, "status": status, "rows": p.rows})
        })
        .collect();
    Value::Array(list)
}

fn print_report(config: &Config, r: &Value) {
    config.source.factory().print_status(&r["source"]);
    match &r["process"] {
        Value::Null => println!("process   not running"),
        p => println!("process   running, pid {} since {}", text(&p["pid"]), text(&p["started_at"])),
    }
    let held = &r["held_back_by"];
    if !held.is_null() && r["sinks"].as_array().is_some_and(|s| s.len() > 1) {
        let detached = if held["detached"] == json!(true) { ", detached: it did not keep up" } else { "" };
        println!("held back by sink {} at {}{detached}", text(&held["sink"]), text(&held["position"]));
    }
    println!();
    let sinks = r["sinks"].as_array().cloned().unwrap_or_default();
    let with_txs = sinks.iter().any(|s| s.get("lag_transactions").is_some());
    let txs = |s: &Value| if with_txs { format!(" {:>8}", text(&s["lag_transactions"])) } else { String::new() };
    let header = if with_txs { format!(" {:>8}", "LAG TXS") } else { String::new() };
    println!(
        "{:<20} {:<8} {:<34} {:>12} {:>14}{header} {:>9}  COMMITTED",
        "SINK", "KIND", "POSITION", "EVENTS", "LAG BYTES", "LAG SECS"
    );
    for sink in &sinks {
        println!(
            "{:<20} {:<8} {:<34} {:>12} {:>14}{} {:>9}  {}",
            text(&sink["name"]),
            text(&sink["kind"]),
            text(&sink["position"]),
            text(&sink["events"]),
            text(&sink["lag_bytes"]),
            txs(sink),
            text(&sink["lag_seconds"]),
            match (sink["error"].as_str(), sink["paused"] == json!(true), sink["detached"] == json!(true)) {
                (Some(e), _, _) => format!("error: {e}"),
                (None, true, _) => format!("{} (paused)", text(&sink["committed_at"])),
                (None, false, true) => format!("{} (detached)", text(&sink["committed_at"])),
                (None, false, false) => text(&sink["committed_at"]),
            },
        );
    }
    let snapshot = r["snapshot"].as_array().cloned().unwrap_or_default();
    if !snapshot.is_empty() {
        println!();
        println!("{:<40} {:<10} {:>12}", "SNAPSHOT TABLE", "STATUS", "ROWS");
        for t in &snapshot {
            println!("{:<40} {:<10} {:>12}", text(&t["table"]), text(&t["status"]), text(&t["rows"]));
        }
    }
    let signals = r["signals"].as_array().cloned().unwrap_or_default();
    if !signals.is_empty() {
        println!();
        println!("{:<18} {:<18} {:<6} {:<8} {:<20}  DETAIL", "SIGNAL", "TYPE", "FROM", "STATUS", "UPDATED");
        for s in signals.iter().take(10) {
            println!(
                "{:<18} {:<18} {:<6} {:<8} {:<20}  {}",
                text(&s["id"]),
                text(&s["type"]),
                text(&s["origin"]),
                text(&s["status"]),
                text(&s["updated_at"]),
                s["detail"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(dropped) = r["dropped_by_transforms"].as_object().filter(|d| !d.is_empty()) {
        println!();
        println!("{:<40} {:>12}", "TABLE", "DROPPED BY TRANSFORMS");
        for (table, n) in dropped {
            println!("{:<40} {:>12}", table, text(n));
        }
    }
}
