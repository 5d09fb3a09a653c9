//! Snapshots of existing rows through the real binary: consistent with a
//! concurrent writer (replaying the output equals the table), resumable
//! after kill -9 without repeating delivered chunks, every kind of key, no
//! lock held, and re-snapshots asked for while running.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::harness::{changes, wait_for, Outflow, TestDb, RUN_TIMEOUT, SHORT};

/// Replays `events` of table `t` (key column `id`) into a map id → after.
fn replay(events: &[Value], table: &str) -> BTreeMap<i64, Value> {
    let mut rows = BTreeMap::new();
    for e in changes(events, table) {
        let id = |row: &Value| row["id"].as_i64().expect("integer id");
        match e["op"].as_str() {
            Some("r" | "c") => {
                rows.insert(id(&e["after"]), e["after"].clone());
            }
            Some("u") => {
                if !e["before"].is_null() {
                    rows.remove(&id(&e["before"]));
                }
                rows.insert(id(&e["after"]), e["after"].clone());
            }
            Some("d") => {
                rows.remove(&id(&e["before"]));
            }
            Some("t") => rows.clear(),
            other => panic!("unexpected op {other:?}"),
        }
    }
    rows
}

async fn table_rows(db: &TestDb, table: &str) -> BTreeMap<i64, Value> {
    db.query(&format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            let v: Option<String> = r.get(1);
            (id, serde_json::json!({"id": id, "v": v}))
        })
        .collect()
}

fn snapshot_done(outflow: &Outflow, table: &str) -> bool {
    let path = outflow.state_dir().join("sinks/events.json");
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let offset: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    offset["snapshot"][table]["done"] == true
}

