//! PostgreSQL changes streamed through the real binary into a JSONL sink and
//! read back: every REPLICA IDENTITY's before/after images, commit order
//! across tables and interleaved transactions, unchanged TOAST values, schema
//! changes mid-stream, password and TLS logins, and one large transaction.
//!
//! The pattern: outflow creates its slot at first start and streams only what
//! is committed after that (snapshots are another suite), so each test starts
//! outflow once on empty tables, writes rows, runs it again until caught up,
//! and compares the file with what it wrote.

use serde_json::{json, Value};

use crate::harness::{
    assert_key_only, assert_row, changes, columns, for_each_jsonl, ops, pg_ca_path, wait_for, Outflow, TestDb, SHORT,
    UNAVAILABLE,
};

/// Creates the slot and publication: a first run on still-empty tables.
async fn start(db: &TestDb, tables: &[&str]) -> Outflow {
    let outflow = Outflow::new(db, tables);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    outflow
}

/// Runs until caught up and returns the sink's whole output.
async fn catch_up(outflow: &Outflow) -> Vec<Value> {
    outflow.run_until_caught_up().await.assert_success();
    outflow.events()
}

/// Inserts, updates (a non-key column, then the key), deletes and truncates
/// table `t` (columns id, name, qty).
async fn write_the_lifecycle(db: &TestDb) {
    db.execute("INSERT INTO t VALUES (1, 'apple', 3)").await;
    db.execute("UPDATE t SET qty = 4 WHERE id = 1").await;
    db.execute("UPDATE t SET id = 2, name = 'pear' WHERE id = 1").await;
    db.execute("DELETE FROM t WHERE id = 2").await;
    db.execute("INSERT INTO t VALUES (3, 'fig', 1)").await;
    db.execute("TRUNCATE t").await;
}

#[tokio::test]
async fn replica_identity_default_sends_old_keys_only() {
    let db = TestDb::create("ri_default").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, name text, qty int)").await;
    let outflow = start(&db, &["public.t"]).await;
    write_the_lifecycle(&db).await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    // The key change is, as in Debezium, a delete of the old key and a
    // create of the new one.
    assert_eq!(ops(&t), ["c", "u", "d", "c", "d", "c", "t"], "events: {t:#?}");

    assert!(t[0]["before"].is_null());
    assert_row(&t[0]["after"], json!({"id": 1, "name": "apple", "qty": 3}));
    // Key unchanged: PostgreSQL sends no old tuple.
    assert!(t[1]["before"].is_null(), "{}", t[1]);
    assert_row(&t[1]["after"], json!({"id": 1, "name": "apple", "qty": 4}));
    // Key changed: the old key arrives, in the delete.
    assert_key_only(&t[2]["before"], json!({"id": 1}));
    assert!(t[2]["after"].is_null());
    assert!(t[3]["before"].is_null());
    assert_row(&t[3]["after"], json!({"id": 2, "name": "pear", "qty": 4}));
    assert_eq!(t[2]["source"], t[3]["source"], "both halves of the key change carry its source block");
    assert_key_only(&t[4]["before"], json!({"id": 2}));
    assert!(t[4]["after"].is_null());
    assert_truncate(t[6]);
    for e in &t {
        assert_eq!(e["source"]["schema"], "public", "{e}");
        assert_eq!(e["source"]["db"], db.name(), "{e}");
        assert_eq!(e["source"]["name"], "outflow", "the default name: {e}");
    }
}

#[tokio::test]
async fn replica_identity_full_sends_whole_old_rows() {
    let db = TestDb::create("ri_full").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, name text, qty int); ALTER TABLE t REPLICA IDENTITY FULL").await;
    let outflow = Outflow::new(&db, &["public.t"]).name("app");
    outflow.run_until_caught_up().await.assert_success();
    write_the_lifecycle(&db).await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["c", "u", "d", "c", "d", "c", "t"], "events: {t:#?}");
    assert!(t.iter().all(|e| e["source"]["name"] == "app"), "the configured name is source.name: {t:#?}");

    assert_row(&t[1]["before"], json!({"id": 1, "name": "apple", "qty": 3}));
    assert_row(&t[1]["after"], json!({"id": 1, "name": "apple", "qty": 4}));
    // The key change: the whole old row deleted, the new one created.
    assert_row(&t[2]["before"], json!({"id": 1, "name": "apple", "qty": 4}));
    assert!(t[2]["after"].is_null());
    assert!(t[3]["before"].is_null());
    assert_row(&t[3]["after"], json!({"id": 2, "name": "pear", "qty": 4}));
    assert_row(&t[4]["before"], json!({"id": 2, "name": "pear", "qty": 4}));
    assert!(t[4]["after"].is_null());
    assert_truncate(t[6]);
}

