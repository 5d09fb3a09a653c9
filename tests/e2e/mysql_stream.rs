//! MySQL/MariaDB binlog scenarios against the throwaway MariaDB: the type
//! corpus, insert/update/delete, multi-row statements, transactions over
//! several tables, ALTER TABLE mid-stream, restarts, kill -9 mid-run, and
//! every preflight error.

use serde_json::{json, Value};

use crate::harness::{wait_for, RUN_TIMEOUT};
use crate::mysql_harness::{clean_error, MyDb, MyOutflow};

fn golden(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn after_ids(events: &[Value]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| {
            let row = if e["op"] == "d" { &e["before"] } else { &e["after"] };
            (e["op"].as_str().unwrap().to_string(), row["id"].as_i64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn mysql_types_render_as_the_golden_file_says() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "types").await;
    let sql = golden("mysql_types.sql");
    let expected: Vec<Value> = serde_json::from_str(&golden("mysql_types.expected.json")).unwrap();
    let split = sql.find("\nSET sql_mode").unwrap();
    db.exec(&sql[..split]).await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    for stmt in sql[split..].split(";\n").map(str::trim).filter(|s| !s.is_empty() && !s.starts_with("--")) {
        db.exec(stmt).await;
    }
    of.run_until_caught_up().await.assert_success();
    let events = of.events();
    assert_eq!(events.len(), expected.len());
    for (e, want) in events.iter().zip(&expected) {
        for (col, v) in want.as_object().unwrap() {
            assert_eq!(&e["after"][col], v, "row {} column {col}", want["id"]);
        }
        assert_eq!(e["source"]["connector"], "mysql");
        assert_eq!(e["source"]["db"], db.name.as_str());
        assert_eq!(e["source"]["table"], "types");
        assert!(e["source"]["file"].as_str().unwrap().starts_with("mysql-bin."));
        assert!(e["source"]["gtid"].as_str().unwrap().starts_with("0-1-"));
    }
}

#[tokio::test]
async fn mysql_changes_arrive_in_commit_order_with_before_images() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dml").await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20))").await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY, n BIGINT UNSIGNED)").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO a VALUES (1, 'one'), (2, 'two'), (3, 'three')").await;
    db.exec("UPDATE a SET v = 'TWO' WHERE id = 2").await;
    db.exec("BEGIN").await;
    db.exec("INSERT INTO b VALUES (10, 18446744073709551615)").await;
    db.exec("DELETE FROM a WHERE id = 1").await;
    db.exec("INSERT INTO b VALUES (11, 0)").await;
    db.exec("COMMIT").await;
    of.run_until_caught_up().await.assert_success();
    let events = of.events();
    let got: Vec<(String, String, i64)> = events
        .iter()
        .zip(after_ids(&events))
        .map(|(e, (op, id))| (e["source"]["table"].as_str().unwrap().to_string(), op, id))
        .collect();
    let want: Vec<(String, String, i64)> =
        [("a", "c", 1), ("a", "c", 2), ("a", "c", 3), ("a", "u", 2), ("b", "c", 10), ("a", "d", 1), ("b", "c", 11)]
            .iter()
            .map(|(t, o, i)| (t.to_string(), o.to_string(), *i))
            .collect();
    assert_eq!(got, want);
    assert_eq!(events[3]["before"], json!({"id": 2, "v": "two"}));
    assert_eq!(events[3]["after"], json!({"id": 2, "v": "TWO"}));
    assert_eq!(events[4]["after"]["n"], json!(18446744073709551615u64));
    // Rows of one multi-row event share pos and count up in `row`.
    assert_eq!(events[0]["source"]["pos"], events[2]["source"]["pos"]);
    assert_eq!(events[2]["source"]["row"], 2);
    // One transaction: same gtid.
    assert_eq!(events[4]["source"]["gtid"], events[6]["source"]["gtid"]);
    // Nothing new: a rerun delivers nothing twice.
    of.run_until_caught_up().await.assert_success();
    assert_eq!(of.events().len(), 7);
}

