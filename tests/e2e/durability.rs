//! Crashes and idleness: a kill -9 at a random moment or at each named step
//! of the durable path loses and duplicates nothing; quiet tables do not pin
//! WAL; `tail` leaves no slot behind.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{changes, kill_9_while_writing, wait_for, write_rows, Outflow, TestDb, SHORT};

/// Ids of the `c` events for table `t`, in file order.
pub(crate) fn created_ids(events: &[Value]) -> Vec<i64> {
    changes(events, "t")
        .iter()
        .filter(|e| e["op"] == "c")
        .map(|e| e["after"]["id"].as_i64().expect("integer id"))
        .collect()
}

/// Every id in `1..=n` exactly once, in commit (= id) order.
#[track_caller]
pub(crate) fn assert_exactly_once_in_order(ids: &[i64], n: i64) {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?}", &dups[..dups.len().min(20)]);
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order");
    assert_eq!(ids.len() as i64, n);
}

async fn setup(name: &str) -> (TestDb, Outflow) {
    let db = TestDb::create(name).await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    (db, outflow)
}

#[tokio::test]
async fn kill_9_during_a_busy_run_loses_and_duplicates_nothing() {
    let (db, outflow) = setup("kill9").await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 50..800).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), written);
    db.cleanup().await;
}

#[tokio::test]
async fn a_crash_at_each_step_of_the_durable_path_loses_and_duplicates_nothing() {
    let (db, outflow) = setup("failpoints").await;
    let mut written = 0;
    for point in ["sink.after_write", "sink.after_flush", "sink.after_offset"] {
        write_rows(&db, written + 1, 500).await;
        written += 500;
        // The first pass through the point aborts the process.
        let out = outflow.with_env("OUTFLOW_FAILPOINTS", &format!("{point}=1")).run_until_caught_up().await;
        assert_eq!(out.code, None, "{point}: expected an abort; stderr:\n{}", out.stderr);
        assert!(out.stderr.contains(&format!("failpoint {point} reached")), "{}", out.stderr);
        db.wait_for_slot_idle().await;
    }
    outflow.with_env("OUTFLOW_FAILPOINTS", "").run_until_caught_up().await.assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), written);
    db.cleanup().await;
}

#[tokio::test]
async fn quiet_tables_do_not_pin_wal() {
    let (db, outflow) = setup("idle_wal").await;
    db.execute("CREATE TABLE elsewhere (id int)").await;
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    // WAL written outside the captured table.
    db.execute("INSERT INTO elsewhere SELECT generate_series(1, 10000)").await;
    let target: i64 = db.query("SELECT (pg_current_wal_lsn() - '0/0')::bigint").await[0].get(0);
    let slot = db.name().to_string();
    wait_for(SHORT, "confirmed_flush_lsn to pass the idle WAL", || {
        let slot = slot.clone();
        let db = &db;
        async move {
            let rows = db
                .query(&format!(
                    "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = '{slot}'"
                ))
                .await;
            rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) >= target
        }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(created_ids(&outflow.events()).is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn tail_prints_changes_and_leaves_no_slot_behind() {
    let (db, outflow) = setup("tail").await;
    let tail = outflow.spawn_command(&["tail", "-c", &outflow.config_path().to_string_lossy()]);
    wait_for(SHORT, "tail's temporary slot to stream", || async { tail_slots(&db, true).await == 1 }).await;
    db.execute("INSERT INTO t VALUES (42, 'seen by tail')").await;
    wait_for(SHORT, "tail to print the insert", || {
        let out = tail.stdout();
        async move { out.contains("\"seen by tail\"") }
    })
    .await;
    let out = tail.sigterm_and_wait().await;
    out.assert_success();
    let printed: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("tail prints JSON lines")).collect();
    assert_eq!(created_ids(&printed), vec![42]);
    // The server drops a temporary slot when its walsender exits, just after tail.
    wait_for(SHORT, "tail's temporary slot to disappear", || async { tail_slots(&db, false).await == 0 }).await;
    // tail stores no offsets: the regular pipeline still delivers the insert.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(created_ids(&outflow.events()), vec![42]);
    db.cleanup().await;
}

/// How many of `tail`'s temporary slots this database has (only those
/// streaming if asked). A slot is active while it is still being created —
/// waiting for the server's running transactions, which under load can end
/// after an insert the test makes — so "streaming" means its walsender has
/// started replication, past the slot's consistent point.
async fn tail_slots(db: &TestDb, streaming_only: bool) -> i64 {
    let filter = if streaming_only {
        " AND active_pid IN (SELECT pid FROM pg_stat_replication WHERE state = 'streaming')"
    } else {
        ""
    };
    db.query(&format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'outflow_tail_%' \
         AND database = current_database(){filter}"
    ))
    .await[0]
        .get(0)
}

#[tokio::test]
async fn a_lost_replication_connection_is_reestablished_without_loss_or_duplicates() {
    let (db, outflow) = setup("reconnect").await;
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    write_rows(&db, 1, 100).await;
    wait_for(SHORT, "the first rows", || async { created_ids(&outflow.events_so_far()).len() == 100 }).await;
    // The server ends the walsender, as on a restart or a network cut.
    let slot = db.name().to_string();
    db.execute(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
    ))
    .await;
    write_rows(&db, 101, 100).await;
    wait_for(SHORT, "the rows written after the cut", || async { created_ids(&outflow.events_so_far()).len() >= 200 })
        .await;
    assert!(run.is_running(), "outflow gave up instead of reconnecting: {}", run.stderr());
    assert!(run.stderr().contains("reconnecting"), "{}", run.stderr());
    run.sigterm_and_wait().await.assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), 200);
    db.cleanup().await;
}