#[tokio::test]
async fn replica_identity_using_index_sends_the_index_columns() {
    let db = TestDb::create("ri_index").await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, qty int);
         CREATE UNIQUE INDEX t_name ON t (name);
         ALTER TABLE t REPLICA IDENTITY USING INDEX t_name",
    )
    .await;
    let outflow = start(&db, &["public.t"]).await;
    write_the_lifecycle(&db).await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    // The old tuple carries `name`, not the key `id`: the update that moves
    // the row to id 2 cannot be told from another update (stays a `u`).
    assert_eq!(ops(&t), ["c", "u", "u", "d", "c", "t"], "events: {t:#?}");

    // Identity columns unchanged: no old tuple.
    assert!(t[1]["before"].is_null(), "{}", t[1]);
    assert_row(&t[1]["after"], json!({"id": 1, "name": "apple", "qty": 4}));
    // `name` (the identity) changed: its old value arrives, nothing else;
    // the NOT NULL `id` the server did not send is Debezium's fallback, 0.
    assert_eq!(t[2]["before"], json!({"id": 0, "name": "apple", "qty": null}));
    assert_row(&t[2]["after"], json!({"id": 2, "name": "pear", "qty": 4}));
    assert_eq!(t[3]["before"], json!({"id": 0, "name": "pear", "qty": null}));
    assert_truncate(t[5]);
}

#[tokio::test]
async fn replica_identity_nothing_streams_inserts_and_truncates() {
    let db = TestDb::create("ri_nothing").await;
    db.execute("CREATE TABLE t (id int, name text, qty int); ALTER TABLE t REPLICA IDENTITY NOTHING").await;
    let outflow = start(&db, &["public.t"]).await;

    db.execute("INSERT INTO t VALUES (1, 'apple', 3)").await;
    // PostgreSQL itself refuses UPDATE/DELETE on a table without replica
    // identity once a publication publishes them, as outflow's does.
    let refused = db.client().batch_execute("UPDATE t SET qty = 4").await.expect_err("UPDATE should be refused");
    assert!(
        crate::harness::error_text(&refused).contains("replica identity"),
        "unexpected error: {}",
        crate::harness::error_text(&refused)
    );
    db.execute("TRUNCATE t").await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["c", "t"], "events: {t:#?}");
    assert_row(&t[0]["after"], json!({"id": 1, "name": "apple", "qty": 3}));
    assert_truncate(t[1]);
}

#[track_caller]
fn assert_truncate(e: &Value) {
    assert_eq!(e["op"], "t");
    assert!(e["before"].is_null() && e["after"].is_null(), "a truncate carries no rows: {e}");
}

