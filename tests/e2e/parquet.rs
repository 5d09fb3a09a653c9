//! The Parquet sink end to end: the real binary writes a lake, and an
//! independent reader — pyarrow, through `tests/readers/parquet_read.py`
//! in the venv `scripts/python-env.sh` sets up (`OUTFLOW_TEST_PYTHON`) —
//! reads it back as a user would (one dataset per table directory, schemas
//! unified). Scenarios: every type of the golden corpus with its Arrow type
//! and value; the insert/update/delete/truncate lifecycle with TOAST
//! unchanged values; ALTER TABLE mid-stream; kill -9 (random and at the
//! failpoints) during a busy run; rolling by rows and by time; S3 through a
//! moto server that the S3 test starts itself on a loopback port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::harness::{create_pg_types, env_var, wait_for, Outflow, TestDb, SHORT};

fn python() -> String {
    env_var("OUTFLOW_TEST_PYTHON")
}

/// Reads the lake at `root` with pyarrow; `extra` are reader flags.
pub(crate) fn read_lake(root: &str, extra: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/parquet_read.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(&script).arg(root).args(extra);
    if root.starts_with("s3://") {
        cmd.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test");
    }
    let out = cmd.output().expect("running the pyarrow reader");
    assert!(out.status.success(), "pyarrow reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

/// An outflow setup whose only sink is `[[sink]] kind = "parquet"` with
/// `settings` (TOML lines) at `<tempdir>/lake`.
fn parquet_outflow(db: &TestDb, tables: &[&str], settings: &str) -> (Outflow, String) {
    parquet_outflow_with(Outflow::new(db, tables), settings)
}

fn parquet_outflow_with(outflow: Outflow, settings: &str) -> (Outflow, String) {
    let lake = outflow.state_dir().with_file_name("lake").to_string_lossy().into_owned();
    let sink = format!("[[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = {lake:?}\n{settings}\n");
    let outflow = with_sink(outflow, &sink);
    (outflow, lake)
}

fn with_sink(outflow: Outflow, sink: &str) -> Outflow {
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    let text = format!("{base}{sink}");
    outflow.raw_config(text)
}

/// A table's rows, sorted by position (the reader returns dataset order).
fn rows(lake: &Value, table: &str) -> Vec<Value> {
    let mut rows = lake["tables"][table]["rows"].as_array().cloned().unwrap_or_else(|| {
        panic!(
            "no table {table} in the lake: {}",
            lake["tables"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
        )
    });
    rows.sort_by_key(|r| position_key(r["_position"].as_str().expect("_position")));
    rows
}

/// `lsn:HI/LO:IDX` as a sortable tuple.
pub(crate) fn position_key(p: &str) -> (u64, u64) {
    let rest = p.strip_prefix("lsn:").expect("lsn position");
    let (lsn, idx) = rest.split_once(':').unwrap_or((rest, "0"));
    let (hi, lo) = lsn.split_once('/').expect("lsn");
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    (lsn, idx.parse().unwrap())
}

fn field<'a>(lake: &'a Value, table: &str, name: &str) -> &'a Value {
    lake["tables"][table]["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {table}"))
}

