//! `outflow offsets`: dry runs change nothing, moves are refused while a run
//! holds the state directory or when the slot can no longer replay the
//! position, skipping ahead skips exactly what lies between, and a reset
//! starts the sink over with a snapshot.

use serde_json::Value;

use crate::harness::{changes, Outflow, TestDb};

fn ids(events: &[Value], op: &str) -> Vec<i64> {
    changes(events, "t").iter().filter(|e| e["op"] == op).map(|e| e["after"]["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn offsets_show_set_and_reset() {
    let db = TestDb::create("offsets").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    let config = outflow.config_path().to_string_lossy().into_owned();
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO t VALUES (1)").await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let offset_file = outflow.state_dir().join("sinks/events.json");
    let stored = std::fs::read(&offset_file).unwrap();

    let shown = outflow.exec(&["offsets", "-c", &config, "show"]).await;
    shown.assert_success();
    assert!(shown.stdout.contains("events") && shown.stdout.contains("lsn:"), "{}", shown.stdout);

    // Behind the slot's confirmed position: the server cannot replay it.
    let refused = outflow.exec(&["offsets", "-c", &config, "set", "--sink", "events", "--position", "lsn:0/1"]).await;
    assert!(refused.assert_clean_error().contains("cannot be replayed"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&offset_file).unwrap(), stored);

    // Skip ahead past row 2, with a dry run first.
    db.execute("INSERT INTO t VALUES (2)").await;
    let after_two: String = db.query("SELECT pg_current_wal_lsn()::text").await[0].get(0);
    let position = format!("lsn:{after_two}");
    let dry = outflow
        .exec(&["offsets", "-c", &config, "set", "--sink", "events", "--position", &position, "--dry-run"])
        .await;
    dry.assert_success();
    assert!(dry.stdout.contains("will be skipped") && dry.stdout.contains("dry run"), "{}", dry.stdout);
    assert_eq!(std::fs::read(&offset_file).unwrap(), stored, "a dry run writes nothing");

    // Refused while a run holds the state directory.
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let busy = outflow.exec(&["offsets", "-c", &config, "set", "--sink", "events", "--position", &position]).await;
    assert!(busy.assert_clean_error().contains("another outflow run"), "{}", busy.stderr);
    run.sigterm_and_wait().await.assert_success();
    db.wait_for_slot_idle().await;

    // The run above delivered row 2; skip ahead from a fresh point instead.
    db.execute("INSERT INTO t VALUES (3)").await;
    let after_three: String = db.query("SELECT pg_current_wal_lsn()::text").await[0].get(0);
    db.execute("INSERT INTO t VALUES (4)").await;
    let set = outflow
        .exec(&["offsets", "-c", &config, "set", "--sink", "events", "--position", &format!("lsn:{after_three}")])
        .await;
    set.assert_success();
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    assert_eq!(ids(&outflow.events(), "c"), vec![1, 2, 4], "row 3 was skipped, nothing else");

    // Reset: the sink starts over with a snapshot of the table.
    let dry = outflow.exec(&["offsets", "-c", &config, "reset", "--sink", "events", "--dry-run"]).await;
    dry.assert_success();
    assert!(offset_file.exists());
    outflow.exec(&["offsets", "-c", &config, "reset", "--sink", "events"]).await.assert_success();
    assert!(!offset_file.exists());
    outflow.run_until_caught_up().await.assert_success();
    let mut reads = ids(&outflow.events(), "r");
    reads.sort();
    assert_eq!(reads, vec![1, 2, 3, 4]);
    db.cleanup().await;
}
