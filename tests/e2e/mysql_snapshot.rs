//! MySQL/MariaDB snapshots through the real binary: existing rows arrive as
//! `r` events before the stream goes on, a snapshot under a concurrent
//! writer replays to exactly the final table, kill -9 mid-snapshot resumes
//! without repeating or losing rows, the type corpus reads the same as the
//! binlog gives it, composite/text/ENUM/keyless/empty tables, `initial_only`,
//! and that other sessions' LOCK TABLES and DDL never wait for the snapshot.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use rand::Rng;
use serde_json::{json, Value};

use crate::harness::{wait_for, RUN_TIMEOUT};
use crate::mysql_harness::{MyDb, MyOutflow};

fn golden(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn of_table<'a>(events: &'a [Value], table: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["source"]["table"] == table).collect()
}

fn reads(events: &[Value], table: &str) -> usize {
    of_table(events, table).iter().filter(|e| e["op"] == "r").count()
}

/// Replays the events of `table` (key `id`) into id → after.
fn replay(events: &[Value], table: &str) -> BTreeMap<i64, Value> {
    let mut rows = BTreeMap::new();
    let id = |row: &Value| row["id"].as_i64().expect("integer id");
    for e in of_table(events, table) {
        match e["op"].as_str() {
            Some("r" | "c") => {
                rows.insert(id(&e["after"]), e["after"].clone());
            }
            Some("u") => {
                rows.remove(&id(&e["before"]));
                rows.insert(id(&e["after"]), e["after"].clone());
            }
            Some("d") => {
                rows.remove(&id(&e["before"]));
            }
            other => panic!("unexpected op {other:?}"),
        }
    }
    rows
}

async fn table_rows(db: &mut MyDb, table: &str) -> BTreeMap<i64, Value> {
    let rows: Vec<(i64, Option<String>)> =
        db.conn.query(format!("SELECT id, v FROM {table} ORDER BY id")).await.unwrap();
    rows.into_iter().map(|(id, v)| (id, json!({"id": id, "v": v}))).collect()
}

#[tokio::test]
async fn mysql_existing_rows_arrive_as_reads_then_changes_stream() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snapbasic").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").await;
    db.exec("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000").await;
    let of = MyOutflow::new(&db).section("[snapshot]\nchunk_size = 99");
    of.run_until_caught_up().await.assert_success();
    let events = of.events();
    let mut ids: Vec<i64> = events.iter().map(|e| e["after"]["id"].as_i64().unwrap()).collect();
    // Key ranges are read at once: in key order within each range only.
    ids.sort();
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>(), "every row once");
    assert!(events.iter().all(|e| e["op"] == "r" && e["source"]["snapshot"] == "true"), "{}", events[0]);
    assert!(events.iter().any(|e| e["after"] == json!({"id": 1, "v": "v1"})));
    assert_eq!(of.snapshot_progress(&format!("{}.t", db.name))["done"], true);

    db.exec("UPDATE t SET v = 'changed' WHERE id = 5").await;
    db.exec("INSERT INTO t VALUES (1001, 'new')").await;
    of.run_until_caught_up().await.assert_success();
    let events = of.events();
    let tail: Vec<(String, i64)> = events[1000..]
        .iter()
        .map(|e| (e["op"].as_str().unwrap().to_string(), e["after"]["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(tail, vec![("u".to_string(), 5), ("c".to_string(), 1001)], "no second snapshot, changes stream");
}

#[tokio::test]
async fn mysql_snapshot_under_concurrent_writes_replays_to_the_final_table() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snapwriter").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(40))").await;
    db.exec("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_60000").await;
    let of = MyOutflow::new(&db).section("[snapshot]\nchunk_size = 1000");
    let table = format!("{}.t", db.name);
    let run = of.spawn_run();
    // A writer changes random keys, inside and outside the chunks, until the
    // snapshot is complete.
    let mut next_id = 60_001i64;
    let mut writes = 0;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while of.snapshot_progress(&table)["done"] != true {
        assert!(Instant::now() < deadline, "snapshot did not finish");
        let id = rand::rng().random_range(1..next_id);
        let sql = match rand::rng().random_range(0..5) {
            0 => format!("UPDATE t SET v = 'u{writes}' WHERE id = {id}"),
            1 => format!("DELETE FROM t WHERE id = {id}"),
            2 => {
                next_id += 1;
                format!("INSERT INTO t VALUES ({next_id}, 'n{writes}')")
            }
            3 => format!("UPDATE t SET v = NULL WHERE id = {id}"),
            _ => format!(
                "BEGIN; UPDATE t SET v = 'x{writes}' WHERE id = {id}; DELETE FROM t WHERE id = {}; COMMIT",
                id / 2 + 1
            ),
        };
        db.exec(&sql).await;
        writes += 1;
    }
    of.sigterm(run).await;
    of.run_until_caught_up().await.assert_success();
    assert!(writes > 100, "the writer ran concurrently ({writes} writes)");
    let events = of.events();
    assert!(reads(&events, "t") > 50_000, "snapshot rows: {}", reads(&events, "t"));
    let replayed = replay(&events, "t");
    let want = table_rows(&mut db, "t").await;
    let wrong: Vec<_> = want.iter().filter(|(id, row)| replayed.get(id) != Some(row)).take(5).collect();
    assert!(wrong.is_empty(), "rows differing after replay (table side): {wrong:?}");
    let extra: Vec<_> = replayed.keys().filter(|id| !want.contains_key(id)).take(5).collect();
    assert!(extra.is_empty(), "rows replayed that the table does not have: {extra:?}");
}

