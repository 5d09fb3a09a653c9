//! Chaos: a writer commits a known history into PostgreSQL while one outflow
//! fans out into three exactly-once sinks (JSONL, Parquet, Kafka), and faults
//! are injected at random moments: kill -9 of outflow, the replication
//! connection cut (its walsender terminated), the broker frozen (SIGSTOP)
//! and resumed. At the end every sink is read by its independent reader and
//! compared with the writer's history, per key: missing, duplicated,
//! reordered and wrong-valued events are counted separately and must all be
//! zero.
//!
//! The history: `acct (id, ver, val)` rows are inserted (ver 0), updated
//! (ver + 1) and deleted; `ledger` rows are inserted together with an acct
//! update in one transaction; once, a large transaction inserts thousands
//! of rows. `val` is a function of (id, ver), so a wrong value is visible.
//!
//! CI runs a reduced form (`OUTFLOW_CHAOS_ROUNDS`, default 6 fault rounds);
//! `scripts/chaos.sh` runs more rounds and writes the markdown report to
//! `OUTFLOW_CHAOS_REPORT`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::harness::{read_jsonl, Outflow, TestDb};
use crate::kafka::{brokers, records, signal_broker, unique_name, ContinueBroker};
use crate::parquet::{position_key, read_lake};

/// One committed change as the writer knows it: (op, ver); deletes carry
/// no version (the old row holds only the key).
type Expected = Vec<(String, Option<i64>)>;

fn val(id: i64, ver: i64) -> String {
    format!("v{}", (id * 7919 + ver * 104_729) % 1_000_003)
}

/// The writer's history, per (table, key), in commit order.
#[derive(Default)]
struct History {
    per_key: BTreeMap<(String, i64), Expected>,
    transactions: u64,
}

impl History {
    fn push(&mut self, table: &str, id: i64, op: &str, ver: Option<i64>) {
        self.per_key.entry((table.to_string(), id)).or_default().push((op.to_string(), ver));
    }
}

/// Commits random transactions until `stop`; returns what it committed.
async fn write_history(db_url: String, stop: Arc<AtomicBool>, history: Arc<Mutex<History>>) {
    let (client, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await.expect("writer connects");
    tokio::spawn(conn);
    let mut live: Vec<(i64, i64)> = Vec::new(); // (id, ver)
    let (mut next_id, mut next_ledger, mut big_done) = (1i64, 1i64, false);
    let mut rng = rand::rngs::StdRng::from_os_rng();
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.random_range(0..100);
        let mut h = Vec::new();
        let sql = if !big_done && next_id > 500 {
            big_done = true;
            let (from, to) = (next_id, next_id + 4999);
            next_id += 5000;
            for id in from..=to {
                live.push((id, 0));
                h.push(("acct", id, "c", Some(0)));
            }
            format!("INSERT INTO acct SELECT g, 0, 'v' || ((g * 7919) % 1000003) FROM generate_series({from}, {to}) g")
        } else if roll < 40 || live.is_empty() {
            let id = next_id;
            next_id += 1;
            live.push((id, 0));
            h.push(("acct", id, "c", Some(0)));
            format!("INSERT INTO acct VALUES ({id}, 0, '{}')", val(id, 0))
        } else if roll < 70 {
            let i = rng.random_range(0..live.len());
            live[i].1 += 1;
            let (id, ver) = live[i];
            h.push(("acct", id, "u", Some(ver)));
            format!("UPDATE acct SET ver = {ver}, val = '{}' WHERE id = {id}", val(id, ver))
        } else if roll < 80 {
            let (id, _) = live.swap_remove(rng.random_range(0..live.len()));
            h.push(("acct", id, "d", None));
            format!("DELETE FROM acct WHERE id = {id}")
        } else {
            let i = rng.random_range(0..live.len());
            live[i].1 += 1;
            let (id, ver) = live[i];
            let lid = next_ledger;
            next_ledger += 1;
            h.push(("acct", id, "u", Some(ver)));
            h.push(("ledger", lid, "c", Some(ver)));
            format!(
                "BEGIN; UPDATE acct SET ver = {ver}, val = '{}' WHERE id = {id}; \
                 INSERT INTO ledger VALUES ({lid}, {id}, {ver}, '{}'); COMMIT",
                val(id, ver),
                val(lid, ver)
            )
        };
        client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("writer: {sql}: {e}"));
        {
            let mut history = history.lock().unwrap();
            history.transactions += 1;
            for (table, id, op, ver) in h {
                history.push(table, id, op, ver);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
    }
}

/// Errors found in one sink's output.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Errors {
    checked: u64,
    missing: u64,
    duplicated: u64,
    reordered: u64,
    wrong_value: u64,
}

