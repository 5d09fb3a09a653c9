//! Debezium's consumers read outflow's records unchanged: the records are
//! compared with golden files the real Debezium 3.6.3 produced
//! (`tests/golden/README.md` says how). Scenarios: an update that changes
//! the primary key, from PostgreSQL and from MariaDB, on the Kafka sink (a
//! delete under the old key with `__debezium.newkey`, a tombstone, a create
//! under the new key with `__debezium.oldkey`) and in the JSONL sink's
//! Debezium format (the delete and the create).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::{changes, read_jsonl, Outflow, TestDb};
use crate::kafka::{brokers, records, unique_name};
use crate::mysql_harness::{MyDb, MyOutflow};

/// A golden file: `{"key", "value": {"op", "before", "after"} | null}` lines.
fn golden(name: &str) -> Vec<Value> {
    read_jsonl(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name))
}

/// The golden input's statements: `(setup, changes)`, split at the first
/// statement that is not a CREATE.
fn golden_sql(name: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name))
        .expect("golden SQL");
    let statements: Vec<String> =
        text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    let split = statements.iter().position(|s| !s.starts_with("CREATE")).unwrap_or(statements.len());
    (statements[..split].to_vec(), statements[split..].to_vec())
}

/// A record value reduced to what the golden files hold.
fn reduced(value: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    json!({"op": value["op"], "before": value["before"], "after": value["after"]})
}

/// Kafka records as golden lines.
fn kafka_lines(records: &[Value]) -> Vec<Value> {
    records.iter().map(|r| json!({"key": r["key"], "value": reduced(&r["value"])})).collect()
}

/// The key change's headers: the delete names the new key, the create the old.
fn assert_key_change_headers(records: &[Value]) {
    let delete = records.iter().find(|r| r["value"]["op"] == "d").expect("a delete record");
    let create = records.iter().filter(|r| r["value"]["op"] == "c").nth(1).expect("the key change's create");
    let parse = |h: &Value| serde_json::from_str::<Value>(h.as_str().unwrap_or("null")).unwrap_or(Value::Null);
    assert_eq!(parse(&delete["headers"]["__debezium.newkey"]), json!({"id": 2}), "{delete}");
    assert_eq!(parse(&create["headers"]["__debezium.oldkey"]), json!({"id": 1}), "{create}");
    assert_eq!(delete["headers"]["outflow.position"], create["headers"]["outflow.position"]);
}

/// The JSONL sink holds the golden lines' values, without the tombstones.
fn assert_jsonl_matches(events: &[&Value], golden: &[Value]) {
    let want: Vec<Value> = golden.iter().map(|l| l["value"].clone()).filter(|v| !v.is_null()).collect();
    let got: Vec<Value> = events.iter().map(|e| reduced(e)).collect();
    assert_eq!(got, want, "the JSONL sink's Debezium records");
}

#[tokio::test]
async fn a_postgres_key_change_is_a_delete_a_tombstone_and_a_create_as_debezium_emits_it() {
    let db = TestDb::create("dbz_key_change").await;
    let (setup, writes) = golden_sql("key_change.pg.sql");
    for s in &setup {
        db.execute(s).await;
    }
    let name = unique_name("keychange");
    let kafka = format!("[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 1\n", brokers());
    let outflow = Outflow::new(&db, &["public.items"]).name(&name).section(&kafka);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    for s in &writes {
        db.execute(s).await;
    }
    outflow.run_until_caught_up().await.assert_success();

    let golden = golden("key_change.pg.jsonl");
    let kafka = records(&format!("{name}.public.items"));
    assert_eq!(kafka_lines(&kafka), golden, "records: {kafka:#?}");
    assert_key_change_headers(&kafka);
    let events = outflow.events();
    assert_jsonl_matches(&changes(&events, "items"), &golden);
    db.cleanup().await;
}

#[tokio::test]
async fn a_mariadb_key_change_is_a_delete_a_tombstone_and_a_create_as_debezium_emits_it() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dbz_key_change").await;
    let (setup, writes) = golden_sql("key_change.mariadb.sql");
    for s in &setup {
        db.exec(s).await;
    }
    let topic = unique_name("keychange");
    let outflow = MyOutflow::new(&db).section(&format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 1\ntopic = \"{topic}.{{schema}}.{{table}}\"\n",
        brokers()
    ));
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    for s in &writes {
        db.exec(s).await;
    }
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();

    // Debezium's golden run has no snapshot rows (the table was empty).
    let golden = golden("key_change.mariadb.jsonl");
    let kafka = records(&format!("{topic}.{}.items", db.name));
    assert_eq!(kafka_lines(&kafka), golden, "records: {kafka:#?}");
    assert_key_change_headers(&kafka);
    let events = read_jsonl(&outflow.out_path());
    assert_jsonl_matches(&changes(&events, "items"), &golden);
}
