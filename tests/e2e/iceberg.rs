//! The Iceberg sink end to end: the real binary commits to a SQLite catalog
//! and a local warehouse, and an independent reader — pyiceberg's
//! SqlCatalog on the same file, through `tests/readers/iceberg_read.py` in
//! the venv `scripts/python-env.sh` sets up (`OUTFLOW_TEST_PYTHON`) — scans
//! the tables back as a user would. Scenarios: random inserts, updates
//! (key changes included) and deletes from PostgreSQL and from MariaDB, the
//! change log replayed per key equal to the source table; kill -9 in a busy
//! run (no duplicates, nothing missing) and a crash at each step of a
//! commit; ALTER TABLE mid-stream; the PostgreSQL and MySQL golden type
//! corpora with their Iceberg types and values, checked by hand against the
//! source types; a warehouse on a local S3 server (moto). `mode = "upsert"`
//! has its own scenarios in `iceberg_upsert.rs`, on these helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use outflow_model::Position;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::harness::{create_pg_types, env_var, wait_for, Outflow, TestDb, SHORT};
use crate::mysql_harness::{server_id, MyDb};
use crate::pg_apply::{busy_transaction, random_statement, BusyWriter};

pub(crate) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `[[sink]]` section of an Iceberg sink in `dir`.
fn iceberg_sink(dir: &Path) -> String {
    iceberg_sink_mode(dir, "append")
}

/// The `[[sink]]` section of an Iceberg sink in `dir` with `mode`.
pub(crate) fn iceberg_sink_mode(dir: &Path, mode: &str) -> String {
    format!(
        "[[sink]]\nname = \"lake\"\nkind = \"iceberg\"\nmode = \"{mode}\"\ncatalog = {}\nwarehouse = {}\ncommit_interval = \"1s\"\n",
        toml_str(&dir.join("catalog.db").to_string_lossy()),
        toml_str(&dir.join("warehouse").to_string_lossy()),
    )
}

/// A PostgreSQL source → Iceberg setup (the catalog is `<tempdir>/catalog.db`).
fn pg_to_iceberg(db: &TestDb, tables: &[&str]) -> (Outflow, PathBuf) {
    pg_to_iceberg_mode(db, tables, "append")
}

/// Same, with the sink's `mode`.
pub(crate) fn pg_to_iceberg_mode(db: &TestDb, tables: &[&str], mode: &str) -> (Outflow, PathBuf) {
    let (url, slot) = (db.url(), db.name().to_string());
    let tables: Vec<String> = tables.iter().map(|t| toml_str(t)).collect();
    let mut root = PathBuf::new();
    let outflow = Outflow::raw(|dir: &Path| {
        root = dir.to_path_buf();
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [{}]\nslot = {}\npublication = \"outflow\"\n\n\
             [state]\ndir = {}\n\n{}",
            toml_str(&url),
            tables.join(", "),
            toml_str(&slot),
            toml_str(&dir.join("state").to_string_lossy()),
            iceberg_sink_mode(dir, mode),
        )
    });
    (outflow, root)
}

/// Every table of the catalog in `root`, read with pyiceberg.
pub(crate) fn read_catalog(root: &Path) -> Value {
    read_catalog_with(root, &[])
}

/// Same, with reader flags (`--s3-endpoint URL`).
pub(crate) fn read_catalog_with(root: &Path, extra: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/iceberg_read.py");
    let out = std::process::Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .arg(&script)
        .arg(root.join("catalog.db"))
        .arg("outflow")
        .args(extra)
        .output()
        .expect("running the pyiceberg reader");
    assert!(out.status.success(), "pyiceberg reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

pub(crate) fn table<'a>(catalog: &'a Value, name: &str) -> &'a Value {
    let t = &catalog["tables"][name];
    assert!(t.is_object(), "no table {name} in the catalog: {}", catalog["tables"]);
    t
}