#[tokio::test]
async fn transactions_arrive_in_commit_order_with_their_tx_ids() {
    let db = TestDb::create("commit_order").await;
    db.execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)").await;
    let outflow = start(&db, &["public.a", "public.b"]).await;

    // One transaction touching both tables, interleaved.
    let tx1 = xid_of(
        db.client(),
        "BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); UPDATE a SET id = 10 WHERE id = 1;
         INSERT INTO b VALUES (2); DELETE FROM b WHERE id = 1;",
    )
    .await;
    db.execute("COMMIT").await;
    // Two concurrent transactions: the one that started first commits last.
    let late = db.connect().await;
    let tx2 = xid_of(&late, "BEGIN; INSERT INTO a VALUES (2);").await;
    let early = db.connect().await;
    let tx3 = xid_of(&early, "BEGIN; INSERT INTO b VALUES (3);").await;
    early.batch_execute("COMMIT").await.unwrap();
    late.batch_execute("INSERT INTO a VALUES (3); COMMIT").await.unwrap();

    let events = catch_up(&outflow).await;
    let seen: Vec<(String, String, Value, i64)> = events
        .iter()
        .filter(|e| matches!(e["op"].as_str(), Some("c" | "u" | "d")))
        .map(|e| {
            let row = if e["op"] == "d" { &e["before"] } else { &e["after"] };
            let tx = e["source"]["txId"].as_i64().unwrap_or_else(|| panic!("no integer source.txId: {e}"));
            (
                e["source"]["table"].as_str().unwrap().to_string(),
                e["op"].as_str().unwrap().to_string(),
                row["id"].clone(),
                tx,
            )
        })
        .collect();
    let expected: Vec<(String, String, Value, i64)> = [
        ("a", "c", 1, tx1),
        ("b", "c", 1, tx1),
        ("a", "d", 1, tx1),
        ("a", "c", 10, tx1),
        ("b", "c", 2, tx1),
        ("b", "d", 1, tx1),
        ("b", "c", 3, tx3),
        ("a", "c", 2, tx2),
        ("a", "c", 3, tx2),
    ]
    .into_iter()
    .map(|(t, op, id, tx)| (t.to_string(), op.to_string(), json!(id), tx))
    .collect();
    assert_eq!(seen, expected, "the sink holds: {events:#?}");

    // Inside a transaction, changes carry increasing LSNs (across
    // interleaved transactions they need not: commit order is what counts);
    // the delete and create of a key change share the update's LSN.
    for tx in [tx1, tx2, tx3] {
        let lsns: Vec<i64> = events
            .iter()
            .filter(|e| matches!(e["op"].as_str(), Some("c" | "u" | "d")) && e["source"]["txId"] == tx)
            .map(|e| e["source"]["lsn"].as_i64().unwrap_or_else(|| panic!("no integer source.lsn: {e}")))
            .collect();
        assert!(lsns.windows(2).all(|w| w[0] <= w[1]), "LSNs out of order in tx {tx}: {lsns:?}");
        assert!(lsns.windows(3).all(|w| w[0] < w[2]), "more than two events at one LSN in tx {tx}: {lsns:?}");
    }
}

/// Runs `sql` (which opens a transaction and leaves it open) and returns the
/// transaction's id as Debezium's `txId` reports it.
async fn xid_of(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{}: {sql}", crate::harness::error_text(&e)));
    let row = client.query_one("SELECT txid_current()", &[]).await.unwrap();
    row.get(0)
}

#[tokio::test]
async fn unchanged_toast_values_are_marked_unavailable_never_null() {
    let db = TestDb::create("toast").await;
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, big text, small int);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL",
    )
    .await;
    let outflow = start(&db, &["public.t"]).await;
    let big = random_text(20_000);
    let bigger = random_text(30_000);
    db.client().execute("INSERT INTO t VALUES (1, $1, 1)", &[&big]).await.unwrap();
    db.execute("UPDATE t SET small = 2 WHERE id = 1").await;
    db.client().execute("UPDATE t SET big = $1, small = 3 WHERE id = 1", &[&bigger]).await.unwrap();
    db.execute("UPDATE t SET small = 4 WHERE id = 1").await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["c", "u", "u", "u"]);
    assert_eq!(t[0]["after"]["big"], big.as_str(), "the inserted TOAST value arrives whole");
    assert_row(&t[1]["after"], json!({"id": 1, "big": UNAVAILABLE, "small": 2}));
    assert_eq!(t[2]["after"]["big"], bigger.as_str(), "an updated TOAST value arrives whole");
    assert_row(&t[3]["after"], json!({"id": 1, "big": UNAVAILABLE, "small": 4}));
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

