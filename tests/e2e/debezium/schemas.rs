//! Records with schemas (`schemas = true`, `*.converter.schemas.enable`):
//! the JSON converter's `{"schema", "payload"}` form compared with what
//! Debezium 3.6.3 wrote with `schemas.enable=true` (`tests/golden/README.md`,
//! `*.schemas.json*`): the type corpora under the three golden mode sets and
//! after an ALTER TABLE, through the JSONL sink; keys, routed names, the
//! unwrap transform's flat value schema (also in a JSONL sink), logical
//! decoding messages and transaction records through Kafka.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{assert_rows, golden, golden_rows, golden_sql, MODES_A, MODES_B, PG_DELIBERATE};
use crate::harness::{read_jsonl, Outflow, TestDb};
use crate::kafka::{brokers, records, unique_name};
use crate::mysql_harness::{MyDb, MyOutflow};

/// `pg_types.schemas.json` / `mysql_types.schemas.json`: `key`, the envelope
/// per mode set (`default`, `modes_a`, `modes_b`), and `altered` (default
/// modes, after the ALTER TABLE below).
fn golden_schemas(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("golden JSON")
}

/// The schema change the golden runs made after the corpus rows (the same
/// statements were given to debezium-ref).
const PG_ALTER: &[&str] = &[
    "ALTER TABLE pg_types ADD COLUMN c_added int NOT NULL DEFAULT 7, ADD COLUMN c_added_num numeric(6,2)",
    "INSERT INTO pg_types (id, c_added, c_added_num) VALUES (100, 8, 1.25)",
    "DELETE FROM pg_types WHERE id = 100",
];
const MYSQL_ALTER: &[&str] = &[
    "ALTER TABLE types ADD COLUMN added INT NOT NULL DEFAULT 7, ADD COLUMN added_dec DECIMAL(6,2)",
    "INSERT INTO types (id, added, added_dec) VALUES (100, 8, 1.25)",
    "DELETE FROM types WHERE id = 100",
];

/// A known limit: the model carries no column defaults, so outflow's row
/// structs have no `"default"` (Debezium's: `c_added`/`added`, `DEFAULT 7`).
fn without_column_defaults(mut envelope: Value) -> Value {
    for row in 0..2 {
        for f in envelope["fields"][row]["fields"].as_array_mut().into_iter().flatten() {
            f.as_object_mut().map(|o| o.remove("default"));
        }
    }
    envelope
}

/// The known limit of the PostgreSQL corpus (`tests/golden/README.md`): a
/// domain over numeric(12,2) is an unconstrained decimal to outflow, so
/// under `precise` its schema is `VariableScaleDecimal` where Debezium's is
/// `Decimal` of scale 2. Returns the envelope with the column's schema
/// replaced by outflow's, after checking what it was.
fn with_domain_as_variable_scale(mut envelope: Value, column: &str) -> Value {
    for row in 0..2 {
        for f in envelope["fields"][row]["fields"].as_array_mut().into_iter().flatten() {
            if f["field"] == column {
                assert_eq!(f["parameters"], json!({"scale": "2", "connect.decimal.precision": "12"}));
                *f = json!({"type": "struct", "fields": [
                    {"type": "int32", "optional": false, "field": "scale"},
                    {"type": "bytes", "optional": false, "field": "value"}],
                    "optional": true, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
                    "doc": "Variable scaled decimal", "field": column});
            }
        }
    }
    envelope
}

/// A JSONL sink's `{"schema", "payload"}` lines, with the struct names'
/// prefix `from` (the run's pipeline, database, table) written as the
/// golden run's `to`.
fn schema_lines(path: &Path, from: &str, to: &str) -> Vec<(Value, Value)> {
    read_jsonl(path)
        .into_iter()
        .map(|line| {
            let keys: Vec<&String> = line.as_object().expect("a record object").keys().collect();
            assert_eq!(keys, ["payload", "schema"], "a record with a schema: {line}");
            let schema =
                serde_json::to_string(&line["schema"]).unwrap().replace(&format!("\"{from}."), &format!("\"{to}."));
            (serde_json::from_str(&schema).unwrap(), line["payload"].clone())
        })
        .collect()
}

