//! What the message sinks' tests write and check, the same for every sink:
//! from PostgreSQL the change lifecycle of the "in order per key" tests (ten
//! inserts, an update of each even id, a key change (3 → 100) and deletes of
//! the multiples of five); from MariaDB the tables, the outflow setup and
//! the three changes of the binlog tests.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::harness::{Outflow, TestDb};
use crate::mysql_harness::{server_id, MyDb};

/// Changes [`write_lifecycle`] makes: 10 creates, 5 updates, the key
/// change, 3 deletes (5, 10 and 100).
pub const LIFECYCLE_CHANGES: usize = 10 + 5 + 1 + 3;

/// Writes the lifecycle into `items (id int PRIMARY KEY, tag text, qty int)`.
pub async fn write_lifecycle(db: &TestDb) {
    db.execute("INSERT INTO items SELECT g, 'tag' || g, g FROM generate_series(1, 10) g").await;
    db.execute("UPDATE items SET qty = qty + 100 WHERE id % 2 = 0").await;
    db.execute("UPDATE items SET id = 100, tag = 'moved' WHERE id = 3").await;
    db.execute("DELETE FROM items WHERE id % 5 = 0").await;
}

/// The Debezium envelopes a sink delivered, in delivery order, are the
/// lifecycle: each key's operations in order with their rows (the key
/// change is one update under the new key carrying the old one).
pub fn assert_lifecycle(envelopes: &[&Value]) {
    assert_eq!(envelopes.len(), LIFECYCLE_CHANGES, "envelopes: {envelopes:#?}");
    let mut per_key: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for e in envelopes {
        let row = if e["op"] == "d" { &e["before"] } else { &e["after"] };
        per_key.entry(row["id"].as_i64().expect("rows have an integer id")).or_default().push(e);
    }
    for (id, es) in &per_key {
        let ops: Vec<&str> = es.iter().map(|e| e["op"].as_str().unwrap_or_default()).collect();
        let want: Vec<&str> = match id {
            3 => vec!["c"],
            100 => vec!["u", "d"],
            id => match (id % 2 == 0, id % 5 == 0) {
                (true, true) => vec!["c", "u", "d"],
                (true, false) => vec!["c", "u"],
                (false, true) => vec!["c", "d"],
                (false, false) => vec!["c"],
            },
        };
        assert_eq!(ops, want, "key {id}");
    }
    assert_eq!(per_key[&1][0]["after"], json!({"id": 1, "tag": "tag1", "qty": 1}));
    assert_eq!(per_key[&2][1]["after"], json!({"id": 2, "tag": "tag2", "qty": 102}));
    let moved = per_key[&100][0];
    assert_eq!(moved["before"]["id"], 3, "the key change carries the old key: {moved}");
    assert_eq!(moved["after"], json!({"id": 100, "tag": "moved", "qty": 3}));
    assert_eq!(per_key[&5][1]["before"]["id"], 5);
    assert_eq!(per_key[&5][1]["after"], Value::Null);
}

/// Creates `items (id, tag)` and `t (id, payload)` in MariaDB `db` and
/// returns an outflow named `name` reading both into `sink` (a `[[sink]]`
/// block of TOML).
pub async fn mariadb_outflow(db: &mut MyDb, name: &str, sink: &str) -> Outflow {
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, tag VARCHAR(20) NOT NULL)").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, payload VARCHAR(300))").await;
    let (url, id, db_name) = (db.url(), server_id(), &db.name);
    Outflow::raw(|dir| {
        format!(
            "name = {name:?}\n[source]\nkind = \"mysql\"\nurl = {url:?}\ntables = [\"{db_name}.items\", \"{db_name}.t\"]\n\
             server_id = {id}\n[state]\ndir = {:?}\n{sink}",
            dir.join("state"),
        )
    })
}

/// Three creates in `items`, an update of id 2 (`two` → `TWO`) and the
/// delete of id 3, each its own transaction.
pub async fn write_mariadb_items(db: &mut MyDb) {
    db.exec("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')").await;
    db.exec("UPDATE items SET tag = 'TWO' WHERE id = 2").await;
    db.exec("DELETE FROM items WHERE id = 3").await;
}