#[tokio::test]
async fn mysql_kill_9_mid_snapshot_resumes_without_repeating_or_losing_rows() {
    mysql_kill_9_mid_snapshot("snapkill", 1).await;
}

#[tokio::test]
async fn mysql_kill_9_mid_snapshot_of_key_ranges_read_at_once_resumes_each_range() {
    mysql_kill_9_mid_snapshot("snapkillranges", 2).await;
}

async fn mysql_kill_9_mid_snapshot(name: &str, parallelism: usize) {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", name).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").await;
    db.exec("INSERT INTO t SELECT seq, 'x' FROM seq_1_to_100000").await;
    db.exec("ANALYZE TABLE t").await;
    // Many small chunks, so the kill lands mid-snapshot even on a loaded machine.
    let of = MyOutflow::new(&db).section(&format!("[snapshot]\nchunk_size = 50\nparallelism = {parallelism}"));
    let table = format!("{}.t", db.name);
    let mut run = of.spawn_run();
    wait_for(RUN_TIMEOUT, "some snapshot chunks to be committed", || async {
        of.snapshot_progress(&table)["rows"].as_u64().unwrap_or(0) >= 500
    })
    .await;
    run.start_kill().unwrap();
    let _ = run.wait().await;
    let progress = of.snapshot_progress(&table);
    assert_ne!(progress["done"], true, "killed too late to test a resume");
    if parallelism > 1 {
        let ranges = progress["ranges"].as_array().map_or(0, Vec::len);
        assert_eq!(ranges, parallelism, "the table is read as key ranges: {progress}");
    }
    of.run_until_caught_up().await.assert_success();
    let mut seen = BTreeMap::new();
    for e in of.events() {
        assert_eq!(e["op"], "r");
        *seen.entry(e["after"]["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "rows delivered twice: {repeated:?}");
    assert_eq!(seen.len(), 100000);
}

#[tokio::test]
async fn mysql_snapshot_reads_the_type_corpus_exactly_as_the_binlog_gives_it() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snaptypes").await;
    let sql = golden("mysql_types.sql");
    let split = sql.find("\nSET sql_mode").unwrap();
    db.exec(&sql[..split]).await;
    // Streamed: a pipeline started before the rows exist sees them as `c`.
    let streamed = MyOutflow::new(&db).section("[snapshot]\nmode = \"never\"");
    streamed.run_until_caught_up().await.assert_success();
    for stmt in sql[split..].split(";\n").map(str::trim).filter(|s| !s.is_empty() && !s.starts_with("--")) {
        db.exec(stmt).await;
    }
    streamed.run_until_caught_up().await.assert_success();
    // Snapshotted: a new pipeline reads the same rows as `r`.
    let snapped = MyOutflow::new(&db).section("[snapshot]\nchunk_size = 2");
    snapped.run_until_caught_up().await.assert_success();
    let (c, r) = (streamed.events(), snapped.events());
    assert!(c.len() >= 3, "{c:?}");
    assert_eq!(r.len(), c.len(), "as many reads as inserts");
    let mut c: Vec<&Value> = c.iter().collect();
    c.sort_by_key(|e| e["after"]["id"].as_i64());
    for (c, r) in c.iter().zip(&r) {
        assert_eq!(c["op"], "c");
        assert_eq!(r["op"], "r");
        assert_eq!(r["after"], c["after"], "row {}", c["after"]["id"]);
        assert_eq!(r["before"], c["before"]);
        assert_eq!(r["source"]["snapshot"], "true");
        assert_eq!((&r["source"]["db"], &r["source"]["table"]), (&c["source"]["db"], &c["source"]["table"]));
    }
    // One schema: a change streamed after the snapshot does not start a new version.
    db.exec("UPDATE types SET i = 7 WHERE id = 3").await;
    snapped.run_until_caught_up().await.assert_success();
    let history: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(snapped.state_dir().join("schemas").join(format!("{}.types.json", db.name))).unwrap(),
    )
    .unwrap();
    assert_eq!(history.len(), 1, "the snapshot's schema differs from the binlog's: {history:#?}");
    assert_eq!(snapped.events().last().unwrap()["op"], "u");
}