/// Every record of a sink: the schema before the ALTER is `golden[set]`,
/// after it `golden["altered"]` (default set only); the payloads' rows are
/// the mode's golden rows.
#[allow(clippy::too_many_arguments)]
fn assert_schema_records(
    lines: &[(Value, Value)],
    golden: &Value,
    set: &str,
    rows: &[Value],
    deliberate: &[(i64, &str)],
    table: &str,
    altered: bool,
) {
    let (before, after) = lines.split_at(rows.len());
    for (schema, payload) in before {
        assert_eq!(schema, &golden[set], "{set}: the envelope's schema (payload {payload})");
    }
    let payloads: Vec<&Value> = before.iter().map(|(_, p)| p).collect();
    assert!(payloads.iter().all(|p| p["source"]["table"] == table && p["op"] == "c"));
    assert_rows(&payloads, rows, deliberate, set);
    if altered {
        assert_eq!(after.len(), 2, "the insert and the delete after the ALTER");
        for (schema, _) in after {
            assert_eq!(schema, &without_column_defaults(golden["altered"].clone()), "the schema after the ALTER");
        }
        assert_eq!(after[0].1["after"]["id"], 100);
        assert_eq!(after[1].1["op"], "d");
    } else {
        assert!(after.is_empty(), "{set}: only the corpus rows");
    }
}

/// A `[[sink]]` writing `path` with schemas and `modes` (a `[sink.debezium]` table).
fn schemas_sink(name: &str, path: &Path, modes: &str) -> String {
    format!("[[sink]]\nname = {name:?}\nkind = \"jsonl\"\npath = {path:?}\nschemas = true\n{modes}\n")
}

#[tokio::test]
async fn postgres_records_with_schemas_match_debezium_under_every_mode_and_after_an_alter() {
    let sql = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pg_types.sql"))
        .expect("golden SQL");
    let split = sql.find("\nINSERT").expect("the golden SQL has INSERTs");
    let (ddl, rows) = sql.split_at(split);
    let db = TestDb::create("dbz_schemas").await;
    db.client().batch_execute(ddl).await.expect("golden DDL");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let outflow = Outflow::new(&db, &["public.pg_types"])
        .name("dbz")
        .section(&schemas_sink("a", &a, MODES_A))
        .section(&schemas_sink("b", &b, MODES_B));
    // The generated JSONL sink (the last table) with schemas, default modes.
    let config = format!("{}schemas = true\n", outflow.config_text());
    let outflow = outflow.raw_config(config);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.client().batch_execute(rows).await.expect("golden rows");
    outflow.run_until_caught_up().await.assert_success();
    // Sinks a and b are checked before the ALTER (the golden runs altered
    // the table under the default modes only).
    let mut golden = golden_schemas("pg_types.schemas.json");
    golden["modes_a"] = with_domain_as_variable_scale(golden["modes_a"].take(), "c_domain");
    let names = ("dbz.public.pg_types", "dbz.public.pg_types_stream");
    for (set, path, rows) in [("modes_a", &a, "pg_types.modes_a.json"), ("modes_b", &b, "pg_types.modes_b.json")] {
        let lines = schema_lines(path, names.0, names.1);
        assert_schema_records(&lines, &golden, set, &golden_rows(rows), PG_DELIBERATE, "pg_types", false);
    }
    for s in PG_ALTER {
        db.execute(s).await;
    }
    outflow.run_until_caught_up().await.assert_success();
    let lines = schema_lines(&outflow.out_path(), names.0, names.1);
    let rows = golden_rows("pg_types.expected.json");
    assert_schema_records(&lines, &golden, "default", &rows, PG_DELIBERATE, "pg_types", true);
    let source = &lines[0].1["source"];
    assert_eq!((&source["origin"], &source["origin_lsn"]), (&Value::Null, &Value::Null), "3.6.3's source fields");
    db.cleanup().await;
}

