//! The chaos checker: every sink read back by its independent reader and
//! compared with the writer's history.
//!
//! Change-log sinks (JSONL through serde_json, Parquet through pyarrow,
//! Kafka through confluent-kafka) are compared per key: missing,
//! duplicated, reordered-per-key and wrong-valued events are counted
//! separately. The PostgreSQL apply sink holds state, not a log, so its
//! checker compares the target tables with the source's final rows (read
//! with plain SQL on both sides): rows missing, extra and wrong-valued are
//! counted; and its `outflow.offsets` row must hold the position the state
//! directory stored for the sink.

use std::collections::BTreeMap;

use serde_json::Value;

use super::history::{val, Expected, History};
use crate::harness::read_jsonl;
use crate::kafka::records;
use crate::parquet::read_lake;

/// One event as read from a sink: (table, id, op, ver, val).
pub type Event = (String, i64, String, Option<i64>, Option<String>);

/// Errors found in one change-log sink's output.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
pub struct Errors {
    pub checked: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub wrong_value: u64,
}

/// Compares one sink's events (in the sink's order per key) with the history.
pub fn check(history: &History, events: &[Event]) -> Errors {
    let mut got: BTreeMap<(String, i64), Expected> = BTreeMap::new();
    let mut errors = Errors::default();
    for (table, id, op, ver, v) in events {
        errors.checked += 1;
        if op != "d" && v.as_deref() != ver.map(|ver| val(*id, ver)).as_deref() {
            errors.wrong_value += 1;
        }
        let ver = if op == "d" { None } else { *ver };
        got.entry((table.clone(), *id)).or_default().push((op.clone(), ver));
    }
    for (key, want) in &history.per_key {
        let have = got.remove(key).unwrap_or_default();
        let mut counts: BTreeMap<&(String, Option<i64>), i64> = BTreeMap::new();
        for e in &have {
            *counts.entry(e).or_default() += 1;
        }
        for e in want {
            match counts.get_mut(e) {
                Some(c) if *c > 0 => *c -= 1,
                _ => errors.missing += 1,
            }
        }
        let dups = counts.values().filter(|c| **c > 0).map(|c| *c as u64).sum::<u64>();
        if dups > 0 && std::env::var("OUTFLOW_CHAOS_DEBUG").is_ok() {
            eprintln!("DUP {key:?} want {want:?} have {have:?}");
        }
        errors.duplicated += dups;
        // Order: the first occurrence of each expected event must follow the previous one.
        let positions: Vec<usize> = want.iter().filter_map(|e| have.iter().position(|h| h == e)).collect();
        errors.reordered += positions.windows(2).filter(|w| w[0] > w[1]).count() as u64;
    }
    // Events for keys the writer never touched.
    errors.duplicated += got.values().map(|v| v.len() as u64).sum::<u64>();
    errors
}

fn envelope_event(e: &Value) -> Option<Event> {
    let op = e["op"].as_str()?.to_string();
    let row = if op == "d" { &e["before"] } else { &e["after"] };
    Some((
        e["source"]["table"].as_str()?.to_string(),
        row["id"].as_i64()?,
        op,
        row["ver"].as_i64(),
        row["val"].as_str().map(str::to_string),
    ))
}

pub fn jsonl_events(path: &std::path::Path) -> Vec<Event> {
    read_jsonl(path).iter().filter_map(envelope_event).collect()
}

/// Every change record of `<name>.<schema>.acct` and `.ledger` (tombstones
/// carry no event).
pub fn kafka_events(name: &str, schema: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for table in ["acct", "ledger"] {
        out.extend(records(&format!("{name}.{schema}.{table}")).iter().filter_map(|r| envelope_event(&r["value"])));
    }
    out
}

/// A `_position` as a sortable tuple: PostgreSQL `lsn:HI/LO:IDX`, MariaDB
/// `gtid:D-S-N[:IDX[:SUB]]` of the test's own server (one GTID domain).
fn position_key(p: &str) -> (u64, u64, u64) {
    let number = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("position {p:?}: {s:?} is not a number"));
    if let Some(rest) = p.strip_prefix("lsn:") {
        let mut parts = rest.split(':');
        let (hi, lo) = parts.next().and_then(|l| l.split_once('/')).unwrap_or_else(|| panic!("position {p:?}"));
        let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
        return (lsn, parts.next().map_or(0, number), parts.next().map_or(0, number));
    }
    let rest = p.strip_prefix("gtid:").unwrap_or_else(|| panic!("position {p:?} is neither lsn: nor gtid:"));
    let mut parts = rest.split(':');
    let state = parts.next().unwrap_or_default();
    assert!(!state.contains(','), "position {p:?}: more than one GTID domain on the test's own server");
    let seq = state.rsplit('-').next().map_or(0, number);
    (seq, parts.next().map_or(0, number), parts.next().map_or(0, number))
}

/// Every row of the lake's `<schema>.acct` and `.ledger`, in position order.
pub fn parquet_events(lake: &str, schema: &str) -> Vec<Event> {
    let read = read_lake(lake, &[]);
    let mut out = Vec::new();
    for table in ["acct", "ledger"] {
        let mut rows = read["tables"][format!("{schema}.{table}")]["rows"].as_array().cloned().unwrap_or_default();
        rows.sort_by_key(|r| position_key(r["_position"].as_str().unwrap_or("lsn:0/0")));
        for r in rows {
            out.push((
                table.to_string(),
                r["id"].as_i64().unwrap_or(-1),
                r["_op"].as_str().unwrap_or("?").to_string(),
                r["ver"].as_i64(),
                r["val"].as_str().map(str::to_string),
            ));
        }
    }
    out
}

/// Errors found in a state sink (a table kept equal to the source's).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct StateErrors {
    pub checked: u64,
    pub missing: u64,
    pub extra: u64,
    pub wrong: u64,
}

/// One table's rows, by id: (ver, val).
pub type Rows = BTreeMap<i64, (i64, String)>;

/// Compares the target's rows with the source's, row for row.
pub fn check_state(source: &Rows, target: &Rows) -> StateErrors {
    let mut errors = StateErrors { checked: source.len().max(target.len()) as u64, ..Default::default() };
    for (id, row) in source {
        match target.get(id) {
            None => errors.missing += 1,
            Some(t) if t != row => errors.wrong += 1,
            Some(_) => {}
        }
    }
    errors.extra = target.keys().filter(|id| !source.contains_key(id)).count() as u64;
    errors
}

/// A PostgreSQL table's rows (`schema.table`, columns id, ver, val).
pub async fn pg_rows(client: &tokio_postgres::Client, table: &str) -> Rows {
    client
        .query(&format!("SELECT id, ver::bigint, val::text FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("reading {table}: {}", crate::harness::error_text(&e)))
        .iter()
        .map(|r| (r.get::<_, i64>(0), (r.get::<_, i64>(1), r.get::<_, String>(2))))
        .collect()
}

/// A MariaDB table's rows (`db.table`, columns id, ver, val).
pub async fn my_rows(url: &str, table: &str) -> Rows {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap()).await.expect("connect to mariadb");
    let rows: Vec<(i64, i64, String)> =
        conn.query(format!("SELECT id, ver, val FROM {table}")).await.unwrap_or_else(|e| panic!("{table}: {e}"));
    let _ = conn.disconnect().await;
    rows.into_iter().map(|(id, ver, v)| (id, (ver, v))).collect()
}
