//! A destination outage as the message-sink tests stage it (Kafka's broker,
//! a Redis server, frozen with SIGSTOP): while it is down the slot must not
//! advance, whatever the source writes.

use std::time::Duration;

use crate::harness::{wait_for, write_rows, TestDb, SHORT};

/// The slot's `confirmed_flush_lsn` (empty when the slot is missing).
pub async fn confirmed_flush_lsn(db: &TestDb) -> String {
    let rows = db
        .query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", db.name()))
        .await;
    rows.first().map(|r| r.get::<_, String>(0)).unwrap_or_default()
}

/// With `outflow run` streaming table `t`: writes rows 1-500 and waits until
/// the slot moved for them, calls `stop` (the destination goes down), lets
/// what was in flight settle, writes rows 501-2000 and checks for 20 s that
/// the slot stays where it was. The caller brings the destination back; 2000
/// rows are to arrive.
pub async fn slot_holds_while_down(db: &TestDb, stop: impl FnOnce()) {
    write_rows(db, 1, 500).await;
    let before = confirmed_flush_lsn(db).await;
    wait_for(SHORT, "the first rows to be acknowledged", || async { confirmed_flush_lsn(db).await != before }).await;
    stop();
    // Whatever was in flight settles within a commit interval; then nothing moves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = confirmed_flush_lsn(db).await;
    write_rows(db, 501, 1500).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(confirmed_flush_lsn(db).await, held, "the slot advanced while the destination was down");
    }
}