#[tokio::test]
async fn mariadb_records_with_schemas_match_debezium_under_every_mode_and_after_an_alter() {
    let sql = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mysql_types.sql"))
        .expect("golden SQL");
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dbz_schemas").await;
    let split = sql.find("\nSET sql_mode").expect("the golden SQL sets sql_mode");
    db.exec(&sql[..split]).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    // The section lands in the generated JSONL sink (the last table), then adds two.
    let sinks = format!("schemas = true\n{}{}", schemas_sink("a", &a, MODES_A), schemas_sink("b", &b, MODES_B));
    let outflow = MyOutflow::new(&db).section(&sinks);
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    for stmt in sql[split..].split(";\n").map(str::trim).filter(|s| !s.is_empty() && !s.starts_with("--")) {
        db.exec(stmt).await;
    }
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    let golden = golden_schemas("mysql_types.schemas.json");
    let from = format!("outflow.{}.types", db.name);
    for (set, path, rows) in [("modes_a", &a, "mysql_types.modes_a.json"), ("modes_b", &b, "mysql_types.modes_b.json")]
    {
        let lines = schema_lines(path, &from, "dbz.dbz.types");
        assert_schema_records(&lines, &golden, set, &golden_rows(rows), &[], "types", false);
    }
    for s in MYSQL_ALTER {
        db.exec(s).await;
    }
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    let lines = schema_lines(&outflow.out_path(), &from, "dbz.dbz.types");
    // With schemas, BIGINT UNSIGNED is Debezium's precise bytes (the exact
    // integer of the schemaless default has no Connect type).
    let mut rows = golden_rows("mysql_types.expected.json");
    rows[0]["biu"] = json!("AP//////////");
    assert_schema_records(&lines, &golden, "default", &rows, &[], "types", true);
}