/// The table's change log in source order.
fn change_log(catalog: &Value, name: &str) -> Vec<Value> {
    let mut rows = table(catalog, name)["rows"].as_array().cloned().expect("rows");
    // A key-changing update is a `d` and a `u` at one position, `d` first.
    rows.sort_by_cached_key(|r| {
        let position = Position::from_str(r["_position"].as_str().expect("_position")).expect("a position");
        (position, r["_op"] != "d")
    });
    rows
}

/// The change log replayed per key: what the table holds at its end.
fn replay(log: &[Value], key: &str) -> BTreeMap<i64, Value> {
    let mut state = BTreeMap::new();
    for row in log {
        match row["_op"].as_str().expect("_op") {
            "c" | "r" | "u" => {
                state.insert(row[key].as_i64().expect("an integer key"), row.clone());
            }
            "d" => {
                state.remove(&row[key].as_i64().expect("a delete carries its key"));
            }
            "t" => state.clear(),
            other => panic!("unexpected _op {other}"),
        }
    }
    state
}

pub(crate) fn column_types(catalog: &Value, name: &str) -> BTreeMap<String, String> {
    table(catalog, name)["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
        .collect()
}

/// `id|v|n` of every source row, and the same from the replayed log.
async fn assert_replay_equals_source(db: &TestDb, catalog: &Value, name: &str) {
    let want: Vec<String> =
        db.query("SELECT concat_ws('|', id, v, n) FROM items ORDER BY id").await.iter().map(|r| r.get(0)).collect();
    let got: Vec<String> = replay(&change_log(catalog, name), "id")
        .values()
        .map(|r| {
            let parts = [&r["id"], &r["v"], &r["n"]];
            parts
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| v.as_str().map_or(v.to_string(), String::from))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: replayed rows {} vs source rows {}", got.len(), want.len());
    assert_eq!(got, want, "{name}: the replayed change log differs from the source");
}

#[tokio::test]
async fn iceberg_random_changes_replay_to_the_source_table() {
    let db = TestDb::create("ice_random").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'seed' || g, g / 7.0 FROM generate_series(1, 300) g;",
    )
    .await;
    let (outflow, root) = pg_to_iceberg(&db, &["public.items"]);
    outflow.run_until_caught_up().await.assert_success();
    let catalog = read_catalog(&root);
    assert_eq!(change_log(&catalog, "public.items").len(), 300, "the snapshot's 300 rows");
    assert_replay_equals_source(&db, &catalog, "public.items").await;

    let mut rng = StdRng::seed_from_u64(81);
    let mut next_id = 300;
    for _ in 0..20 {
        let mut tx = String::from("BEGIN;");
        for _ in 0..rng.random_range(1..40) {
            tx.push_str(&random_statement(&mut rng, &mut next_id));
        }
        tx.push_str("COMMIT;");
        db.execute(&tx).await;
    }
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let catalog = read_catalog(&root);
    assert_replay_equals_source(&db, &catalog, "public.items").await;
    // Each commit's snapshot summary carries the sink's offset for the table.
    let snapshots = table(&catalog, "public.items")["snapshots"].as_array().unwrap().clone();
    let last = &snapshots.last().expect("snapshots")["summary"];
    assert_eq!(last["outflow.sink"], "lake");
    assert_eq!(last["outflow.table"], "public.items");
    assert!(last["outflow.position"].as_str().is_some_and(|p| p.starts_with("lsn:")), "{last}");

    // A truncate is a `t` row; rows after it arrive.
    db.execute("TRUNCATE items; INSERT INTO items VALUES (1, 'after truncate', 0);").await;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    assert_replay_equals_source(&db, &read_catalog(&root), "public.items").await;
    db.cleanup().await;
}

/// Rows of `appended` committed so far, read by pyiceberg.
fn appended_rows(root: &Path) -> usize {
    let catalog = read_catalog(root);
    catalog["tables"]["public.appended"]["rows"].as_array().map_or(0, Vec::len)
}

/// Metadata versions of `public.appended` so far (one per commit, plus the
/// table's creation): a cheap progress signal to poll.
fn appended_versions(root: &Path) -> usize {
    let dir = root.join("warehouse/public/appended/metadata");
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".metadata.json"))).count()
    })
}