#[tokio::test]
async fn mysql_alter_table_mid_stream_moves_to_a_new_schema_version() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "alter").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT)").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO t VALUES (1, 10)").await;
    db.exec("ALTER TABLE t ADD COLUMN b VARCHAR(10) DEFAULT '0'").await;
    db.exec("INSERT INTO t VALUES (2, 20, '5')").await;
    db.exec("ALTER TABLE t DROP COLUMN a").await;
    db.exec("INSERT INTO t VALUES (3, '6')").await;
    db.exec("ALTER TABLE t MODIFY COLUMN b BIGINT").await;
    db.exec("INSERT INTO t VALUES (4, 42)").await;
    of.run_until_caught_up().await.assert_success();
    let afters: Vec<Value> = of.events().iter().map(|e| e["after"].clone()).collect();
    assert_eq!(
        afters,
        vec![
            json!({"id": 1, "a": 10}),
            json!({"id": 2, "a": 20, "b": "5"}),
            json!({"id": 3, "b": "6"}),
            json!({"id": 4, "b": 42})
        ]
    );
    let history: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(of.state_dir().join("schemas").join(format!("{}.t.json", db.name))).unwrap(),
    )
    .unwrap();
    assert_eq!(history.len(), 4, "{history:#?}");
    assert!(history[3]["ddl"].as_str().unwrap().contains("MODIFY COLUMN b BIGINT"), "{history:#?}");
}

#[tokio::test]
async fn mysql_kill_9_mid_run_then_catch_up_delivers_every_row_once() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "kill").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(100))").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    // One big multi-row transaction before the run, then small ones while it
    // streams: the kill lands once the run has delivered rows and before the
    // last transactions even exist, so it is mid-stream by construction.
    db.exec("INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000").await;
    let mut child = of.command(&["run"]).spawn().unwrap();
    let lines = || std::fs::read(of.out_path()).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    wait_for(RUN_TIMEOUT, "the run to deliver rows of the big transaction", || async { lines() > 0 }).await;
    for i in 0..100 {
        db.exec(&format!("INSERT INTO t VALUES ({}, 'y')", 30000 + i)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "the run exited before the kill");
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let at_kill = lines();
    assert!(at_kill > 0 && at_kill < 20200, "the kill landed mid-stream: {at_kill} rows out");
    for i in 100..200 {
        db.exec(&format!("INSERT INTO t VALUES ({}, 'y')", 30000 + i)).await;
    }
    of.run_until_caught_up().await.assert_success();
    let mut ids: Vec<i64> = after_ids(&of.events()).into_iter().map(|(_, id)| id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20200, "distinct rows");
    // The JSONL sink is at-least-once only across a kill: its checkpoint
    // truncates what was written after the last commit, so no duplicates.
    assert_eq!(n, 20200, "rows delivered more than once");
}

#[tokio::test]
async fn mysql_restart_resumes_from_a_file_position_too() {
    // A saved `file:` position on MariaDB is refused clearly (GTID positions
    // are used there); the GTID resume is covered by every other test's reruns.
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "filepos").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    let offset = of.state_dir().join("sinks").join("events.json");
    let text = std::fs::read_to_string(&offset).unwrap();
    assert!(text.contains("\"gtid:"), "{text}");
    std::fs::write(&offset, "{\"position\": \"file:mysql-bin.000001:4\", \"events\": 0, \"checkpoint\": {\"len\": 0}, \"committed_at\": \"2024-01-01T00:00:00Z\"}").unwrap();
    let out = of.run_until_caught_up().await;
    clean_error(&out);
}