/// Kafka: keys with their `<prefix>.<schema>.<table>.Key` schema (nullable
/// `message.key.columns` optional; a routed table's key named after its new
/// topic, with `__dbz__physicalTableIdentifier`), the unwrap transform's
/// value schema, tombstones null; and, on a second sink without unwrap, the
/// envelopes of routed tables renamed after their new topic; a logical
/// decoding message and the transaction topic's records with their schemas.
#[tokio::test]
async fn postgres_kafka_keys_and_unwrapped_values_with_schemas_match_debezium() {
    let db = TestDb::create("dbz_schemas_kafka").await;
    let (setup, writes) = golden_sql("unwrap_route.pg.sql");
    for s in &setup {
        db.execute(s).await;
    }
    let name = unique_name("schemas");
    let route = "\"transforms.route.type\" = \"io.debezium.transforms.ByLogicalTableRouter\"\n\"transforms.route.topic.regex\" = \"(.*)_shard_\\\\d+\"\n\"transforms.route.topic.replacement\" = \"$1_all\"\n";
    let sinks = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {brokers:?}\npartitions = 1\nschemas = true\n[sink.debezium]\n\"transforms\" = \"unwrap,route\"\n\"transforms.unwrap.type\" = \"io.debezium.transforms.ExtractNewRecordState\"\n\"transforms.unwrap.delete.tombstone.handling.mode\" = \"rewrite\"\n\"transforms.unwrap.add.fields\" = \"op,table,lsn,source.ts_ms\"\n{route}\"message.key.columns\" = \"public.events:tenant_id,id\"\n\n[[sink]]\nname = \"env\"\nkind = \"kafka\"\nbrokers = {brokers:?}\npartitions = 1\ntransaction_topic = true\ntopic = \"{name}-env.{{schema}}.{{table}}\"\n[sink.debezium]\n\"key.converter.schemas.enable\" = \"true\"\n\"value.converter.schemas.enable\" = \"true\"\n\"transforms\" = \"route\"\n{route}",
        brokers = brokers(),
    );
    let tables = ["public.items", "public.events", "public.orders_shard_1", "public.orders_shard_2"];
    // And a JSONL sink with the unwrap transform and value schemas.
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat.jsonl");
    let sinks = format!(
        "{sinks}\n[[sink]]\nname = \"flat\"\nkind = \"jsonl\"\npath = {flat:?}\n[sink.debezium]\n\"value.converter.schemas.enable\" = \"true\"\n\"transforms\" = \"u\"\n\"transforms.u.type\" = \"io.debezium.transforms.ExtractNewRecordState\"\n\"transforms.u.delete.tombstone.handling.mode\" = \"rewrite\"\n\"transforms.u.add.fields\" = \"op,table,lsn,source.ts_ms\"\n"
    );
    let outflow = Outflow::new(&db, &tables).name(&name).section(&sinks);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    for s in &writes {
        db.execute(s).await;
    }
    db.execute("SELECT pg_logical_emit_message(true, 'outflow', 'hello')").await;
    outflow.run_until_caught_up().await.assert_success();

    // Records of no table: the message and the transaction records (the
    // second sink) carry Debezium's schemas. (Both sinks write the message
    // to `{name}.message`; the second finds it at the topic's tail already.)
    let schemas = |r: &Value| (r["key"]["schema"].clone(), r["value"]["schema"].clone());
    let message = golden("message.pg.schemas.jsonl").into_iter().find(|r| r["topic"] == "dbz.message").unwrap();
    let messages = records(&format!("{name}.message"));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages.iter().all(|r| schemas(r) == schemas(&message)), "{messages:#?}");
    assert_eq!(messages[0]["value"]["payload"]["message"]["content"], "aGVsbG8=");
    let transaction = &golden("transaction.pg.schemas.jsonl")[0];
    let transactions = records(&format!("{name}.transaction"));
    assert!(!transactions.is_empty());
    assert!(transactions.iter().all(|r| schemas(r) == schemas(transaction)), "{transactions:#?}");
    let statuses: Vec<&Value> = transactions.iter().map(|r| &r["value"]["payload"]["status"]).collect();
    assert_eq!((statuses[0], statuses[1]), (&json!("BEGIN"), &json!("END")));

    // The JSONL sink's unwrapped rows carry the golden value schema of
    // their table (named after the table, routed or not).
    let unwrapped = golden("unwrap_route.pg.schemas.jsonl");
    let (lines, messages): (Vec<Value>, Vec<Value>) =
        read_jsonl(&flat).into_iter().partition(|l| l["payload"]["op"] != "m");
    assert_eq!(lines.len(), unwrapped.iter().filter(|r| !r["value"].is_null()).count());
    assert_eq!(messages.len(), 1, "the logical decoding message, with its schema");
    assert_eq!(messages[0]["schema"], message["value"]["schema"]);
    for line in &lines {
        let table = line["payload"]["__table"].as_str().expect("__table");
        let want = unwrapped
            .iter()
            .find(|r| r["value"]["payload"]["__table"] == table)
            .map(|r| r["value"]["schema"].clone())
            .expect("a golden record of the table");
        assert_eq!(renamed(&line["schema"], &name, "dbz"), want, "{line}");
    }

    // A key change's headers name the other key by its payload: headers
    // have their own converter, untouched by the key converter's schemas.
    let items = records(&format!("{name}-env.public.items"));
    let op = |r: &Value| r["value"]["payload"]["op"].clone();
    let delete = items.iter().find(|r| op(r) == "d").expect("the key change's delete");
    let create = items.iter().filter(|r| op(r) == "c").nth(1).expect("the key change's create");
    let header =
        |r: &Value, h: &str| serde_json::from_str::<Value>(r["headers"][h].as_str().unwrap_or("null")).unwrap();
    assert_eq!(header(delete, "__debezium.newkey"), json!({"id": 2}), "{delete}");
    assert_eq!(header(create, "__debezium.oldkey"), json!({"id": 1}), "{create}");

    // Struct names start with the pipeline's name (Debezium's topic.prefix),
    // a routed table's with its new topic.
    for (golden_file, prefix) in
        [("unwrap_route.pg.schemas.jsonl", name.clone()), ("route.pg.schemas.jsonl", format!("{name}-env"))]
    {
        let golden = golden(golden_file);
        for topic in ["items", "events", "orders_all"] {
            let want: Vec<Value> =
                golden.iter().filter(|r| r["topic"] == format!("dbz.public.{topic}")).map(comparable).collect();
            let got: Vec<Value> = records(&format!("{prefix}.public.{topic}"))
                .iter()
                .map(|r| renamed(&renamed(&comparable(r), &prefix, "dbz"), &name, "dbz"))
                .collect();
            let (got, want) = if topic == "events" && golden_file.starts_with("route") {
                // A table without a primary key under REPLICA IDENTITY FULL:
                // Debezium's key is null, outflow's the identity's columns
                // (not a schema matter; `message.key.columns` on the other
                // sink gives both the same key).
                let values = |rs: Vec<Value>| rs.into_iter().map(|r| r["value"].clone()).collect::<Vec<_>>();
                (values(got), values(want))
            } else {
                (got, want)
            };
            assert_eq!(got, want, "{golden_file}: topic {topic}");
        }
    }
    db.cleanup().await;
}

