//! `[sink.debezium] include.schema.changes`: the schema change topic. The
//! MariaDB records are compared with what Debezium 3.6.3 wrote for the same
//! statements (`tests/golden/schema_change.mariadb.*`), apart from the
//! deliberate differences `tests/golden/README.md` lists; PostgreSQL, which
//! Debezium writes no such records for, gets the same record of its shapes.
//! A restart must not repeat a shape already written.

use serde_json::{json, Value};

use super::golden;
use crate::harness::{kill_9_during, Outflow, TestDb};
use crate::kafka::{brokers, records, unique_name};
use crate::mysql_harness::{MyDb, MyOutflow};

fn kafka_section(extra: &str) -> String {
    format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 1\n[sink.debezium]\n\"include.schema.changes\" = \"true\"\n{extra}",
        brokers()
    )
}

/// A schema change record without what cannot agree between two servers
/// and two runs (times, binlog coordinates, versions) and without what the
/// binlog does not tell (character sets, defaults, auto-increment, display
/// widths and character lengths: docs/src/debezium.md, `include.schema.changes`).
fn comparable(record: &Value) -> Value {
    let mut r = json!({"key": record["key"], "value": record["value"].clone()});
    let value = &mut r["value"];
    value["ts_ms"] = Value::Null;
    let source = &mut value["source"];
    for field in ["version", "name", "ts_ms", "ts_us", "ts_ns", "server_id", "gtid", "file", "pos", "db"] {
        source[field] = Value::Null;
    }
    value["databaseName"] = Value::Null;
    for change in value["tableChanges"].as_array_mut().into_iter().flatten() {
        let table = &mut change["table"];
        table["defaultCharsetName"] = Value::Null;
        for col in table["columns"].as_array_mut().into_iter().flatten() {
            col["charsetName"] = Value::Null;
            col["defaultValueExpression"] = Value::Null;
            col["autoIncremented"] = json!(false);
            col["generated"] = json!(false);
            let ty = col["typeName"].as_str().unwrap_or_default().to_string();
            let width_free =
                ["INT", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT", "YEAR", "ENUM", "SET", "CHAR", "VARCHAR"];
            if width_free.contains(&ty.split(' ').next().unwrap_or_default()) {
                col["length"] = Value::Null;
            }
        }
        change["id"] = json!(change["id"].as_str().unwrap_or_default().split('.').nth(1));
    }
    r["key"] = Value::Null;
    r
}

#[tokio::test]
async fn mariadb_schema_changes_match_debezium_and_a_restart_repeats_none() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dbz_schema_change").await;
    let text = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/schema_change.mariadb.sql"),
    )
    .unwrap();
    let (setup, writes) = text.split_once("-- changes").expect("the golden SQL's changes marker");
    let statements = |s: &str| -> Vec<String> {
        s.split(";\n").map(str::trim).filter(|s| !s.is_empty()).map(|s| s.trim_end_matches(';').to_string()).collect()
    };
    for s in statements(setup) {
        db.exec(&s).await;
    }
    let name = unique_name("schemachange");
    let mut outflow = MyOutflow::new(&db).section(&kafka_section(""));
    outflow.name = Some(name.clone());
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    for s in statements(writes) {
        db.exec(&s).await;
    }
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();

    let got = records(&name);
    assert_eq!(got.len(), 3, "orders' first shape, its ALTER and other's CREATE: {got:#?}");
    for r in &got {
        assert_eq!(r["key"], json!({"databaseName": db.name}), "{r}");
        assert_eq!(r["value"]["databaseName"], db.name.as_str(), "{r}");
        assert_eq!(r["value"]["source"]["db"], db.name.as_str(), "{r}");
    }
    // The shape met first: no statement behind it in this run's binlog.
    let first = &got[0]["value"];
    assert_eq!(first["ddl"], Value::Null, "{first}");
    assert_eq!(first["tableChanges"][0]["type"], "CREATE", "{first}");
    let names: Vec<&str> = first["tableChanges"][0]["table"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["id", "note", "amount"]);

    let golden = golden("schema_change.mariadb.jsonl");
    assert_eq!(golden.len(), 2);
    for (ours, theirs) in got[1..].iter().zip(&golden) {
        assert_eq!(comparable(ours), comparable(theirs), "\nours:   {ours}\ngolden: {theirs}");
    }
    // The ALTER's source block is the statement's: before the next insert's.
    let orders = records(&format!("{name}.{}.orders", db.name));
    let pos = |v: &Value| v["source"]["pos"].as_u64().unwrap_or_else(|| panic!("a binlog pos: {v}"));
    assert!(pos(&got[1]["value"]) < pos(&orders[1]["value"]), "{:#?}", (&got[1], &orders[1]));

    // A restart re-reads each table's shape: the same shape is not repeated.
    db.exec("INSERT INTO orders VALUES (3, 'c', 3.50, 8, NULL)").await;
    db.exec("INSERT INTO other VALUES (2, 'y''z', NULL, NULL, NULL, NULL)").await;
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    assert_eq!(records(&name).len(), 3, "{:#?}", records(&name));
    assert_eq!(records(&format!("{name}.{}.orders", db.name)).len(), 3);
}