#[tokio::test]
async fn parquet_every_golden_type_arrives_with_its_arrow_type_and_value() {
    let db = TestDb::create("pq_types").await;
    let inserts = create_pg_types(&db).await;
    let (outflow, lake) = parquet_outflow(&db, &["public.pg_types"], "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute(&inserts).await;
    outflow.run_until_caught_up().await.assert_success();

    let lake = read_lake(&lake, &[]);
    let t = "public.pg_types";
    let expected_types = [
        ("id", "int32"),
        ("c_int2", "int16"),
        ("c_int4", "int32"),
        ("c_int8", "int64"),
        ("c_oid", "uint32"),
        ("c_numeric", "string"),
        ("c_numeric_ps", "decimal128(10, 3)"),
        ("c_float4", "float"),
        ("c_float8", "double"),
        ("c_bool", "bool"),
        ("c_text", "string"),
        ("c_varchar", "string"),
        ("c_bpchar", "string"),
        ("c_name", "string"),
        ("c_char", "string"),
        ("c_bytea", "binary"),
        ("c_date", "date32[day]"),
        ("c_time", "time64[us]"),
        ("c_time3", "time64[us]"),
        ("c_timetz", "string"),
        ("c_timestamp", "timestamp[us]"),
        ("c_timestamp3", "timestamp[us]"),
        ("c_timestamptz", "timestamp[us, tz=UTC]"),
        ("c_interval", "struct<months: int32 not null, days: int32 not null, micros: int64 not null>"),
        ("c_enum", "string"),
        ("c_domain", "string"),
        ("c_inet", "string"),
        ("c_money", "string"),
        ("c_bit8", "string"),
        ("c_xml", "string"),
        ("c_range", "string"),
        ("c_int4_arr", "list<item: int32>"),
        ("c_int4_2d", "list<item: int32>"),
        ("c_text_arr", "list<item: string>"),
        ("c_numeric_arr", "list<item: string>"),
        ("c_date_arr", "list<item: date32[day]>"),
        ("c_tstz_arr", "list<item: timestamp[us, tz=UTC]>"),
        ("c_bool_arr", "list<item: bool>"),
        ("c_float8_arr", "list<item: double>"),
        ("c_bytea_arr", "list<item: binary>"),
        ("_op", "string"),
        ("_position", "string"),
        ("_tx", "uint64"),
        ("_source_ts", "timestamp[us, tz=UTC]"),
        ("_snapshot", "bool"),
        ("_unchanged", "list<item: string>"),
    ];
    for (name, ty) in expected_types {
        assert_eq!(field(&lake, t, name)["type"], ty, "type of {name}: {}", field(&lake, t, name));
    }
    // Canonical extension types keep their storage type.
    assert_eq!(field(&lake, t, "c_uuid")["storage"], "fixed_size_binary[16]", "{}", field(&lake, t, "c_uuid"));
    assert_eq!(field(&lake, t, "c_uuid")["extension"], "arrow.uuid");
    assert_eq!(field(&lake, t, "c_json")["extension"], "arrow.json", "{}", field(&lake, t, "c_json"));
    assert_eq!(field(&lake, t, "c_jsonb")["metadata"]["outflow.source_type"], "jsonb");
    assert_eq!(field(&lake, t, "c_enum")["metadata"]["outflow.source_type"], "mood");

    let rows = rows(&lake, t);
    assert_eq!(rows.len(), 10, "one row per INSERT");
    let by_id: BTreeMap<i64, &Value> = rows.iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect();
    let r1 = by_id[&1];
    let expect1 = json!({
        "c_int2": 12, "c_int4": 345678, "c_int8": 9876543210i64, "c_oid": 4242,
        "c_numeric": "12.50", "c_numeric_ps": "3.140", "c_float4": 1.5, "c_float8": 2.25,
        "c_bool": true, "c_text": "hello", "c_varchar": "varchar", "c_bpchar": "ab   ", "c_name": "a_name", "c_char": "x",
        "c_bytea": "0102feff",
        "c_date": 19724, "c_time": 36672345678i64, "c_time3": 36672345000i64, "c_timetz": "10:11:12.5+05:30",
        "c_timestamp": 1704164645123456i64, "c_timestamp3": 1704164645123000i64, "c_timestamptz": 1704164645123456i64,
        "c_interval": {"months": 14, "days": 3, "micros": 14706789000i64}
    });
    let expect1b = json!({
        "c_uuid": "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "c_json": "{\"a\": 1, \"b\": [true, null]}", "c_jsonb": "{\"a\": 1, \"b\": [true, null]}",
        "c_enum": "happy", "c_domain": "1234.50", "c_inet": "192.168.0.1/24", "c_cidr": "10.0.0.0/8",
        "c_macaddr": "08:00:2b:01:02:03", "c_bit1": "1", "c_bit8": "10100101", "c_varbit": "101",
        "c_xml": "<a>b</a>", "c_range": "[1,10)",
        "c_int4_arr": [1, 2, 3], "c_int4_2d": [1, 2, 3, 4], "c_text_arr": ["a", "b"], "c_numeric_arr": ["1.5", "2"],
        "c_date_arr": [19724, 0], "c_tstz_arr": [1704164645000000i64], "c_enum_arr": ["sad", "happy"],
        "c_uuid_arr": ["a0eebc999c0b4ef8bb6d6bb9bd380a11"], "c_bool_arr": [true, false],
        "c_float8_arr": [1.5, -2.0], "c_bytea_arr": ["00ff"],
        "_op": "c", "_snapshot": false, "_unchanged": []
    });
    for (k, v) in expect1.as_object().unwrap().iter().chain(expect1b.as_object().unwrap()) {
        assert_eq!(&r1[k], v, "row 1 column {k}");
    }
    assert!(
        r1["c_money"].as_str().unwrap().contains("1,234.56") || r1["c_money"].as_str().unwrap().contains("1234.56"),
        "{}",
        r1["c_money"]
    );
    // Row 2: all null.
    assert!(by_id[&2].as_object().unwrap().iter().filter(|(k, _)| k.starts_with("c_")).all(|(_, v)| v.is_null()));
    // Row 3: extremes, exact.
    let r3 = by_id[&3];
    assert_eq!(r3["c_int8"], json!(i64::MIN));
    assert_eq!(r3["c_oid"], json!(4294967295u64));
    assert_eq!(
        r3["c_numeric"],
        "-12345678901234567890123456789012345678901234567890.000123456789012345678901234567890"
    );
    assert_eq!(r3["c_numeric_ps"], "-1234567.891");
    assert_eq!(r3["c_float8"], json!(-0.0));
    // Row 4: NaN and infinities.
    let r4 = by_id[&4];
    assert_eq!(r4["c_numeric"], "NaN");
    assert_eq!(r4["c_float4"], "Infinity");
    assert_eq!(r4["c_float8"], "NaN");
    assert_eq!(r4["c_date"], json!(i32::MAX));
    assert_eq!(r4["c_timestamp"], json!(i64::MIN));
    assert_eq!(r4["c_timestamptz"], json!(i64::MAX));
    // Rows 6-7: BC dates, 24:00, negative intervals.
    assert_eq!(by_id[&6]["c_date"], json!(-735_160));
    assert_eq!(by_id[&6]["c_interval"], json!({"months": -14, "days": 3, "micros": -14_706_000_007i64}));
    assert_eq!(by_id[&7]["c_time"], json!(86_400_000_000i64));
    // Row 9: text escaping and arrays with nulls.
    let r9 = by_id[&9];
    assert_eq!(r9["c_text"], "quote \" backslash \\ tab \t nl \n cr \r bell \u{7} del \u{7f} é 😀 \u{2028}");
    assert_eq!(r9["c_text_arr"], json!(["a,b", "c\"d", "e\\f", null, "NULL", "", "x y", "{}"]));
    assert_eq!(r9["c_int4_arr"], json!([]));
    assert_eq!(r9["c_bytea"], "");
}

#[tokio::test]
async fn parquet_insert_update_delete_truncate_and_unchanged_toast() {
    let db = TestDb::create("pq_lifecycle").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, name text, big text, qty int)").await;
    let (outflow, lake) = parquet_outflow(&db, &["public.t"], "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO t SELECT 1, 'apple', string_agg(md5(g::text), '') , 3 FROM generate_series(1, 400) g")
        .await;
    db.execute("UPDATE t SET qty = 4 WHERE id = 1").await;
    db.execute("DELETE FROM t WHERE id = 1").await;
    db.execute("INSERT INTO t VALUES (3, 'fig', 'small', 1)").await;
    db.execute("TRUNCATE t").await;
    outflow.run_until_caught_up().await.assert_success();

    let lake = read_lake(&lake, &[]);
    let rows = rows(&lake, "public.t");
    let ops: Vec<&str> = rows.iter().map(|r| r["_op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["c", "u", "d", "c", "t"], "{rows:#?}");
    assert_eq!(rows[0]["name"], "apple");
    assert_eq!(rows[0]["big"].as_str().unwrap().len(), 32 * 400);
    // The TOASTed column was not sent with the update: null, and named.
    assert_eq!(rows[1]["qty"], 4);
    assert!(rows[1]["big"].is_null());
    assert_eq!(rows[1]["_unchanged"], json!(["big"]));
    // A delete carries the old key (replica identity default).
    assert_eq!(rows[2]["id"], 1);
    assert_eq!(rows[3]["name"], "fig");
    assert!(rows[4]["id"].is_null(), "a truncate row has no column values");
    assert!(rows.iter().all(|r| r["_tx"].is_u64() && r["_source_ts"].is_i64()));
    assert_eq!(lake["manifests"].as_array().unwrap().len(), 1, "one commit at the end of the run");
}

#[tokio::test]
async fn parquet_alter_table_mid_stream_gives_a_dataset_with_both_schemas() {
    let db = TestDb::create("pq_alter").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, old_col text)").await;
    let (outflow, lake) = parquet_outflow(&db, &["public.t"], "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO t VALUES (1, 'a')").await;
    db.execute("ALTER TABLE t ADD COLUMN new_col numeric(8,2)").await;
    db.execute("INSERT INTO t VALUES (2, 'b', 12.5)").await;
    db.execute("ALTER TABLE t DROP COLUMN old_col").await;
    db.execute("INSERT INTO t VALUES (3, 7.25)").await;
    outflow.run_until_caught_up().await.assert_success();

    let lake = read_lake(&lake, &[]);
    let table = &lake["tables"]["public.t"];
    assert_eq!(table["files"].as_array().unwrap().len(), 3, "one file per schema version: {}", table["files"]);
    assert_eq!(field(&lake, "public.t", "new_col")["type"], "decimal128(8, 2)");
    let rows = rows(&lake, "public.t");
    assert_eq!(rows.len(), 3);
    assert_eq!((rows[0]["old_col"].clone(), rows[0]["new_col"].clone()), (json!("a"), Value::Null));
    assert_eq!((rows[1]["old_col"].clone(), rows[1]["new_col"].clone()), (json!("b"), json!("12.50")));
    assert_eq!((rows[2]["old_col"].clone(), rows[2]["new_col"].clone()), (Value::Null, json!("7.25")));
}

/// Ids of the `c` rows of table t, sorted, with counts checked.
#[track_caller]
fn assert_each_id_once(rows: &[Value], n: i64) {
    let mut counts = BTreeMap::new();
    for r in rows.iter().filter(|r| r["_op"] == "c" || r["_op"] == "r") {
        *counts.entry(r["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?}", &dups[..dups.len().min(20)]);
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
}

async fn insert_batches(db: &TestDb, from: i64, count: i64) {
    let mut next = from;
    while next < from + count {
        let size = rand::rng().random_range(1..=200).min(from + count - next);
        db.execute(&format!(
            "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series({next}, {}) g",
            next + size - 1
        ))
        .await;
        next += size;
    }
}

#[tokio::test]
async fn parquet_kill9_during_a_busy_run_keeps_every_change_exactly_once() {
    let db = TestDb::create("pq_kill").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (outflow, lake) = parquet_outflow(&db, &["public.t"], "roll_rows = 700\nroll_interval = \"1s\"");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let mut written = 0;
    // Random kills while rows stream in.
    for round in 0..3 {
        let mut run = outflow.spawn_run();
        db.wait_for_slot_streaming().await;
        insert_batches(&db, written + 1, 3000).await;
        written += 3000;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..2500))).await;
        run.kill9().await;
        db.wait_for_slot_idle().await;
        eprintln!("round {round}: killed");
    }
    // Crashes at each step of the durable path: after the manifest commit
    // but before the offset is stored, and after the offset is stored.
    for point in ["sink.after_flush=1", "sink.after_offset=1", "sink.after_write=2"] {
        insert_batches(&db, written + 1, 2000).await;
        written += 2000;
        outflow.with_env("OUTFLOW_FAILPOINTS", point);
        let out = outflow.run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "failpoint {point} should abort the run: {}", out.stderr);
        db.wait_for_slot_idle().await;
    }
    outflow.with_env("OUTFLOW_FAILPOINTS", "");
    outflow.run_until_caught_up().await.assert_success();

    let lake = read_lake(&lake, &[]);
    assert_each_id_once(&rows(&lake, "public.t"), written);
    // At least the two failpoint runs that abort after a commit and the
    // last run commit; the killed rounds add more when the machine is fast.
    assert!(lake["manifests"].as_array().unwrap().len() >= 3, "several commits happened");
}

/// Crashes after a manifest is written and before the offset file is, again
/// and again while a snapshot runs (each run aborts at its first flush, so
/// the offset file never catches up): every run must go on from the chunks
/// the manifests hold, not read them again under new positions (their rows
/// would land twice).
#[tokio::test]
async fn parquet_snapshot_goes_on_from_the_manifest_after_crashes_before_the_offset() {
    let db = TestDb::create("pq_snap_crash").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 2000) g").await;
    let outflow = Outflow::new(&db, &["public.t"]).section("[snapshot]\nchunk_size = 20");
    let (outflow, lake) = parquet_outflow_with(outflow, "roll_rows = 20");
    outflow.with_env("OUTFLOW_FAILPOINTS", "sink.after_flush=1");
    for _ in 0..4 {
        let out = outflow.run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "the failpoint should abort the run: {}", out.stderr);
        db.wait_for_slot_idle().await;
    }
    outflow.with_env("OUTFLOW_FAILPOINTS", "");
    outflow.run_until_caught_up().await.assert_success();
    let read = read_lake(&lake, &[]);
    let rows = rows(&read, "public.t");
    assert!(!read["manifests"].as_array().unwrap().is_empty(), "the runs committed before they crashed");
    assert_each_id_once(&rows, 2000);
    assert!(rows.iter().all(|r| r["_op"] == "r"), "all rows are snapshot reads");
}

