//! Fan-out to several sinks: a sink that stops taking events (a JSONL sink
//! writing into a FIFO nobody reads) is detached after a short grace period,
//! the other sink goes on receiving changes, the slot's `confirmed_flush_lsn`
//! stays at the stopped sink's position, `status` names it as the one
//! holding the slot back; once the FIFO is read again the sink re-attaches
//! and both sinks hold every change exactly once.

use std::path::Path;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::durability::{assert_exactly_once_in_order, created_ids};
use crate::harness::{wait_for, write_rows, Outflow, TestDb, SHORT};

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// `lsn:0/16B3748[:n]` → `0/16B3748`.
fn lsn_of(position: &Value) -> String {
    let p = position.as_str().unwrap_or_else(|| panic!("a position, got {position}"));
    p.strip_prefix("lsn:").and_then(|r| r.split(':').next()).unwrap_or_else(|| panic!("not a pg position: {p}")).into()
}

async fn confirmed_flush_lsn(db: &TestDb) -> String {
    let rows = db
        .query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", db.name()))
        .await;
    rows.first().map(|r| r.get::<_, String>(0)).unwrap_or_default()
}

async fn lsn_le(db: &TestDb, a: &str, b: &str) -> bool {
    db.query(&format!("SELECT '{a}'::pg_lsn <= '{b}'::pg_lsn")).await[0].get(0)
}

fn sink<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no sink {name} in {status}"))
}

#[tokio::test]
async fn fanout_a_stopped_sink_holds_back_only_the_slot_and_catches_up_when_released() {
    let db = TestDb::create("fanout_stuck").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("pipe");
    mkfifo(&fifo);
    // Opened for reading (so the sink can open it) but not read: once the
    // pipe is full, the sink is stuck in a write.
    let mut reader = tokio::net::unix::pipe::OpenOptions::new().open_receiver(&fifo).expect("opening the fifo");
    let outflow = Outflow::new(&db, &["public.t"])
        .section("[snapshot]\nmode = \"never\"")
        .section(&format!("[[sink]]\nname = \"pipe\"\nkind = \"jsonl\"\npath = {:?}", fifo.to_str().unwrap()));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    // Small transactions until the pipe sink's queue is full and it is detached.
    let mut written = 0;
    let deadline = std::time::Instant::now() + SHORT;
    while !run.stderr().contains("detached") {
        assert!(std::time::Instant::now() < deadline, "the pipe sink was never detached: {}", run.stderr());
        write_rows(&db, written + 1, 20).await;
        written += 20;
    }
    assert!(run.stderr().contains("sink \"pipe\""), "{}", run.stderr());

    // The other sink goes on.
    write_rows(&db, written + 1, 500).await;
    written += 500;
    wait_for(SHORT, "the events sink to receive every row", || {
        let n = created_ids(&outflow.events_so_far()).len() as i64;
        async move { n == written }
    })
    .await;
    wait_for(SHORT, "the events sink to commit past the pipe sink", || async {
        let status = outflow.status_json().await;
        let (events, pipe) = (sink(&status, "events"), sink(&status, "pipe"));
        !events["position"].is_null() && events["position"] != pipe["position"] && events["events"] == written
    })
    .await;
    let status = outflow.status_json().await;
    assert_eq!(status["held_back_by"]["sink"], "pipe", "{status}");
    assert_eq!(status["held_back_by"]["detached"], true, "{status}");
    assert_eq!(sink(&status, "pipe")["detached"], true, "{status}");
    assert_eq!(sink(&status, "events")["detached"], false, "{status}");
    let (pipe_lsn, events_lsn) =
        (lsn_of(&sink(&status, "pipe")["position"]), lsn_of(&sink(&status, "events")["position"]));
    assert!(lsn_le(&db, &pipe_lsn, &events_lsn).await && pipe_lsn != events_lsn, "{status}");
    // The slot is at the stopped sink's position, not the other's, and stays there.
    let held = confirmed_flush_lsn(&db).await;
    assert!(lsn_le(&db, &held, &pipe_lsn).await, "slot at {held}, stopped sink at {pipe_lsn}");
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(confirmed_flush_lsn(&db).await, held, "the slot moved past the stopped sink");
    }
    let human = outflow.exec(&["status", "-c", &outflow.config_path().to_string_lossy()]).await;
    human.assert_success();
    assert!(human.stdout.contains("held back by sink pipe"), "{}", human.stdout);

    // Reading the pipe releases the sink: it re-attaches and catches up.
    let drained = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes).await;
        bytes
    });
    wait_for(SHORT, "the pipe sink to re-attach", || {
        let stderr = run.stderr();
        async move { stderr.contains("re-attached") }
    })
    .await;
    write_rows(&db, written + 1, 100).await;
    written += 100;
    let last = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    wait_for(SHORT, "the slot to pass the last insert", || async {
        lsn_le(&db, &last, &confirmed_flush_lsn(&db).await).await
    })
    .await;
    assert!(outflow.status_json().await["held_back_by"]["detached"] == false);
    run.sigterm_and_wait().await.assert_success();

    let piped = drained.await.unwrap();
    let piped: Vec<Value> = String::from_utf8(piped)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("pipe line not JSON ({e}): {l}")))
        .collect();
    assert_exactly_once_in_order(&created_ids(&piped), written);
    assert_exactly_once_in_order(&created_ids(&outflow.events()), written);
    db.cleanup().await;
}
