//! Logical decoding on a hot standby (PostgreSQL 16+; skipped on older
//! servers): outflow's `url` is a standby of a primary of the test's own,
//! the publication is the primary's (made by the "DBA"), and outflow never
//! has the primary's address, so it cannot write there; the standby is
//! read-only, so a snapshot without watermarks (read-only windows) must
//! still be exactly right under a concurrent writer on the primary.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::harness::{changes, wait_for, Outflow, SHORT};
use crate::own_servers::OwnPg;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connecting");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// id → v after replaying `t`'s events.
fn replay(events: &[Value]) -> BTreeMap<i64, i64> {
    let mut rows = BTreeMap::new();
    for e in changes(events, "t") {
        match e["op"].as_str() {
            Some("r" | "c" | "u") => {
                rows.insert(e["after"]["id"].as_i64().unwrap(), e["after"]["v"].as_i64().unwrap());
            }
            Some("d") => {
                rows.remove(&e["before"]["id"].as_i64().unwrap());
            }
            other => panic!("unexpected op {other:?}"),
        }
    }
    rows
}

async fn table(client: &Client) -> BTreeMap<i64, i64> {
    let rows = client.query("SELECT id::bigint, v::bigint FROM t", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// A primary with `t` (ids 1..=rows, v = 0) in a publication the "DBA"
/// made, and a hot standby that has replayed it; None below PostgreSQL 16.
async fn pair(rows: i64) -> Option<(OwnPg, OwnPg, Client, Client)> {
    let primary = OwnPg::start();
    let p = connect(&primary.url()).await;
    let version: i32 = p.query_one("SELECT current_setting('server_version_num')::int", &[]).await.unwrap().get(0);
    if version < 160000 {
        eprintln!("skipped: logical decoding on a standby needs PostgreSQL 16+, this is {version}");
        return None;
    }
    p.batch_execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, {rows}) g;
         CREATE PUBLICATION outflow FOR TABLE t;"
    ))
    .await
    .unwrap();
    let standby = OwnPg::standby_of(&primary);
    let s = connect(&standby.url()).await;
    wait_for(SHORT, "the standby to replay the table", || async {
        s.query_one("SELECT count(*) FROM t", &[]).await.is_ok_and(|r| r.get::<_, i64>(0) == rows)
    })
    .await;
    Some((primary, standby, p, s))
}

/// outflow on the standby (nothing else: it never has the primary's address).
fn outflow_on(standby: &OwnPg, chunk_size: u64, parallelism: usize) -> Outflow {
    let url = standby.url();
    Outflow::raw(|dir| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = \"{url}\"\ntables = [\"public.t\"]\nslot = \"on_standby\"\n\
             [snapshot]\nchunk_size = {chunk_size}\nparallelism = {parallelism}\n[state]\ndir = \"{}/state\"\n\
             [[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = \"{}/out.jsonl\"\n",
            dir.display(),
            dir.display()
        )
    })
}

/// Slot creation on a standby waits for the primary's next standby
/// snapshot: what the user is told to run, run here by the "DBA".
async fn wait_for_slot(p: &Client, s: &Client) {
    wait_for(SHORT, "the slot on the standby", || async {
        let _ = p.batch_execute("SELECT pg_log_standby_snapshot()").await;
        let slot = s.query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'on_standby'", &[]).await;
        slot.is_ok_and(|r| r.is_some())
    })
    .await;
}