#[tokio::test]
async fn a_snapshot_under_concurrent_writes_replays_to_the_final_table() {
    let db = TestDb::create("snap_writer").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200000) g").await;
    let outflow = Outflow::new(&db, &["public.t"]).section("[snapshot]\nchunk_size = 5000");
    let run = outflow.spawn_run();
    // A writer changes random keys, inside and outside the snapshot's chunks,
    // until the snapshot is complete.
    let mut next_id = 200_001i64;
    let mut writes = 0;
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while !snapshot_done(&outflow, "public.t") {
        assert!(std::time::Instant::now() < deadline, "snapshot did not finish");
        let id = rand::rng().random_range(1..next_id);
        let sql = match rand::rng().random_range(0..4) {
            0 => format!("UPDATE t SET v = 'u{writes}' WHERE id = {id}"),
            1 => format!("DELETE FROM t WHERE id = {id}"),
            2 => {
                next_id += 1;
                format!("INSERT INTO t VALUES ({next_id}, 'n{writes}')")
            }
            _ => format!("UPDATE t SET v = NULL WHERE id = {id}"),
        };
        db.execute(&sql).await;
        writes += 1;
        if writes % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    run.sigterm_and_wait().await.assert_success();
    outflow.run_until_caught_up().await.assert_success();
    assert!(writes > 100, "the writer ran concurrently ({writes} writes)");
    let events = outflow.events();
    let reads = changes(&events, "t").iter().filter(|e| e["op"] == "r").count();
    assert!(reads > 150_000, "snapshot rows: {reads}");
    let replayed = replay(&events, "t");
    let table = table_rows(&db, "t").await;
    let extra: Vec<_> = replayed.keys().filter(|id| !table.contains_key(id)).take(3).collect();
    let history = |id: &i64| -> Vec<String> {
        changes(&events, "t")
            .iter()
            .filter(|e| e["after"]["id"] == *id || e["before"]["id"] == *id)
            .map(|e| format!("{} {} {}", e["op"], e["after"]["v"], e["source"]["lsn"]))
            .collect()
    };
    let extra_history: Vec<_> = extra.iter().map(|id| (id, history(id))).collect();
    assert_eq!(replayed.len(), table.len(), "row count after replay; extra rows and their events: {extra_history:?}");
    let wrong: Vec<_> = table.iter().filter(|(id, row)| replayed.get(id) != Some(row)).take(5).collect();
    let wrong_history: Vec<_> = wrong.iter().map(|(id, _)| history(id)).collect();
    assert!(wrong.is_empty(), "rows differing after replay (table side): {wrong:?} {wrong_history:?}");
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_mid_snapshot_resumes_without_repeating_delivered_chunks() {
    kill_9_mid_snapshot("snap_kill", 1).await;
}

#[tokio::test]
async fn kill_9_mid_snapshot_of_key_ranges_read_at_once_resumes_each_range() {
    kill_9_mid_snapshot("snap_kill_ranges", 2).await;
}

async fn kill_9_mid_snapshot(name: &str, parallelism: usize) {
    let db = TestDb::create(name).await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100000) g").await;
    // Many small chunks, so the kill lands mid-snapshot even on a loaded machine.
    let outflow =
        Outflow::new(&db, &["public.t"]).section(&format!("[snapshot]\nchunk_size = 20\nparallelism = {parallelism}"));
    let mut run = outflow.spawn_run();
    let progress = || {
        let text = std::fs::read_to_string(outflow.state_dir().join("sinks/events.json")).unwrap_or_default();
        let offset: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        offset["snapshot"]["public.t"].clone()
    };
    wait_for(RUN_TIMEOUT, "some snapshot chunks to be committed", || async {
        progress()["rows"].as_u64().unwrap_or(0) >= 2000
    })
    .await;
    run.kill9().await;
    assert!(!snapshot_done(&outflow, "public.t"), "killed too late to test a resume");
    let ranges = progress()["ranges"].as_array().map_or(0, Vec::len);
    if parallelism > 1 {
        assert_eq!(ranges, parallelism, "the table is read as key ranges: {}", progress());
        assert!(
            progress()["ranges"].as_array().unwrap().iter().all(|r| r["last_key"].is_array()),
            "every range had delivered chunks when killed: {}",
            progress()
        );
    }
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    let mut seen = BTreeMap::new();
    for e in changes(&events, "t") {
        assert_eq!(e["op"], "r");
        *seen.entry(e["after"]["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "rows delivered twice: {repeated:?}");
    assert_eq!(seen.len(), 100000);
    db.cleanup().await;
}

#[tokio::test]
async fn composite_text_keyless_empty_and_toasted_tables_are_read_whole() {
    let db = TestDb::create("snap_keys").await;
    db.client()
        .batch_execute(
            "CREATE TABLE composite (a int, b text, v int, PRIMARY KEY (a, b));
             INSERT INTO composite SELECT g % 7, 'k' || g, g FROM generate_series(1, 1000) g;
             CREATE TABLE texty (k text PRIMARY KEY, v int);
             INSERT INTO texty SELECT md5(g::text) || E'\\'q', g FROM generate_series(1, 777) g;
             CREATE TABLE keyless (v int, w text);
             INSERT INTO keyless SELECT g, 'w' FROM generate_series(1, 1234) g;
             CREATE TABLE empty (id int PRIMARY KEY);
             CREATE TABLE toasted (id int PRIMARY KEY, big text);
             INSERT INTO toasted SELECT g, repeat(md5(g::text), 1000) FROM generate_series(1, 5) g;",
        )
        .await
        .expect("setup");
    let outflow =
        Outflow::new(&db, &["public.composite", "public.texty", "public.keyless", "public.empty", "public.toasted"])
            .section("[snapshot]\nchunk_size = 100\nparallelism = 3");
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    let count = |t: &str| changes(&events, t).iter().filter(|e| e["op"] == "r").count();
    assert_eq!(count("composite"), 1000);
    assert_eq!(count("texty"), 777);
    assert_eq!(count("keyless"), 1234);
    assert_eq!(count("empty"), 0);
    assert_eq!(count("toasted"), 5);
    let mut composite: Vec<(i64, String)> = changes(&events, "composite")
        .iter()
        .map(|e| (e["after"]["a"].as_i64().unwrap(), e["after"]["b"].as_str().unwrap().to_string()))
        .collect();
    composite.sort();
    composite.dedup();
    assert_eq!(composite.len(), 1000, "composite keys are distinct");
    for e in changes(&events, "toasted") {
        assert_eq!(e["after"]["big"].as_str().map(str::len), Some(32_000), "TOASTed value read whole");
    }
    assert!(changes(&events, "texty").iter().all(|e| e["after"]["k"].as_str().unwrap().ends_with("'q")));
    db.cleanup().await;
}

#[tokio::test]
async fn a_snapshot_holds_no_lock_that_blocks_ddl() {
    let db = TestDb::create("snap_lock").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    // Big enough, in small chunks on one reader, that the snapshot is still
    // running when its first rows are out.
    db.execute("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 300000) g").await;
    let outflow = Outflow::new(&db, &["public.t"]).section("[snapshot]\nchunk_size = 500\nparallelism = 1");
    let run = outflow.spawn_run();
    wait_for(SHORT, "the snapshot to start", || async { !outflow.events_so_far().is_empty() }).await;
    let other = db.connect().await;
    let mut locked = 0;
    while !snapshot_done(&outflow, "public.t") && locked < 20 {
        // Waits at most for one chunk query's ACCESS SHARE lock.
        other
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '5s'; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; COMMIT;")
            .await
            .expect("an exclusive lock is granted while the snapshot runs");
        locked += 1;
    }
    assert!(locked > 0);
    run.sigterm_and_wait().await.assert_success();
    db.cleanup().await;
}

#[tokio::test]
async fn outflow_snapshot_re_reads_a_table_while_streaming_goes_on() {
    let db = TestDb::create("snap_request").await;
    db.execute("CREATE TABLE a (id bigint PRIMARY KEY, v text)").await;
    db.execute("CREATE TABLE b (id bigint PRIMARY KEY, v text)").await;
    db.execute("INSERT INTO a SELECT g, 'a' FROM generate_series(1, 300) g").await;
    db.execute("INSERT INTO b SELECT g, 'b' FROM generate_series(1, 200) g").await;
    let outflow = Outflow::new(&db, &["public.a", "public.b"]);
    let run = outflow.spawn_run();
    wait_for(SHORT, "the initial snapshot", || async {
        snapshot_done(&outflow, "public.a") && snapshot_done(&outflow, "public.b")
    })
    .await;
    let config = outflow.config_path();
    outflow.exec(&["snapshot", "-c", &config.to_string_lossy(), "--table", "public.a"]).await.assert_success();
    db.execute("INSERT INTO b VALUES (1000, 'streamed')").await;
    wait_for(SHORT, "a second snapshot of a and the streamed insert", || async {
        let events = outflow.events_so_far();
        let reads_a = changes(&events, "a").iter().filter(|e| e["op"] == "r").count();
        let streamed = changes(&events, "b").iter().any(|e| e["op"] == "c");
        reads_a == 600 && streamed
    })
    .await;
    run.sigterm_and_wait().await.assert_success();
    let events = outflow.events();
    assert_eq!(changes(&events, "b").iter().filter(|e| e["op"] == "r").count(), 200, "b was not re-read");
    db.cleanup().await;
}

/// A column dropped while the table's snapshot runs: the reader describes
/// the table again and goes on, every row still read once.
#[tokio::test]
async fn a_column_dropped_during_the_snapshot_does_not_stop_it() {
    let db = TestDb::create("snap_alter").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text, old int)").await;
    db.execute("INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 50000) g").await;
    let outflow = Outflow::new(&db, &["public.t"]).section("[snapshot]\nchunk_size = 20\nparallelism = 1");
    let run = outflow.spawn_run();
    wait_for(RUN_TIMEOUT, "some snapshot chunks to be committed", || async {
        let path = outflow.state_dir().join("sinks/events.json");
        let offset: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or(Value::Null);
        offset["snapshot"]["public.t"]["rows"].as_u64().unwrap_or(0) >= 1000
    })
    .await;
    db.execute("ALTER TABLE t DROP COLUMN old").await;
    wait_for(RUN_TIMEOUT, "the snapshot to finish", || async { snapshot_done(&outflow, "public.t") }).await;
    assert!(
        run.stderr().contains("table changed during its snapshot") || !run.stderr().contains("error"),
        "{}",
        run.stderr()
    );
    run.sigterm_and_wait().await.assert_success();
    let mut seen = BTreeMap::new();
    for e in changes(&outflow.events(), "t") {
        *seen.entry(e["after"]["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 50_000, "every row read");
    assert!(seen.values().all(|c| *c == 1), "no row read twice");
}