/// Compares one sink's events (in the sink's order per key) with the history.
/// An event is (table, id, op, ver, val).
fn check(history: &History, events: &[(String, i64, String, Option<i64>, Option<String>)]) -> Errors {
    let mut got: BTreeMap<(String, i64), Vec<(String, Option<i64>)>> = BTreeMap::new();
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

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn jsonl_events(path: &std::path::Path) -> Vec<(String, i64, String, Option<i64>, Option<String>)> {
    read_jsonl(path).iter().filter_map(envelope_event).collect()
}

fn envelope_event(e: &Value) -> Option<(String, i64, String, Option<i64>, Option<String>)> {
    let op = e["op"].as_str()?.to_string();
    let row = if op == "d" { &e["before"] } else { &e["after"] };
    Some((
        e["source"]["table"].as_str()?.to_string(),
        int(&row["id"])?,
        op,
        int(&row["ver"]),
        row["val"].as_str().map(str::to_string),
    ))
}

fn kafka_events(name: &str) -> Vec<(String, i64, String, Option<i64>, Option<String>)> {
    let mut out = Vec::new();
    for table in ["acct", "ledger"] {
        for r in records(&format!("{name}.public.{table}")) {
            if let Some(e) = envelope_event(&r["value"]) {
                out.push(e);
            }
        }
    }
    out
}

fn parquet_events(lake: &str) -> Vec<(String, i64, String, Option<i64>, Option<String>)> {
    let read = read_lake(lake, &[]);
    let mut out = Vec::new();
    for table in ["acct", "ledger"] {
        let mut rows = read["tables"][format!("public.{table}")]["rows"].as_array().cloned().unwrap_or_default();
        rows.sort_by_key(|r| position_key(r["_position"].as_str().unwrap_or("lsn:0/0")));
        for r in rows {
            out.push((
                table.to_string(),
                int(&r["id"]).unwrap_or(-1),
                r["_op"].as_str().unwrap_or("?").to_string(),
                int(&r["ver"]),
                r["val"].as_str().map(str::to_string),
            ));
        }
    }
    out
}

#[derive(Default)]
struct Faults {
    kill9: u64,
    connection_cut: u64,
    broker_frozen: u64,
}

async fn terminate_walsender(db: &TestDb) -> bool {
    let rows = db
        .query(&format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}' AND active",
            db.name()
        ))
        .await;
    !rows.is_empty()
}

#[tokio::test]
async fn chaos_no_event_lost_duplicated_reordered_or_wrong_in_any_sink() {
    let rounds: u64 = std::env::var("OUTFLOW_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6);
    let db = TestDb::create("chaos").await;
    db.execute("CREATE TABLE acct (id bigint PRIMARY KEY, ver int NOT NULL, val text NOT NULL)").await;
    db.execute(
        "CREATE TABLE ledger (id bigint PRIMARY KEY, acct bigint NOT NULL, ver int NOT NULL, val text NOT NULL)",
    )
    .await;
    let name = unique_name("chaos");
    let outflow = Outflow::new(&db, &["public.acct", "public.ledger"]).name(&name);
    let lake = outflow.state_dir().with_file_name("lake").to_string_lossy().into_owned();
    let text = format!(
        "{}\n[[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = {lake:?}\nroll_rows = 2000\n\
         [[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 3\n",
        outflow.config_text(),
        brokers()
    );
    let outflow = outflow.raw_config(text);
    outflow.run_until_caught_up().await.assert_success();

    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let writer = tokio::spawn(write_history(db.url(), stop.clone(), history.clone()));
    let mut faults = Faults::default();
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut run = outflow.spawn_run();
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        match rng.random_range(0..3) {
            0 => {
                run.kill9().await;
                faults.kill9 += 1;
                db.wait_for_slot_idle().await;
                run = outflow.spawn_run();
            }
            1 => {
                if terminate_walsender(&db).await {
                    faults.connection_cut += 1;
                }
            }
            _ => {
                signal_broker(libc::SIGSTOP);
                let resume = ContinueBroker;
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
                drop(resume);
                faults.broker_frozen += 1;
            }
        }
        assert!(run.is_running(), "outflow stopped after a fault:\n{}", run.stderr());
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer ran");
    run.kill9().await;
    faults.kill9 += 1;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();

    let history = history.lock().unwrap();
    let written: u64 = history.per_key.values().map(|v| v.len() as u64).sum();
    let results = [
        ("JSONL", check(&history, &jsonl_events(&outflow.out_path()))),
        ("Parquet", check(&history, &parquet_events(&lake))),
        ("Kafka", check(&history, &kafka_events(&name))),
    ];
    let mut report = format!(
        "| source | faults: kill -9 / connection cut / broker frozen | transactions | events written |\n\
         |---|---|---|---|\n| PostgreSQL | {} / {} / {} | {} | {written} |\n\n\
         | sink | events checked | missing | duplicated | reordered per key | wrong value |\n|---|---|---|---|---|---|\n",
        faults.kill9, faults.connection_cut, faults.broker_frozen, history.transactions
    );
    for (sink, e) in &results {
        report.push_str(&format!(
            "| {sink} | {} | {} | {} | {} | {} |\n",
            e.checked, e.missing, e.duplicated, e.reordered, e.wrong_value
        ));
    }
    eprintln!("{report}");
    if let Ok(path) = std::env::var("OUTFLOW_CHAOS_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    for (sink, e) in &results {
        assert_eq!(
            (e.missing, e.duplicated, e.reordered, e.wrong_value),
            (0, 0, 0, 0),
            "{sink}: errors found\n{report}"
        );
        assert_eq!(e.checked, written, "{sink}: every written event is checked\n{report}");
    }
}
