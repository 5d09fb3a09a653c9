//! Signals on MySQL/MariaDB: the signal table is a captured table like any
//! other, its inserted rows read from the binlog in order with the data
//! (never delivered); an `execute-snapshot` with a condition reads exactly
//! the matching rows; a condition the server refuses fails the signal and
//! streaming goes on; the admin API works the same as on PostgreSQL.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::admin::free_port;
use crate::harness::{wait_for, SHORT};
use crate::mysql_harness::{MyDb, MyOutflow};
use crate::signals::{act, signal_when, TOKEN};

fn reads(events: &[Value], table: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["source"]["table"] == table && e["op"] == "r")
        .filter_map(|e| e["after"]["id"].as_i64())
        .collect()
}

async fn status(outflow: &MyOutflow) -> Value {
    let out = outflow.exec(&["status", "--json"]).await;
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("status --json")
}

async fn signal(outflow: &MyOutflow, id: &str) -> Value {
    let status = status(outflow).await;
    status["signals"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap_or_default()
}

#[tokio::test]
async fn mysql_signal_table_and_api_snapshot_the_rows_a_condition_matches() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "signals").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, region VARCHAR(8))").await;
    db.exec("INSERT INTO t SELECT seq, IF(seq % 4 = 0, 'eu', 'us') FROM seq_1_to_20").await;
    db.exec("CREATE TABLE dbz_signal (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048))")
        .await;
    let port = free_port();
    let mut outflow =
        MyOutflow::new(&db).section(&format!("[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\""));
    outflow.source_extra = format!("signal_table = \"{}.dbz_signal\"\n", db.name);
    let run = outflow.spawn_run();
    wait_for(SHORT, "the initial snapshot", || async { reads(&outflow.events(), "t").len() == 20 }).await;

    let t = format!("{}.t", db.name);
    let data = json!({"data-collections": [t], "type": "incremental",
        "additional-conditions": [{"data-collection": t, "filter": "region = 'eu'"}]});
    let bad = json!({"data-collections": [t], "additional-condition": "nosuch = 1"});
    let (data, bad) = (data.to_string().replace('\'', "''"), bad.to_string());
    db.exec(&format!(
        "INSERT INTO dbz_signal VALUES ('m1', 'execute-snapshot', '{data}'), ('m2', 'execute-snapshot', '{bad}')"
    ))
    .await;
    db.exec("INSERT INTO t VALUES (100, 'eu')").await;
    // The insert committed before the signal was read, so before the chunk:
    // the snapshot reads it too (6 'eu' rows).
    wait_for(SHORT, "the 6 'eu' rows read again and the insert", || async {
        let events = outflow.events();
        reads(&events, "t").len() == 26 && events.iter().any(|e| e["op"] == "c" && e["after"]["id"] == 100)
    })
    .await;
    let again: BTreeSet<i64> = reads(&outflow.events(), "t")[20..].iter().copied().collect();
    assert_eq!(again, BTreeSet::from([4, 8, 12, 16, 20, 100]));
    wait_for(SHORT, "m1 done and m2 failed", || async {
        signal(&outflow, "m1").await["status"] == "done" && signal(&outflow, "m2").await["status"] == "failed"
    })
    .await;
    let m2 = signal(&outflow, "m2").await;
    assert!(m2["detail"].as_str().unwrap().contains("nosuch"), "{m2}");
    assert_eq!(m2["origin"], "table");

    // The API: the rows with id <= 2.
    let id = act(port, "/api/snapshot", json!({"tables": [t], "filter": "id <= 2"})).await;
    signal_when(port, &id, "done").await;
    wait_for(SHORT, "2 more reads", || async { reads(&outflow.events(), "t").len() == 28 }).await;
    outflow.sigterm(run).await;
    let events = outflow.events();
    assert_eq!(reads(&events, "t")[26..], [1, 2]);
    assert!(!events.iter().any(|e| e["source"]["table"] == "dbz_signal"), "signal rows reached the sink");
}