/// One writer transaction on the primary: an update, an insert, a delete.
async fn write(p: &Client, round: i64, rows: i64) {
    p.batch_execute(&format!(
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = {}; INSERT INTO t VALUES ({}, {round}); \
         DELETE FROM t WHERE id = {}; COMMIT;",
        (round * 37) % rows + 1,
        100_000 + round,
        (round * 53) % rows + 1
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_standby_streams_and_snapshots_under_a_writer_without_writing_anywhere() {
    let Some((_primary, standby, p, s)) = pair(3000).await else { return };
    let outflow = outflow_on(&standby, 100, 2);
    let run = outflow.spawn_run();
    wait_for_slot(&p, &s).await;
    // A writer on the primary while the snapshot runs: updates, inserts, deletes.
    for round in 0..200 {
        write(&p, round, 3000).await;
    }
    let expected = table(&p).await;
    let deadline = std::time::Instant::now() + SHORT;
    while replay(&outflow.events_so_far()) != expected {
        if std::time::Instant::now() > deadline {
            let got = replay(&outflow.events_so_far());
            let wrong: Vec<_> = expected.iter().filter(|(k, v)| got.get(k) != Some(v)).take(10).collect();
            let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(k)).take(10).collect();
            panic!(
                "the sink does not hold the primary's rows: {} vs {} rows; differing {wrong:?} (sink has {:?}); extra {extra:?}\n{}",
                got.len(),
                expected.len(),
                wrong.iter().map(|(k, _)| got.get(k)).collect::<Vec<_>>(),
                run.stderr()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    wait_for(SHORT, "status to show the snapshot done", || async {
        outflow.status_json().await["snapshot"][0]["status"] == "done"
    })
    .await;
    let status = outflow.status_json().await;
    assert!(status["source"]["server_lsn"].is_string(), "status on a standby: {status}");
    run.sigterm_and_wait().await.assert_success();

    let events = outflow.events();
    assert_eq!(replay(&events), expected);
    // The snapshot ran under the writer: changes streamed between its chunks.
    let ops: Vec<&str> = changes(&events, "t").iter().map(|e| e["op"].as_str().unwrap()).collect();
    let first_change = ops.iter().position(|op| *op != "r").unwrap();
    let last_read = ops.iter().rposition(|op| *op == "r").unwrap();
    assert!(first_change < last_read, "the writer's changes and the snapshot's chunks interleave");
    // Exactly once: every insert of the writer arrives once.
    let inserts = changes(&events, "t").into_iter().filter(|e| e["op"] == "c").count();
    assert_eq!(inserts, 200, "each streamed insert once");
    let in_recovery: bool = s.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get(0);
    assert!(in_recovery, "the standby is still a standby");
    let slots: i64 = s
        .query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'on_standby' AND NOT active", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 1, "the slot lives on the standby");
    let config = outflow.config_path();
    let check = outflow.exec(&["check", "-c", &config.to_string_lossy()]).await;
    check.assert_success();
    assert!(check.stdout.contains("✓ the standby's hot_standby_feedback = on"), "{}", check.stdout);
}

/// kill -9 in the middle of a standby's snapshot, under a writer, several
/// times: each run resumes the snapshot from what the sink made durable, and
/// the sink ends up holding exactly the primary's rows, every row read.
#[tokio::test]
async fn a_standby_snapshot_resumes_after_kill_9() {
    let Some((_primary, standby, p, s)) = pair(20_000).await else { return };
    let outflow = outflow_on(&standby, 20, 1);
    let mut round = 0;
    for kill in 0..3 {
        let mut run = outflow.spawn_run();
        if kill == 0 {
            wait_for_slot(&p, &s).await;
        }
        let before = changes(&outflow.events_so_far(), "t").len();
        for _ in 0..20 {
            write(&p, round, 20_000).await;
            round += 1;
        }
        let deadline = std::time::Instant::now() + SHORT;
        while changes(&outflow.events_so_far(), "t").len() < before + 60 {
            assert!(std::time::Instant::now() < deadline, "run {kill} made no progress:\n{}", run.stderr());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        run.kill9().await;
        if kill == 0 {
            let offset = std::fs::read_to_string(outflow.state_dir().join("sinks/events.json")).unwrap_or_default();
            let offset: Value = serde_json::from_str(&offset).unwrap_or_default();
            assert_ne!(offset["snapshot"]["public.t"]["done"], true, "killed after the snapshot: {offset}");
        }
    }
    for _ in 0..20 {
        write(&p, round, 20_000).await;
        round += 1;
    }
    let expected = table(&p).await;
    wait_for(SHORT, "the standby to replay the writes", || async { table(&s).await == expected }).await;
    outflow.run_until_caught_up().await.assert_success();
    let events = crate::events::read_complete_lines(&outflow.out_path());
    assert_eq!(replay(&events), expected, "after three kill -9 mid-snapshot");
    // Every row read at least once (on a standby a run after a kill -9 may
    // read some chunks again: see Known limits).
    let reads: std::collections::BTreeSet<i64> =
        changes(&events, "t").iter().filter(|e| e["op"] == "r").map(|e| e["after"]["id"].as_i64().unwrap()).collect();
    assert!((1..=20_000).all(|id| reads.contains(&id) || !expected.contains_key(&id)), "a row never read");
    let status = outflow.status_json().await;
    assert_eq!(status["snapshot"][0]["status"], "done", "{status}");
}