#[tokio::test]
async fn mysql_composite_text_decimal_keyless_and_empty_tables_are_read_whole() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snapkeys").await;
    // Key order (b, a) differs from column order.
    db.exec("CREATE TABLE composite (a INT, b VARCHAR(20), v INT, PRIMARY KEY (b, a))").await;
    db.exec("INSERT INTO composite SELECT seq % 7, CONCAT('k', seq DIV 7), seq FROM seq_1_to_1000").await;
    db.exec("CREATE TABLE texty (k VARCHAR(64) PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO texty SELECT CONCAT(MD5(seq), '''q\\\\'), seq FROM seq_1_to_777").await;
    db.exec("CREATE TABLE dec_key (d DECIMAL(12,3) PRIMARY KEY, ts DATETIME(6))").await;
    db.exec("INSERT INTO dec_key SELECT seq / 8, '2024-01-01' + INTERVAL seq MICROSECOND FROM seq_1_to_500").await;
    db.exec("CREATE TABLE keyless (v INT, w VARCHAR(10))").await;
    db.exec("INSERT INTO keyless SELECT seq, 'w' FROM seq_1_to_1234").await;
    db.exec("CREATE TABLE empty (id INT PRIMARY KEY)").await;
    // The server orders an ENUM by definition position, not by label.
    db.exec("CREATE TABLE enum_key (e ENUM('zebra', 'apple', 'it''s', 'mango') NOT NULL, n INT, PRIMARY KEY (e, n))")
        .await;
    db.exec("INSERT INTO enum_key SELECT ELT(1 + seq % 4, 'zebra', 'apple', 'it''s', 'mango'), seq FROM seq_1_to_1000")
        .await;
    let of = MyOutflow::new(&db).section("[snapshot]\nchunk_size = 100\nparallelism = 3");
    let out = of.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("no primary key"), "a warning for the keyless table:\n{}", out.stderr);
    let events = of.events();
    assert_eq!(reads(&events, "composite"), 1000);
    assert_eq!(reads(&events, "texty"), 777);
    assert_eq!(reads(&events, "dec_key"), 500);
    assert_eq!(reads(&events, "keyless"), 1234);
    assert_eq!(reads(&events, "empty"), 0);
    let mut enum_keys: Vec<(String, i64)> = of_table(&events, "enum_key")
        .iter()
        .map(|e| (e["after"]["e"].as_str().unwrap().to_string(), e["after"]["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(enum_keys.len(), 1000, "every ENUM-keyed row once");
    enum_keys.sort();
    enum_keys.dedup();
    assert_eq!(enum_keys.len(), 1000, "ENUM keys are distinct");
    let mut composite: Vec<(i64, String)> = of_table(&events, "composite")
        .iter()
        .map(|e| (e["after"]["a"].as_i64().unwrap(), e["after"]["b"].as_str().unwrap().to_string()))
        .collect();
    composite.sort();
    composite.dedup();
    assert_eq!(composite.len(), 1000, "composite keys are distinct");
    assert!(of_table(&events, "texty").iter().all(|e| e["after"]["k"].as_str().unwrap().ends_with("'q\\")));
    let mut decimals: Vec<String> =
        of_table(&events, "dec_key").iter().map(|e| e["after"]["d"].as_str().unwrap().to_string()).collect();
    decimals.dedup();
    assert_eq!(decimals.len(), 500, "decimal keys are distinct");
    let mut keyless: Vec<i64> =
        of_table(&events, "keyless").iter().map(|e| e["after"]["v"].as_i64().unwrap()).collect();
    keyless.sort();
    assert_eq!(keyless, (1..=1234).collect::<Vec<_>>());
}

#[tokio::test]
async fn mysql_initial_only_snapshots_and_exits() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snaponly").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO t SELECT seq FROM seq_1_to_300").await;
    let of = MyOutflow::new(&db).section("[snapshot]\nmode = \"initial_only\"\nchunk_size = 50");
    let out = tokio::time::timeout(Duration::from_secs(120), of.exec(&["run"])).await.expect("initial_only exits");
    out.assert_success();
    assert_eq!(reads(&of.events(), "t"), 300);
}