#[tokio::test]
async fn parquet_files_roll_by_rows_and_by_time() {
    let db = TestDb::create("pq_roll").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (outflow, lake) = parquet_outflow(&db, &["public.t"], "roll_rows = 3\nroll_interval = \"2s\"");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    // By rows: 10 rows in one transaction → files of 3, 3, 3 and 1 rows.
    db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g").await;
    outflow.run_until_caught_up().await.assert_success();
    let read = read_lake(&lake, &[]);
    let manifests = read["manifests"].as_array().unwrap();
    let mut sizes: Vec<u64> = manifests
        .iter()
        .flat_map(|m| m["files"].as_array().unwrap().iter().map(|f| f["rows"].as_u64().unwrap()))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 3, 3, 3]);

    // By time: a running outflow commits a lone row once its file is 2s old,
    // and the slot advances past it without the process stopping.
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO t VALUES (11, 'late')").await;
    let lake_path = lake.clone();
    wait_for(SHORT, "the lone row's file to be committed by age", || {
        let lake_path = lake_path.clone();
        async move {
            let read = read_lake(&lake_path, &[]);
            rows(&read, "public.t").iter().any(|r| r["id"] == 11)
        }
    })
    .await;
    assert!(run.is_running(), "committed by age while running:\n{}", run.stderr());
    run.sigterm_and_wait().await.assert_success();
    assert_each_id_once(&rows(&read_lake(&lake, &[]), "public.t"), 11);
}