#[tokio::test]
async fn columns_added_and_dropped_mid_stream_change_the_rows_that_follow() {
    let db = TestDb::create("ddl").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, a text)").await;
    let outflow = start(&db, &["public.t"]).await;
    let running = outflow.spawn_run();
    db.wait_for_slot_streaming().await;

    db.execute("INSERT INTO t VALUES (1, 'one')").await;
    db.execute("ALTER TABLE t ADD COLUMN b int").await;
    db.execute("INSERT INTO t VALUES (2, 'two', 2)").await;
    db.execute("ALTER TABLE t DROP COLUMN a").await;
    db.execute("INSERT INTO t VALUES (3, 3)").await;
    db.execute("UPDATE t SET b = 20 WHERE id = 2").await;
    wait_for(SHORT, "all four changes in the sink", || async { changes(&outflow.events_so_far(), "t").len() >= 4 })
        .await;
    running.sigterm_and_wait().await.assert_success();

    let events = outflow.events();
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["c", "c", "c", "u"]);
    assert_row(&t[0]["after"], json!({"id": 1, "a": "one"}));
    assert_row(&t[1]["after"], json!({"id": 2, "a": "two", "b": 2}));
    assert_row(&t[2]["after"], json!({"id": 3, "b": 3}));
    assert_row(&t[3]["after"], json!({"id": 2, "b": 20}));
    assert_eq!(columns(&t[3]["after"]), ["b", "id"]);
}

/// Streams one row as `user`, who is not a superuser: the test grants what a
/// CDC user needs (CREATE on the database for the publication, ownership of
/// the table) and the role has REPLICATION (see scripts/test-services.sh).
async fn streams_as(user: &str, password: &str) {
    let db = TestDb::create(user).await;
    db.execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, name text);
         ALTER TABLE t OWNER TO {user};
         GRANT CREATE ON DATABASE {} TO {user}",
        crate::harness::quote_ident(db.name())
    ))
    .await;
    let outflow = Outflow::new(&db, &["public.t"]).source_url(db.url_as(user, password, ""));
    outflow.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1, 'x')").await;

    let events = catch_up(&outflow).await;
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["c"]);
    assert_row(&t[0]["after"], json!({"id": 1, "name": "x"}));
}

#[tokio::test]
async fn scram_sha_256_login() {
    streams_as("outflow_scram", "scram-secret").await;
}

#[tokio::test]
async fn md5_login() {
    streams_as("outflow_md5", "md5-secret").await;
}

/// Runs outflow with `query` on its URL, checks that every connection it
/// holds to the database is encrypted, and that a row arrives through it.
async fn streams_over_tls(hint: &str, query: &str) {
    let db = TestDb::create(hint).await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]).source_url(db.url_with(query));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let running = outflow.spawn_run();
    db.wait_for_slot_streaming().await;

    let rows = db
        .query(&format!(
            "SELECT a.pid, a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname = '{}' AND a.pid <> pg_backend_pid()",
            db.name()
        ))
        .await;
    assert!(!rows.is_empty(), "outflow holds no connection to {}", db.name());
    for row in &rows {
        let (pid, kind, ssl): (i32, String, bool) = (row.get(0), row.get(1), row.get(2));
        assert!(ssl, "outflow's {kind} connection (pid {pid}) is not encrypted with {query}");
    }

    db.execute("INSERT INTO t VALUES (1)").await;
    wait_for(SHORT, "the row in the sink", || async { !changes(&outflow.events_so_far(), "t").is_empty() }).await;
    running.sigterm_and_wait().await.assert_success();
}

#[tokio::test]
async fn tls_sslmode_require() {
    streams_over_tls("tls_require", "sslmode=require").await;
}

#[tokio::test]
async fn tls_sslmode_verify_full_against_the_test_ca() {
    let query = format!("sslmode=verify-full&sslrootcert={}", pg_ca_path());
    streams_over_tls("tls_verify_full", &query).await;
}