#[tokio::test]
async fn mysql_outflow_snapshot_re_reads_a_table_while_streaming_goes_on() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snapreq").await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))").await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(10))").await;
    db.exec("INSERT INTO a SELECT seq, 'a' FROM seq_1_to_300").await;
    db.exec("INSERT INTO b SELECT seq, 'b' FROM seq_1_to_200").await;
    let of = MyOutflow::new(&db);
    let run = of.spawn_run();
    let (ta, tb) = (format!("{}.a", db.name), format!("{}.b", db.name));
    wait_for(RUN_TIMEOUT, "the initial snapshot", || async {
        of.snapshot_progress(&ta)["done"] == true && of.snapshot_progress(&tb)["done"] == true
    })
    .await;
    of.exec(&["snapshot", "--table", &ta]).await.assert_success();
    db.exec("INSERT INTO b VALUES (1000, 'streamed')").await;
    wait_for(RUN_TIMEOUT, "a second snapshot of a and the streamed insert", || async {
        let text = std::fs::read_to_string(of.out_path()).unwrap_or_default();
        let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        reads(&events, "a") == 600 && of_table(&events, "b").iter().any(|e| e["op"] == "c")
    })
    .await;
    of.sigterm(run).await;
    assert_eq!(reads(&of.events(), "b"), 200, "b was not re-read");
}

#[tokio::test]
async fn mysql_a_snapshot_holds_no_lock_that_blocks_ddl() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "snaplock").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100))").await;
    // Big enough, in small chunks on one reader, that the snapshot is still
    // running when the first rows are out (the stored progress lags: it is
    // written at commits, and one came only after the whole 100k rows once).
    db.exec("INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_300000").await;
    let of = MyOutflow::new(&db).section("[snapshot]\nchunk_size = 200\nparallelism = 1");
    let table = format!("{}.t", db.name);
    let run = of.spawn_run();
    wait_for(RUN_TIMEOUT, "the snapshot to start", || async {
        std::fs::metadata(of.out_path()).is_ok_and(|m| m.len() > 0)
    })
    .await;
    // Another session's exclusive lock and DDL wait at most for one chunk's
    // transaction (a shared metadata lock), never for the whole snapshot.
    let mut other = mysql_async::Conn::new(mysql_async::Opts::from_url(&db.url()).unwrap()).await.unwrap();
    other.query_drop("SET SESSION lock_wait_timeout = 5").await.unwrap();
    let mut locked = 0;
    while of.snapshot_progress(&table)["done"] != true && locked < 10 {
        other.query_drop("LOCK TABLES t WRITE").await.expect("an exclusive lock is granted while the snapshot runs");
        other.query_drop("UNLOCK TABLES").await.unwrap();
        other
            .query_drop(format!("ALTER TABLE t COMMENT = 'altered {locked}'"))
            .await
            .expect("DDL runs while the snapshot runs");
        locked += 1;
    }
    assert!(locked > 0, "the snapshot ended before the lock was tried");
    of.sigterm(run).await;
}