#[tokio::test]
async fn mysql_preflight_errors_name_the_fix() {
    // log_bin off.
    let db = MyDb::create("OUTFLOW_TEST_MYSQL_NOBIN_URL", "nobin").await;
    let of = MyOutflow::new(&db);
    let out = of.run_until_caught_up().await;
    assert!(clean_error(&out).contains("log_bin"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);

    // The misconfigured server: one setting wrong at a time (this test owns its globals).
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_MISC_URL", "misc").await;
    let of = MyOutflow::new(&db);
    let cases = [
        ("SET GLOBAL binlog_format = 'STATEMENT'", "binlog_format"),
        ("SET GLOBAL binlog_format = 'ROW', GLOBAL binlog_row_image = 'MINIMAL'", "binlog_row_image"),
        ("SET GLOBAL binlog_row_image = 'FULL', GLOBAL binlog_row_metadata = 'MINIMAL'", "binlog_row_metadata"),
    ];
    for (setup, word) in cases {
        db.exec(setup).await;
        let out = of.run_until_caught_up().await;
        let line = clean_error(&out);
        assert!(line.contains(word), "{setup}: {}", out.stderr);
        assert!(out.stderr.contains("hint: SET GLOBAL"), "{}", out.stderr);
    }
    db.exec("SET GLOBAL binlog_row_metadata = 'FULL'").await;

    // Missing privileges.
    let user = format!("u_{}", db.name);
    db.exec(&format!("CREATE USER '{user}'@'127.0.0.1'")).await;
    db.exec(&format!("GRANT SELECT ON *.* TO '{user}'@'127.0.0.1'")).await;
    let mut of2 = MyOutflow::new(&db);
    of2.url = db.url().replace("root@", &format!("{user}@"));
    let out = of2.run_until_caught_up().await;
    assert!(clean_error(&out).contains("REPLICATION SLAVE"), "{}", out.stderr);
    db.exec(&format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'@'127.0.0.1'")).await;
    let out = of2.run_until_caught_up().await;
    assert!(clean_error(&out).contains("REPLICATION CLIENT"), "{}", out.stderr);

    // server_id equal to the server's own.
    let mut of3 = MyOutflow::new(&db);
    of3.server_id = 3;
    let out = of3.run_until_caught_up().await;
    assert!(clean_error(&out).contains("server_id"), "{}", out.stderr);

    // server_id clash with a connected replica: a running outflow.
    of.run_until_caught_up().await.assert_success();
    let mut running = of.command(&["run"]).spawn().unwrap();
    let mut clash = MyOutflow::new(&db);
    clash.server_id = of.server_id;
    let mut seen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let out = clash.run_until_caught_up().await;
        if out.code != Some(0) {
            seen = clean_error(&out);
            break;
        }
    }
    let _ = running.start_kill();
    let _ = running.wait().await;
    assert!(seen.contains("server_id"), "{seen}");

    // Purged position: rotate and purge, then point the sink at a state
    // older than the oldest binlog's GTID list (a replica's retention can hold
    // files back, so the test does not rely on PURGE alone).
    db.exec("FLUSH BINARY LOGS").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO t VALUES (1)").await;
    db.exec("FLUSH BINARY LOGS").await;
    let logs: Vec<(String, u64)> =
        mysql_async::prelude::Queryable::query(&mut db.conn, "SHOW BINARY LOGS").await.unwrap();
    db.exec(&format!("PURGE BINARY LOGS TO '{}'", logs.last().unwrap().0)).await;
    let offset = of.state_dir().join("sinks").join("events.json");
    std::fs::write(
        &offset,
        r#"{"position": "gtid:0-3-1", "events": 0, "checkpoint": {"len": 0}, "committed_at": "2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let out = of.run_until_caught_up().await;
    let line = clean_error(&out);
    assert!(line.contains("purged"), "{}", out.stderr);
    assert!(out.stderr.contains("re-snapshot"), "{}", out.stderr);
}

#[tokio::test]
async fn mysql_check_lists_each_problem_with_its_fix() {
    let mut good = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "check_ok").await;
    good.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let out = MyOutflow::new(&good).exec(&["check"]).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("✓ binlog_format = ROW"), "{}", out.stdout);
    assert!(out.stdout.contains("all checks passed"), "{}", out.stdout);

    // Binary log off and a table without a primary key: both listed, each with its fix.
    let mut bad = MyDb::create("OUTFLOW_TEST_MYSQL_NOBIN_URL", "check_bad").await;
    bad.exec("CREATE TABLE nokey (v INT)").await;
    let out = MyOutflow::new(&bad).exec(&["check"]).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("✗ binary log is on (log_bin)\n    fix: start the server with log_bin"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("✗ {}.nokey: has a primary key", bad.name)), "{}", out.stdout);
    assert!(out.stderr.contains("check(s) failed"), "{}", out.stderr);
}

#[tokio::test]
async fn mysql_offsets_set_refuses_a_purged_binlog_and_accepts_one_the_server_has() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "offsets").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(of.state_dir().join("sinks/events.json")).unwrap()).unwrap();
    let here = stored["position"].as_str().unwrap().to_string();

    let out = of.exec(&["offsets", "set", "--sink", "events", "--position", "file:mysql-bin.000000:4"]).await;
    assert!(clean_error(&out).contains("purged"), "{}", out.stderr);
    let out = of.exec(&["offsets", "set", "--sink", "events", "--position", "lsn:0/16B3748"]).await;
    assert!(clean_error(&out).contains("not a MySQL/MariaDB position"), "{}", out.stderr);
    let out = of.exec(&["offsets", "set", "--sink", "events", "--position", &here, "--dry-run"]).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(of.state_dir().join("sinks/events.json")).unwrap()).unwrap();
    assert_eq!(after, stored, "a dry run changes nothing");
}