#[tokio::test]
async fn a_200k_row_transaction_arrives_complete_and_in_order() {
    const ROWS: i64 = 200_000;
    let db = TestDb::create("big_tx").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text NOT NULL)").await;
    let outflow = start(&db, &["public.t"]).await;
    let tx =
        xid_of(db.client(), &format!("BEGIN; INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"))
            .await;
    db.execute("COMMIT").await;

    outflow.run_until_caught_up().await.assert_success();
    // Streamed check: 200k parsed envelopes would be hundreds of MB in memory.
    let mut next = 1i64;
    for_each_jsonl(&outflow.out_path(), |line, e| {
        if e["source"]["table"] != "t" || !matches!(e["op"].as_str(), Some("c" | "u" | "d" | "t" | "r")) {
            return;
        }
        assert_eq!(e["op"], "c", "line {line}: {e}");
        assert_eq!(e["after"]["id"], next, "line {line}: rows out of order or missing");
        assert_eq!(e["source"]["txId"], tx, "line {line}: wrong txId");
        next += 1;
    });
    assert_eq!(next - 1, ROWS, "rows delivered");
    // Free the slot's retained WAL now rather than at the end of the process.
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_mid_stream_loses_nothing_and_does_not_lock_out_the_next_run() {
    let db = TestDb::create("kill9").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = start(&db, &["public.t"]).await;
    let mut running = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    for id in 1..=50 {
        db.execute(&format!("INSERT INTO t VALUES ({id})")).await;
    }
    wait_for(SHORT, "some rows in the sink", || async { !changes(&outflow.events_so_far(), "t").is_empty() }).await;
    running.kill9().await;
    for id in 51..=100 {
        db.execute(&format!("INSERT INTO t VALUES ({id})")).await;
    }

    // The killed run's lock must not stop the next run; it may redeliver
    // (at-least-once) but must not lose or reorder anything.
    outflow.run_until_caught_up().await.assert_success();
    let ids: Vec<i64> = changes(&outflow.events(), "t")
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap_or_else(|| panic!("no after.id: {e}")))
        .collect();
    let mut first_seen = Vec::new();
    for id in &ids {
        if !first_seen.contains(id) {
            first_seen.push(*id);
        }
    }
    assert_eq!(first_seen, (1..=100).collect::<Vec<i64>>(), "delivered ids: {ids:?}");
}

#[tokio::test]
async fn status_reports_the_slot_and_the_sink_after_a_run() {
    let db = TestDb::create("status").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = start(&db, &["public.t"]).await;
    db.execute("INSERT INTO t VALUES (1), (2)").await;
    outflow.run_until_caught_up().await.assert_success();

    let status = outflow.status_json().await;
    let slot = &status["source"]["slot"];
    assert_eq!(slot["active"], false, "no run is active: {status:#}");
    assert!(slot["confirmed_flush_lsn"].is_string(), "{status:#}");
    assert!(slot["retained_wal_bytes"].is_u64(), "{status:#}");
    let sinks = status["sinks"].as_array().unwrap_or_else(|| panic!("no sinks list: {status:#}"));
    assert_eq!(sinks.len(), 1, "{status:#}");
    assert_eq!(sinks[0]["name"], "events");
    assert_eq!(sinks[0]["kind"], "jsonl");
    assert!(sinks[0]["position"].as_str().is_some_and(|p| p.starts_with("lsn:")), "{status:#}");
    assert!(sinks[0]["events"].as_u64().is_some_and(|n| n >= 2), "{status:#}");
}

/// Stored generated columns, as Debezium 3.6.3 gives them (debezium-ref on
/// this table: `r {id 1, a 10, b 20}`, `c {id 2, a 20}`, `u {id 1, a 11}`):
/// the snapshot reads them, pgoutput does not send them (PostgreSQL 18 only
/// with `publish_generated_columns`, which outflow's publication leaves off).
#[tokio::test]
async fn generated_columns_are_in_snapshot_rows_and_not_in_streamed_changes() {
    let db = TestDb::create("generated").await;
    db.execute("CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)").await;
    db.execute("INSERT INTO g (id, a) VALUES (1, 10)").await;
    let outflow = Outflow::new(&db, &["public.g"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO g (id, a) VALUES (2, 20)").await;
    db.execute("UPDATE g SET a = 11 WHERE id = 1").await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    let got: Vec<(&str, &Value)> =
        changes(&events, "g").iter().map(|e| (e["op"].as_str().unwrap(), &e["after"])).collect();
    let (r, c, u) = (json!({"id": 1, "a": 10, "b": 20}), json!({"id": 2, "a": 20}), json!({"id": 1, "a": 11}));
    assert_eq!(got, [("r", &r), ("c", &c), ("u", &u)]);
    db.cleanup().await;
}