#[tokio::test]
async fn postgres_shapes_go_to_the_schema_change_topic_with_their_schemas() {
    let db = TestDb::create("dbz_schema_change").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag varchar(10) NOT NULL)").await;
    let name = unique_name("pgschemachange");
    let outflow = Outflow::new(&db, &["public.items"])
        .name(&name)
        .section(&kafka_section("\"value.converter.schemas.enable\" = \"true\"\n"));
    outflow.run_until_caught_up().await.assert_success();
    // As in the other Kafka tests: the previous run's walsender has let the
    // slot go before the next changes and run.
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO items VALUES (1, 'a')").await;
    db.execute("ALTER TABLE items ADD COLUMN price numeric(8,3)").await;
    db.execute("INSERT INTO items VALUES (2, 'b', 1.5)").await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO items VALUES (3, 'c', 2.5)").await;
    outflow.run_until_caught_up().await.assert_success();

    let got = records(&name);
    assert_eq!(got.len(), 2, "the first shape and the ALTER, once each: {got:#?}");
    for r in &got {
        assert_eq!(r["key"], json!({"databaseName": db.name()}), "{r}");
        let schema = &r["value"]["schema"];
        assert_eq!(schema["name"], "io.debezium.connector.postgresql.SchemaChangeValue", "{schema}");
        let payload = &r["value"]["payload"];
        assert_eq!(payload["schemaName"], "public");
        assert_eq!(payload["ddl"], Value::Null);
        assert_eq!(payload["source"]["connector"], "postgresql");
        assert_eq!(payload["tableChanges"][0]["id"], "\"public\".\"items\"");
        assert_eq!(payload["tableChanges"][0]["table"]["primaryKeyColumnNames"], json!(["id"]));
    }
    let kinds: Vec<&Value> = got.iter().map(|r| &r["value"]["payload"]["tableChanges"][0]["type"]).collect();
    assert_eq!(kinds, [&json!("CREATE"), &json!("ALTER")]);
    let columns = &got[1]["value"]["payload"]["tableChanges"][0]["table"]["columns"];
    let column = |i: usize, f: &str| columns[i][f].clone();
    assert_eq!(column(1, "typeName"), "varchar");
    assert_eq!(
        (column(1, "jdbcType"), column(1, "length"), column(1, "optional")),
        (json!(12), json!(10), json!(false))
    );
    assert_eq!(column(2, "name"), "price");
    assert_eq!((column(2, "jdbcType"), column(2, "length"), column(2, "scale")), (json!(2), json!(8), json!(3)));
    assert_eq!((column(2, "position"), column(2, "optional")), (json!(3), json!(true)));
    assert_eq!(records(&format!("{name}.public.items")).len(), 3);
    db.cleanup().await;
}

/// kill -9 while tables change shape under a busy writer, three rounds, then
/// a clean run: every shape is in the schema change topic exactly once, in
/// order (one more column each time).
#[tokio::test]
async fn kill_9_while_shapes_change_leaves_each_shape_once() {
    let db = TestDb::create("dbz_schema_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY)").await;
    let name = unique_name("schemakill9");
    let outflow = Outflow::new(&db, &["public.t"]).name(&name).section(&kafka_section(""));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    // Each round: 15 times 40 inserts then an ALTER adding a column, then
    // one more insert (601 rows and 15 shapes a round).
    let (rounds, alters_per_round, rows_per_round) = (3, 15, 601);
    kill_9_during(&db, &outflow, rounds, 200..1500, |round| {
        let db = &db;
        async move {
            let mut id = round * rows_per_round;
            for a in 1..=alters_per_round {
                for _ in 0..40 {
                    id += 1;
                    db.execute(&format!("INSERT INTO t (id) VALUES ({id})")).await;
                }
                db.execute(&format!("ALTER TABLE t ADD COLUMN c{} int", round * alters_per_round + a)).await;
            }
            db.execute(&format!("INSERT INTO t (id) VALUES ({})", id + 1)).await;
        }
    })
    .await;
    outflow.run_until_caught_up().await.assert_success();
    let (alters, id) = (rounds * alters_per_round, rounds * rows_per_round);

    let got = records(&name);
    let widths: Vec<usize> =
        got.iter().map(|r| r["value"]["tableChanges"][0]["table"]["columns"].as_array().map_or(0, Vec::len)).collect();
    let want: Vec<usize> = (1..=alters as usize + 1).collect();
    assert_eq!(widths, want, "one record per shape, in order");
    assert_eq!(records(&format!("{name}.public.t")).len() as i64, id);
    db.cleanup().await;
}
