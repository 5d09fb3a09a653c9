//! Partitioned tables: changes to any partition are reported under the
//! parent's name (the publication has `publish_via_partition_root`), and a
//! snapshot of the parent reads every partition's rows.

use crate::harness::{changes, Outflow, TestDb};

#[tokio::test]
async fn partitions_report_the_parent_table() {
    let db = TestDb::create("partitions").await;
    db.client()
        .batch_execute(
            "CREATE TABLE parent (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
             CREATE TABLE parent_eu PARTITION OF parent FOR VALUES IN ('eu');
             CREATE TABLE parent_us PARTITION OF parent FOR VALUES IN ('us');
             INSERT INTO parent VALUES (1, 'eu'), (2, 'us');",
        )
        .await
        .expect("setup");
    let outflow = Outflow::new(&db, &["public.parent"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO parent VALUES (3, 'eu'), (4, 'us')").await;
    db.execute("UPDATE parent SET id = 40 WHERE id = 4").await;
    outflow.run_until_caught_up().await.assert_success();

    let events = outflow.events();
    let parent = changes(&events, "parent");
    let ops: Vec<(String, i64)> = parent
        .iter()
        .map(|e| {
            let row = if e["after"].is_null() { &e["before"] } else { &e["after"] };
            (e["op"].as_str().unwrap().to_string(), row["id"].as_i64().unwrap())
        })
        .collect();
    // The snapshot reads both partitions' rows; then the streamed changes.
    let reads: Vec<i64> = ops.iter().filter(|(op, _)| op == "r").map(|(_, id)| *id).collect();
    assert_eq!(reads.len(), 2, "{ops:?}");
    let streamed: Vec<(String, i64)> = ops.into_iter().filter(|(op, _)| op != "r").collect();
    // The key change is a delete of 4 and a create of 40, as in Debezium.
    let want = [("c", 3), ("c", 4), ("d", 4), ("c", 40)].map(|(op, id)| (op.to_string(), id));
    assert_eq!(streamed, want);
    assert!(changes(&events, "parent_eu").is_empty() && changes(&events, "parent_us").is_empty());
    db.cleanup().await;
}
