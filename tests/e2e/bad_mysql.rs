//! Bad input, part 5: MariaDB. Bytes in a latin1 column that are not valid
//! UTF-8 (every byte is a valid latin1 character) must arrive as the same
//! Unicode text the server itself converts them to, in snapshots and in the
//! stream, for every latin1 collation. A captured table dropped mid-run:
//! the other tables keep streaming.

use mysql_async::prelude::Queryable;

use crate::harness::{changes, ops, wait_for, SHORT};
use crate::mysql_harness::{MyDb, MyOutflow};

/// Every byte from 0x80 to 0xFF, then some ASCII: no valid UTF-8 sequence.
fn high_bytes() -> String {
    let hex: String = (0x80u8..=0xff).map(|b| format!("{b:02x}")).collect();
    format!("{hex}2d6f6b")
}

#[tokio::test]
async fn mysql_latin1_bytes_that_are_not_utf8_arrive_as_the_servers_unicode_text() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "latin1").await;
    let columns = [
        ("sw", "VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
        ("bn", "VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_bin"),
        ("ge", "VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_general_cs"),
        ("np", "VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_swedish_nopad_ci"),
        ("nb", "VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_nopad_bin"),
        ("ch", "CHAR(200) CHARACTER SET latin1"),
        ("tx", "TEXT CHARACTER SET latin1"),
    ];
    let defs: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    db.exec(&format!("CREATE TABLE t (id INT PRIMARY KEY, {})", defs.join(", "))).await;
    let value = format!("x'{}'", high_bytes());
    let values = vec![value.as_str(); columns.len()].join(", ");
    // Row 1 is read by the snapshot, row 2 streamed, then row 1 updated.
    db.exec(&format!("INSERT INTO t VALUES (1, {values})")).await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    db.exec(&format!("INSERT INTO t VALUES (2, {values})")).await;
    db.exec("UPDATE t SET sw = CONCAT(sw, x'e9') WHERE id = 1").await;
    of.run_until_caught_up().await.assert_success();

    // The oracle: the server's own conversion of the same bytes.
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("CONVERT({n} USING utf8mb4)")).collect();
    let sql = format!("SELECT id, {} FROM t ORDER BY id", names.join(", "));
    let rows: Vec<mysql_async::Row> = db.conn.query(sql).await.unwrap();
    let expected = |id: i64, col: usize| -> String {
        let row = rows.iter().find(|r| r.get::<i64, _>(0) == Some(id)).unwrap();
        row.get::<String, _>(col + 1).unwrap()
    };
    assert!(expected(2, 0).contains('€') && expected(2, 0).contains('ÿ'), "{}", expected(2, 0));

    let events = of.events();
    let t = changes(&events, "t");
    assert_eq!(ops(&t), ["r", "c", "u"]);
    for (i, (name, _)) in columns.iter().enumerate() {
        let snapshot = t[0]["after"][name].as_str().unwrap_or_else(|| panic!("{name}: {}", t[0]));
        let streamed = t[1]["after"][name].as_str().unwrap();
        let updated = t[2]["after"][name].as_str().unwrap();
        let before = t[2]["before"][name].as_str().unwrap();
        assert_eq!(streamed, expected(2, i), "{name} (streamed)");
        assert_eq!(updated, expected(1, i), "{name} (after the update)");
        assert_eq!(before, snapshot, "{name}: the update's before image");
        assert_eq!(snapshot, expected(2, i), "{name} (snapshot)");
    }
}

#[tokio::test]
async fn mysql_table_dropped_while_captured_the_others_keep_streaming() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dropped").await;
    db.exec("CREATE TABLE keep (id INT PRIMARY KEY)").await;
    db.exec("CREATE TABLE gone (id INT PRIMARY KEY)").await;
    let of = MyOutflow::new(&db);
    of.run_until_caught_up().await.assert_success();
    let run = of.spawn_run();
    db.exec("INSERT INTO keep VALUES (1)").await;
    db.exec("INSERT INTO gone VALUES (1)").await;
    wait_for(SHORT, "both rows", || async {
        let e = of.events();
        changes(&e, "keep").len() == 1 && changes(&e, "gone").len() == 1
    })
    .await;
    db.exec("DROP TABLE gone").await;
    db.exec("INSERT INTO keep VALUES (2)").await;
    wait_for(SHORT, "the row after the drop", || async { changes(&of.events(), "keep").len() == 2 }).await;
    of.sigterm(run).await;
    // The tables are a pattern (`db.*`): the next run simply captures one table.
    db.exec("INSERT INTO keep VALUES (3)").await;
    of.run_until_caught_up().await.assert_success();
    let ids: Vec<_> = changes(&of.events(), "keep").iter().map(|e| e["after"]["id"].clone()).collect();
    assert_eq!(ids, [1, 2, 3]);
}