/// The same through MariaDB: keys (the keyless table's from
/// `message.key.columns`, nullable hence optional), unwrapped values with
/// `__file`, and the tombstones `rewrite-with-tombstone` keeps.
#[tokio::test]
async fn mariadb_kafka_keys_and_unwrapped_values_with_schemas_match_debezium() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "dbz_schemas_kafka").await;
    let (setup, writes) = golden_sql("unwrap_route.mariadb.sql");
    for s in &setup {
        db.exec(s).await;
    }
    let prefix = unique_name("schemas");
    let outflow = MyOutflow::new(&db).section(&format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 1\ntopic = \"{prefix}.{{schema}}.{{table}}\"\nschemas = true\n{}",
        brokers(),
        super::unwrap_route_properties("rewrite-with-tombstone", "op,table,file,source.ts_ms", "db,op", &format!("{}.events", db.name))
    ));
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    for s in &writes {
        db.exec(s).await;
    }
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();

    // Struct names start with the pipeline's name (Debezium's topic.prefix),
    // a routed table's with its new topic.
    let golden = golden("unwrap_route.mariadb.schemas.jsonl");
    let (topic_prefix, name_prefix) = (format!("{prefix}.{}", db.name), format!("outflow.{}", db.name));
    for topic in ["items", "events", "orders_all"] {
        let want: Vec<Value> =
            golden.iter().filter(|r| r["topic"] == format!("dbz.dbz.{topic}")).map(comparable).collect();
        let got: Vec<Value> = records(&format!("{topic_prefix}.{topic}"))
            .iter()
            .map(|r| renamed(&renamed(&comparable(r), &name_prefix, "dbz.dbz"), &topic_prefix, "dbz.dbz"))
            .collect();
        assert_eq!(got, want, "topic {topic}");
    }
}

/// A record with what differs per run left out: the payloads' source
/// blocks, timestamps and positions (`__lsn`, `__file`, `__source_ts_ms`,
/// `ts_*`), and the routed key's original topic name but its table.
fn comparable(r: &Value) -> Value {
    let mut key = r["key"].clone();
    if let Some(t) = key.pointer_mut("/payload/__dbz__physicalTableIdentifier") {
        *t = json!(t.as_str().and_then(|s| s.rsplit_once('.')).map(|(_, table)| table.to_string()));
    }
    let mut value = r["value"].clone();
    if let Some(p) = value.get_mut("payload").and_then(Value::as_object_mut) {
        for f in ["source", "ts_ms", "ts_us", "ts_ns", "__lsn", "__source_ts_ms", "__file"] {
            p.remove(f);
        }
    }
    json!({"key": key, "value": value})
}

/// `prefix.` at the start of struct names written as `to.`.
fn renamed(v: &Value, prefix: &str, to: &str) -> Value {
    serde_json::from_str(&v.to_string().replace(&format!("\"{prefix}."), &format!("\"{to}."))).unwrap()
}