#[tokio::test]
async fn iceberg_kill9_in_a_busy_run_then_completion_is_exactly_once() {
    let db = TestDb::create("ice_kill").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         CREATE TABLE appended (seq int, payload text);",
    )
    .await;
    let (outflow, root) = pg_to_iceberg(&db, &["public.items", "public.appended"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;

    let load = db.connect().await;
    let writer = BusyWriter::start(load, 91);
    // Kill once a few commits are in, with more on their way.
    let deadline = std::time::Instant::now() + SHORT;
    while appended_versions(&root) < 4 {
        assert!(std::time::Instant::now() < deadline, "no commits within {SHORT:?}:\n{}", run.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    run.kill9().await;
    let partial = appended_rows(&root);
    let (mut rng, mut next_id, mut seq) = writer.stop().await;
    assert!(partial > 0 && partial < seq as usize, "kill -9 came mid-run: {partial} of {seq} rows committed");
    for _ in 0..5 {
        db.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
    }
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();

    assert_busy_tables_exact(&db, &root, seq).await;
    db.cleanup().await;
}

/// Every insert into `appended` exactly once, and `items` replayed equal to the source.
async fn assert_busy_tables_exact(db: &TestDb, root: &Path, inserts: i32) {
    let catalog = read_catalog(root);
    let mut seqs: Vec<i64> =
        change_log(&catalog, "public.appended").iter().map(|r| r["seq"].as_i64().expect("seq")).collect();
    seqs.sort();
    let want: Vec<i64> = (1..=i64::from(inserts)).collect();
    assert_eq!(seqs.len(), want.len(), "appended: {} rows for {inserts} inserts (duplicates or losses)", seqs.len());
    assert_eq!(seqs, want, "appended: every insert exactly once");
    assert_replay_equals_source(db, &catalog, "public.items").await;
}

#[tokio::test]
async fn iceberg_crash_at_each_step_of_a_commit_is_exactly_once() {
    let db = TestDb::create("ice_fail").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         CREATE TABLE appended (seq int, payload text);",
    )
    .await;
    let (outflow, root) = pg_to_iceberg(&db, &["public.items", "public.appended"]);
    outflow.run_until_caught_up().await.assert_success();
    let (mut rng, mut next_id, mut seq) = (StdRng::seed_from_u64(13), 0, 0);
    // sink.after_flush is the sharp one: the tables hold the commit and its
    // offset, the state directory does not know yet.
    for point in ["sink.after_write", "sink.after_flush", "sink.after_offset"] {
        for _ in 0..4 {
            db.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
        }
        db.wait_for_slot_idle().await;
        let out = outflow.with_env("OUTFLOW_FAILPOINTS", &format!("{point}=1")).run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "{point} was not reached:\n{}", out.stderr);
    }
    db.wait_for_slot_idle().await;
    outflow.with_env("OUTFLOW_FAILPOINTS", "").run_until_caught_up().await.assert_success();
    assert_busy_tables_exact(&db, &root, seq).await;
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_warehouse_on_a_local_s3_server() {
    let moto = crate::parquet::start_moto().await;
    let create = std::process::Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .args(["-c", "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='lake')", &moto.endpoint])
        .output()
        .unwrap();
    assert!(create.status.success(), "creating the bucket: {}", String::from_utf8_lossy(&create.stderr));
    let db = TestDb::create("ice_s3").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'seed' || g, g / 7.0 FROM generate_series(1, 100) g;",
    )
    .await;
    let (url, slot) = (db.url(), db.name().to_string());
    let mut root = PathBuf::new();
    let outflow = Outflow::raw(|dir: &Path| {
        root = dir.to_path_buf();
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\nslot = {}\n[state]\ndir = {}\n\
             [[sink]]\nname = \"lake\"\nkind = \"iceberg\"\ncatalog = {}\nwarehouse = \"s3://lake/warehouse\"\n\
             [sink.storage_options]\nendpoint = {}\nregion = \"us-east-1\"\naccess_key_id = \"test\"\n\
             secret_access_key = \"test\"\nallow_http = \"true\"\n",
            toml_str(&url),
            toml_str(&slot),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&dir.join("catalog.db").to_string_lossy()),
            toml_str(&moto.endpoint),
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let mut rng = StdRng::seed_from_u64(14);
    let mut next_id = 100;
    for _ in 0..5 {
        let mut tx = String::from("BEGIN;");
        for _ in 0..20 {
            tx.push_str(&random_statement(&mut rng, &mut next_id));
        }
        tx.push_str("COMMIT;");
        db.execute(&tx).await;
    }
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let catalog = read_catalog_with(&root, &["--s3-endpoint", &moto.endpoint]);
    assert_replay_equals_source(&db, &catalog, "public.items").await;
    assert!(!root.join("warehouse").exists(), "nothing went to local disk");
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_added_and_dropped_columns_reach_the_table_schema() {
    let db = TestDb::create("ice_ddl").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, old int); INSERT INTO items VALUES (1, 'a', 1);").await;
    let (outflow, root) = pg_to_iceberg(&db, &["public.items"]);
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    // The snapshot (row 1) is done before the DDL: a chunk read before an
    // ALTER and emitted after it carries the old shape (see
    // docs/src/known-limits.md, "PostgreSQL"); this test is about the stream's
    // schema changes.
    wait_for(SHORT, "the snapshot's row 1 committed to the iceberg table", || async {
        root.join("catalog.db").exists()
            && read_catalog(&root)["tables"]["public.items"]["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["id"] == json!(1)))
    })
    .await;
    db.execute("INSERT INTO items VALUES (2, 'b', 2);").await;
    db.execute(
        "ALTER TABLE items ADD COLUMN price numeric(10,2), ADD COLUMN tags text[];
         INSERT INTO items VALUES (3, 'c', 3, 9.99, '{x,y}');
         UPDATE items SET price = 1.50 WHERE id = 1;",
    )
    .await;
    db.execute("ALTER TABLE items DROP COLUMN old; INSERT INTO items VALUES (4, 'd', 0.01, '{}');").await;
    wait_for(SHORT, "row 4 committed to the iceberg table", || async {
        root.join("catalog.db").exists()
            && read_catalog(&root)["tables"]["public.items"]["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["id"] == json!(4)))
    })
    .await;
    run.sigterm_and_wait().await.assert_success();

    let catalog = read_catalog(&root);
    let types = column_types(&catalog, "public.items");
    assert_eq!(types.get("price").map(String::as_str), Some("decimal(10, 2)"), "{types:?}");
    assert!(types.get("tags").is_some_and(|t| t.starts_with("list<string")), "{types:?}");
    assert!(!types.contains_key("old"), "the dropped column is gone: {types:?}");
    let state = replay(&change_log(&catalog, "public.items"), "id");
    let view: Vec<(i64, Value, Value)> =
        state.values().map(|r| (r["id"].as_i64().unwrap(), r["price"].clone(), r["tags"].clone())).collect();
    assert_eq!(
        view,
        vec![
            (1, json!("1.50"), Value::Null),
            (2, Value::Null, Value::Null),
            (3, json!("9.99"), json!(["x", "y"])),
            (4, json!("0.01"), json!([])),
        ]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_pg_type_corpus_arrives_with_iceberg_types() {
    let db = TestDb::create("ice_types").await;
    let rows = create_pg_types(&db).await;
    let (outflow, root) = pg_to_iceberg(&db, &["public.pg_types"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute(&rows).await;
    outflow.run_until_caught_up().await.assert_success();

    let catalog = read_catalog(&root);
    let types = column_types(&catalog, "public.pg_types");
    // Checked by hand against the column definitions in pg_types.sql.
    for (column, iceberg) in [
        ("id", "int"),
        ("c_int2", "int"),
        ("c_int4", "int"),
        ("c_int8", "long"),
        ("c_oid", "long"),
        ("c_numeric", "string"),
        ("c_numeric_ps", "decimal(10, 3)"),
        ("c_float4", "float"),
        ("c_float8", "double"),
        ("c_bool", "boolean"),
        ("c_text", "string"),
        ("c_bytea", "binary"),
        ("c_date", "date"),
        ("c_time", "time"),
        ("c_timestamp", "timestamp"),
        ("c_timestamptz", "timestamptz"),
        ("c_uuid", "uuid"),
        ("c_json", "string"),
        ("c_enum", "string"),
        ("c_domain", "string"),
        ("c_inet", "string"),
        ("c_bit1", "string"),
        ("c_int4_arr", "list<int>"),
        ("c_tstz_arr", "list<timestamptz>"),
        ("_op", "string"),
        ("_position", "string"),
        ("_tx", "long"),
        ("_source_ts", "timestamptz"),
        ("_snapshot", "boolean"),
        ("_unchanged", "list<string>"),
    ] {
        assert_eq!(types.get(column).map(String::as_str), Some(iceberg), "column {column}: {types:?}");
    }
    let interval = &types["c_interval"];
    assert!(
        interval.starts_with("struct<") && interval.contains("months") && interval.contains("micros"),
        "{interval}"
    );
    let log = change_log(&catalog, "public.pg_types");
    let row = log.iter().find(|r| r["id"] == json!(1)).expect("row 1");
    let expected = json!({
        "c_int2": 12, "c_int8": 9876543210i64, "c_oid": 4242, "c_numeric": "12.50", "c_numeric_ps": "3.140",
        "c_float4": 1.5, "c_bool": true, "c_text": "hello", "c_bytea": "0102feff",
        "c_date": 19724,                          // 2024-01-02
        "c_time": 36_672_345_678i64,               // 10:11:12.345678
        "c_timestamp": 1_704_164_645_123_456i64,   // 2024-01-02 03:04:05.123456
        "c_timestamptz": 1_704_164_645_123_456i64,
        "c_interval": {"months": 14, "days": 3, "micros": 14_706_789_000i64},
        "c_uuid": "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "c_enum": "happy", "c_domain": "1234.50",
        "c_int4_arr": [1, 2, 3], "c_text_arr": ["a", "b"],
        "_op": "c", "_snapshot": false,
    });
    let mut differ = Vec::new();
    for (column, want) in expected.as_object().unwrap() {
        if &row[column] != want {
            differ.push(format!("{column}: {} (expected {want})", row[column]));
        }
    }
    assert!(differ.is_empty(), "row 1 differs:\n{}", differ.join("\n"));
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_mariadb_changes_and_types_replay_to_the_source() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "ice").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, u int unsigned, big bigint unsigned, d decimal(12,3), s varchar(40),
           e enum('a','b','c'), dt datetime(6), ts timestamp NULL, tm time, y year, b blob)",
    )
    .await;
    db.exec(
        "INSERT INTO items VALUES (1, 4294967295, 18446744073709551615, -12.345, 'ü', 'b',
           '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', '-838:59:59', 2024, x'00ff10')",
    )
    .await;
    let dir = tempfile::Builder::new().prefix("outflow-e2e-").tempdir().unwrap();
    let (url, name) = (db.url(), db.name.clone());
    let root = dir.path().to_path_buf();
    let outflow = Outflow::raw(|d: &Path| {
        format!(
            "[source]\nkind = \"mysql\"\nurl = {}\ntables = [\"{name}.items\"]\nserver_id = {}\n[state]\ndir = {}\n{}",
            toml_str(&url),
            server_id(),
            toml_str(&d.join("state").to_string_lossy()),
            iceberg_sink(&root),
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    let mut rng = StdRng::seed_from_u64(12);
    let mut next_id = 1;
    for _ in 0..15 {
        db.exec("BEGIN").await;
        for _ in 0..rng.random_range(1..30) {
            let id = rng.random_range(1..=next_id);
            let sql = match rng.random_range(0..10) {
                0..=4 => {
                    next_id += 1;
                    format!(
                        "INSERT INTO items VALUES ({next_id}, {}, {}, {}.{:03}, 's{}', '{}', '2023-05-06 07:08:09.{:06}',
                           FROM_UNIXTIME({}), '{}:{:02}:{:02}', {}, x'{:06x}')",
                        rng.random::<u32>(),
                        rng.random::<u64>(),
                        rng.random_range(-99999..99999),
                        rng.random_range(0..1000),
                        rng.random::<u16>(),
                        ["a", "b", "c"][rng.random_range(0..3)],
                        rng.random_range(0..1_000_000),
                        rng.random_range(1..2_000_000_000),
                        rng.random_range(-838..838),
                        rng.random_range(0..60),
                        rng.random_range(0..60),
                        rng.random_range(1901..2155),
                        rng.random_range(0..0xffffff),
                    )
                }
                5..=7 => format!("UPDATE items SET s = 'upd{}', d = d + 1 WHERE id = {id}", rng.random::<u8>()),
                8 => {
                    next_id += 1;
                    format!("UPDATE items SET id = {next_id} WHERE id = {id}")
                }
                _ => format!("DELETE FROM items WHERE id = {id}"),
            };
            db.exec(&sql).await;
        }
        db.exec("COMMIT").await;
    }
    outflow.run_until_caught_up().await.assert_success();

    let catalog = read_catalog(&root);
    let table_name = format!("{name}.items");
    let types = column_types(&catalog, &table_name);
    // Checked by hand against the CREATE TABLE above.
    for (column, iceberg) in [
        ("id", "int"),
        ("u", "long"),
        ("big", "decimal(20, 0)"),
        ("d", "decimal(12, 3)"),
        ("s", "string"),
        ("e", "string"),
        ("dt", "timestamp"),
        ("ts", "timestamptz"),
        ("tm", "long"),
        ("y", "int"),
        ("b", "binary"),
    ] {
        assert_eq!(types.get(column).map(String::as_str), Some(iceberg), "column {column}: {types:?}");
    }
    // The replayed log equals the source, compared as text rendered alike on both sides.
    use mysql_async::prelude::Queryable;
    let want: Vec<String> = db
        .conn
        .query(
            "SELECT CONCAT_WS('|', id, u, big, d, s, e, CAST(UNIX_TIMESTAMP(dt) * 1000000 AS SIGNED),
               CAST(UNIX_TIMESTAMP(ts) * 1000000 AS SIGNED), TIME_TO_SEC(tm) * 1000000, y, HEX(b))
             FROM items ORDER BY id",
        )
        .await
        .unwrap();
    let got: Vec<String> = replay(&change_log(&catalog, &table_name), "id")
        .values()
        .map(|r| {
            let mut parts: Vec<String> = ["id", "u", "big", "d", "s", "e", "dt", "ts", "tm", "y"]
                .iter()
                .filter(|c| !r[**c].is_null())
                .map(|c| r[*c].as_str().map_or(r[*c].to_string(), String::from))
                .collect();
            parts.push(r["b"].as_str().unwrap_or_default().to_uppercase());
            parts.join("|")
        })
        .collect();
    assert_eq!(got.len(), want.len(), "replayed {} rows, source has {}", got.len(), want.len());
    assert_eq!(got, want, "the replayed change log differs from the source");
}

#[tokio::test]
async fn iceberg_mysql_type_corpus_arrives_with_iceberg_types() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "ice_types").await;
    let sql = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mysql_types.sql"))
        .unwrap();
    let split = sql.find("\nSET sql_mode").expect("the golden SQL sets sql_mode before its rows");
    db.exec(&sql[..split]).await;
    let (url, name) = (db.url(), db.name.clone());
    let mut root = PathBuf::new();
    let outflow = Outflow::raw(|d: &Path| {
        root = d.to_path_buf();
        format!(
            "[source]\nkind = \"mysql\"\nurl = {}\ntables = [\"{name}.types\"]\nserver_id = {}\n[state]\ndir = {}\n{}",
            toml_str(&url),
            server_id(),
            toml_str(&d.join("state").to_string_lossy()),
            iceberg_sink(d),
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    for statement in sql[split..].split(";\n").map(str::trim).filter(|s| !s.is_empty() && !s.starts_with("--")) {
        db.exec(statement).await;
    }
    outflow.run_until_caught_up().await.assert_success();

    let catalog = read_catalog(&root);
    let table_name = format!("{name}.types");
    let types = column_types(&catalog, &table_name);
    // Checked by hand against the column definitions in mysql_types.sql.
    for (column, iceberg) in [
        ("ti", "int"),
        ("tiu", "int"),
        ("si", "int"),
        ("siu", "int"),
        ("mi", "int"),
        ("miu", "long"),
        ("i", "int"),
        ("iu", "long"),
        ("bi", "long"),
        ("biu", "decimal(20, 0)"),
        ("dec1", "decimal(30, 10)"),
        ("dec0", "decimal(5, 0)"),
        ("f", "float"),
        ("d", "double"),
        ("b1", "boolean"),
        ("b12", "string"),
        ("bo", "int"),
        ("e", "string"),
        ("st", "string"),
        ("y", "int"),
        ("dt", "date"),
        ("tm", "long"),
        ("tm3", "long"),
        ("tm6", "long"),
        ("dtm", "timestamp"),
        ("dtm6", "timestamp"),
        ("ts", "timestamptz"),
        ("ts6", "timestamptz"),
        ("c", "string"),
        ("vc", "string"),
        ("tx", "string"),
        ("l1", "string"),
        ("bn", "binary"),
        ("vb", "binary"),
        ("bl", "binary"),
        ("js", "string"),
        ("g", "binary"),
    ] {
        assert_eq!(types.get(column).map(String::as_str), Some(iceberg), "column {column}: {types:?}");
    }
    let log = change_log(&catalog, &table_name);
    assert_eq!(log.len(), 3);
    let row = log.iter().find(|r| r["id"] == json!(1)).expect("row 1");
    let expected = json!({
        "ti": -128, "tiu": 255, "si": -32768, "siu": 65535, "mi": -8388608, "miu": 16777215,
        "i": -2147483648i64, "iu": 4294967295u64, "bi": i64::MIN, "biu": "18446744073709551615",
        "dec1": "-12345678901234567890.0123456789", "dec0": "99999", "f": 1.5, "d": -2.25e300,
        "e": "medium", "st": "a,c", "y": 2024,
        "dt": 19724,                        // 2024-01-02
        "tm": -3_020_399_000_000i64,         // -838:59:59
        "tm3": 45_296_789_000i64,            // 12:34:56.789
        "tm6": -3_723_000_004i64,            // -01:02:03.000004
        "dtm": 1_704_164_645_000_000i64,     // 2024-01-02 03:04:05
        "dtm6": -1,                          // 1969-12-31 23:59:59.999999
        "ts6": 2_147_483_647_999_999i64,     // 2038-01-19 03:14:07.999999 UTC
        "c": "ab", "vc": "héllo ☃ 😀", "l1": "café",
        "bn": "00010203", "vb": "ff00", "bl": "deadbeef",
        "b1": true, "b12": "101010101010", "bo": 1,
        "ts": 1_704_164_645_000_000i64,
        "g": "000000000101000000000000000000f03f0000000000000040",
    });
    let mut differ = Vec::new();
    for (column, want) in expected.as_object().unwrap() {
        if &row[column] != want {
            differ.push(format!("{column}: {} (expected {want})", row[column]));
        }
    }
    assert!(differ.is_empty(), "row 1 differs:\n{}", differ.join("\n"));
}