/// A moto S3 server on a free loopback port, stopped on drop.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(python())
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting moto (pip package moto[server], installed by scripts/python-env.sh)");
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for(SHORT, "moto to listen", || async move { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() })
        .await;
    Moto { child, endpoint }
}

#[tokio::test]
async fn parquet_to_s3_through_a_local_s3_server() {
    let moto = start_moto().await;
    let create = std::process::Command::new(python())
        .args(["-c", "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='lake')", &moto.endpoint])
        .output()
        .unwrap();
    assert!(create.status.success(), "creating the bucket: {}", String::from_utf8_lossy(&create.stderr));

    let db = TestDb::create("pq_s3").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let sink = format!(
        "[[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = \"s3://lake/cdc\"\nroll_rows = 50\n\
         [sink.storage_options]\nendpoint = {:?}\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nallow_http = \"true\"\n",
        moto.endpoint
    );
    let outflow = with_sink(Outflow::new(&db, &["public.t"]), &sink);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    insert_batches(&db, 1, 120).await;
    db.execute("UPDATE t SET payload = 'y' WHERE id <= 10").await;
    outflow.run_until_caught_up().await.assert_success();
    // A second run resumes after the committed manifest.
    insert_batches(&db, 121, 30).await;
    outflow.run_until_caught_up().await.assert_success();

    let lake = read_lake("s3://lake/cdc", &["--s3-endpoint", &moto.endpoint]);
    let rows = rows(&lake, "public.t");
    assert_each_id_once(&rows, 150);
    assert_eq!(rows.iter().filter(|r| r["_op"] == "u").count(), 10);
    assert!(lake["manifests"].as_array().unwrap().len() >= 2);
}
